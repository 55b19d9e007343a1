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
        "--pairs {params.pairs} --predictions {EXP}/predictions/{wildcards.method} "
        "--runtimes {EXP}/runtime/{wildcards.method} --cases {EXP}/data/h108 "
        "--out {output} > {log} 2>&1"


ALL_TARGETS += expand(f"{EXP}/metrics/{{method}}.csv", method=METHODS)
