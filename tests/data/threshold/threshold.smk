# A user's own method in one rule file (docs/adding-a-method.md). Declared in the config:
#   custom_methods:
#     threshold: {label: "HU threshold", family: direct segmentation,
#                 rules: tests/data/threshold/threshold.smk}
#   methods: [identity, threshold]
# The rule gets the test pairs' original nCECTs and writes the method contract's two files
# per pair: the liver mask on the nCECT grid and its runtime record.

THRESHOLD_SCRIPT = os.path.join(workflow.current_basedir, "threshold.py")


rule threshold_predict:
    input:
        ncect=[LAYOUT.case_file(fixed_of(pair), "ncect") for pair in TEST_PAIRS],
    output:
        predictions=predictions("threshold"),
        runtimes=runtimes("threshold"),
    params:
        script=THRESHOLD_SCRIPT,
        pairs=TEST_PAIRS,
    log:
        LAYOUT.log("threshold", "predict"),
    benchmark:
        LAYOUT.benchmark("threshold", "predict")
    conda:
        "../../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python {params.script:q} --low 30 --high 90 --pairs {params.pairs:q} "
        "--ncect {input.ncect:q} --predictions {output.predictions:q} "
        "--runtimes {output.runtimes:q} > {log:q} 2>&1"
