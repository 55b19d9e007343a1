# The identity lower bound: CECT liver mask -> nCECT through scanner geometry only; its mapping
# is the identity transform.


rule identity_predict:
    input:
        cect=moving_files("cect"),
        cect_liver=moving_files("cect_liver"),
        ncect=fixed_files("ncect"),
    output:
        predictions=predictions("identity"),
        runtimes=runtimes("identity"),
        mappings=[LAYOUT.mapping("identity", pair) for pair in TEST_PAIRS],
    params:
        pairs=TEST_PAIRS,
    benchmark:
        LAYOUT.benchmark("identity", "predict")
    log:
        LAYOUT.log("identity", "predict"),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m baselines.identity --pairs {params.pairs:q} --cect {input.cect:q} "
        "--cect-liver {input.cect_liver:q} --ncect {input.ncect:q} "
        "--predictions {output.predictions:q} --runtimes {output.runtimes:q} "
        "--mappings {output.mappings:q} > {log:q} 2>&1"
