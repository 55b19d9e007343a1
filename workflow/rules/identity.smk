# The identity lower bound: CECT liver mask -> nCECT through scanner geometry only.


rule identity_predict:
    input:
        expand(f"{EXP}/data/h108/{{patient}}/case.json", patient=TEST_PATIENTS),
    output:
        predictions=predictions("identity"),
        runtimes=runtimes("identity"),
    params:
        pairs=" ".join(TEST_PAIRS),
        cases=lambda wildcards, input: os.path.dirname(os.path.dirname(input[0])),
        out=lambda wildcards, output: os.path.dirname(output.predictions[0]),
        runtime=lambda wildcards, output: os.path.dirname(output.runtimes[0]),
    benchmark:
        f"{EXP}/benchmarks/identity/predict.tsv"
    log:
        f"{EXP}/logs/identity/predict.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m baselines.identity --cases {params.cases} --pairs {params.pairs} "
        "--out-dir {params.out} --runtime-dir {params.runtime} > {log} 2>&1"
