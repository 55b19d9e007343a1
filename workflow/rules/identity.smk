# The identity lower bound: CECT liver mask -> nCECT through scanner geometry only.


rule identity_predict:
    input:
        expand(f"{EXP}/data/h108/{{patient}}/case.json", patient=TEST_PATIENTS),
    output:
        predictions("identity"),
        runtimes("identity"),
    params:
        pairs=" ".join(TEST_PAIRS),
    log:
        f"{EXP}/logs/identity/predict.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m baselines.identity --cases {EXP}/data/h108 --pairs {params.pairs} "
        "--out-dir {EXP}/predictions/identity --runtime-dir {EXP}/runtime/identity > {log} 2>&1"
