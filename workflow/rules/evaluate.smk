# Evaluation: per-pair metrics of every method, from prediction files only.


rule metrics:
    input:
        predictions=lambda wildcards: predictions(wildcards.method),
        runtimes=lambda wildcards: runtimes(wildcards.method),
        cases=expand(f"{EXP}/data/h108/{{patient}}/case.json", patient=TEST_PATIENTS),
    output:
        f"{EXP}/metrics/{{method}}.csv",
    params:
        pairs=" ".join(TEST_PAIRS),
        predictions=lambda wildcards, input: os.path.dirname(input.predictions[0]),
        runtimes=lambda wildcards, input: os.path.dirname(input.runtimes[0]),
        cases=lambda wildcards, input: os.path.dirname(os.path.dirname(input.cases[0])),
    benchmark:
        f"{EXP}/benchmarks/metrics/{{method}}.tsv"
    log:
        f"{EXP}/logs/metrics/{{method}}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
    shell:
        "python -m liverbench.evaluation.evaluate --method {wildcards.method} "
        "--pairs {params.pairs} --predictions {params.predictions} "
        "--runtimes {params.runtimes} --cases {params.cases} "
        "--out {output} > {log} 2>&1"


ALL_TARGETS += expand(f"{EXP}/metrics/{{method}}.csv", method=METHODS)
