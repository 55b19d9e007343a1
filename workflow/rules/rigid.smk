# The rigid lower bound: CECT liver mask -> nCECT through the pair's shared pre-alignment alone
# (docs/registration.md); its mapping is the pre-alignment.


rule rigid_predict:
    input:
        cect=moving_files("cect"),
        cect_liver=moving_files("cect_liver"),
        ncect=fixed_files("ncect"),
        prealign=[LAYOUT.prealign(pair) for pair in TEST_PAIRS],
        pair_timings=[LAYOUT.pair_timing(pair) for pair in TEST_PAIRS],
    output:
        predictions=predictions("rigid"),
        runtimes=runtimes("rigid"),
        mappings=[LAYOUT.mapping("rigid", pair) for pair in TEST_PAIRS],
    params:
        pairs=TEST_PAIRS,
    benchmark:
        LAYOUT.benchmark("rigid", "predict")
    log:
        LAYOUT.log("rigid", "predict"),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m baselines.rigid --pairs {params.pairs:q} --cect {input.cect:q} "
        "--cect-liver {input.cect_liver:q} --ncect {input.ncect:q} "
        "--prealign {input.prealign:q} --pair-timings {input.pair_timings:q} "
        "--predictions {output.predictions:q} "
        "--runtimes {output.runtimes:q} --mappings {output.mappings:q} > {log:q} 2>&1"
