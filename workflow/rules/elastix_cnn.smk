# Elastix + CNN, the two-phase method of Luu et al. 2023 (docs/elastix_cnn.md).
#   phase 1  nnU-Net liver masks: the CECT model on each test pair's original CECT (this
#            file), the nCECT model on its original nCECT (= the predictions of method
#            nnunet_ncect, nnunet.smk)
#   phase 2-4  elastix (rigid, then B-spline) CECT -> nCECT with both masks restricting the
#            metric, starting from the pair's shared pre-alignment (its initial transform);
#            transformix carries the CECT liver to the nCECT and writes the final mapping
#            (pre-alignment, rigid, B-spline); all test pairs in one process (elastix loads
#            once), each timed. Maps and logs: EXP/elastix_cnn/transforms/.
# The runtime record's stages: the pair step's reading and pre-alignment, phase 1's two
# nnU-Net segmentations, then elastix's own (docs/evaluation.md, "Runtime").

from baselines.elastix_cnn.parameter_files import iterations as elastix_iterations

ELASTIX_CNN = config["elastix_cnn"]
# The user's own elastix parameter files (null: the schedule): inputs of the registration, so
# editing one re-runs it; paths from the working directory, checked when the config resolves.
ELASTIX_CNN_PARAMETER_FILES = list(ELASTIX_CNN["parameter_files"] or [])
# The command line's --settings (and a rerun trigger): parameter_files only when given, so that
# results made before the key existed are not re-run for its null default.
ELASTIX_CNN_SETTINGS = json.dumps(
    {
        key: value
        for key, value in ELASTIX_CNN.items()
        if key != "parameter_files" or value is not None
    },
    sort_keys=True,
)
ELASTIX_CNN_DIR = LAYOUT.method_dir("elastix_cnn")
# Phase 1 on the CECT, per test pair: nnU-Net's mask of the moving patient's CECT and its runtime.
ELASTIX_CNN_CECT_LIVER = [f"{ELASTIX_CNN_DIR}/cect_liver/{pair}.nii.gz" for pair in TEST_PAIRS]
ELASTIX_CNN_CECT_RUNTIMES = [
    f"{ELASTIX_CNN_DIR}/cect_liver_runtime/{pair}.json" for pair in TEST_PAIRS
]
ELASTIX_CNN_CECT = moving_files("cect")
ELASTIX_CNN_NCECT = fixed_files("ncect")
ELASTIX_CNN_PREALIGN = [LAYOUT.prealign(pair) for pair in TEST_PAIRS]
ELASTIX_CNN_MAPPINGS = [LAYOUT.mapping("elastix_cnn", pair) for pair in TEST_PAIRS]


# Wall time asked of the scheduler per pair: ~25 ms per iteration at 2048 samples on 2 cores,
# plus pyramids and transformix.
ELASTIX_CNN_MINUTES_PER_PAIR = 2 + math.ceil(
    (
        elastix_iterations(ELASTIX_CNN_PARAMETER_FILES)
        if ELASTIX_CNN_PARAMETER_FILES
        else sum(
            len(ELASTIX_CNN[stage]["schedule"]) * ELASTIX_CNN[stage]["iterations"]
            for stage in ("rigid", "bspline")
        )
    )
    * 0.025
    / 60
)


rule elastix_cnn_segment_cect:
    input:
        model=LAYOUT.model_file("nnunet", "cect.json"),
        images=ELASTIX_CNN_CECT,
    output:
        masks=ELASTIX_CNN_CECT_LIVER,
        runtimes=ELASTIX_CNN_CECT_RUNTIMES,
    params:
        settings=settings_json("nnunet"),
        pairs=TEST_PAIRS,
    benchmark:
        LAYOUT.benchmark("elastix_cnn", "segment_cect")
    log:
        LAYOUT.log("elastix_cnn", "segment_cect"),
    conda:
        "../../envs/nnunet.yaml"
    threads: config["nnunet"]["threads"]
    priority: CRITICAL_PATH_PRIORITY
    resources:
        mem_mb=6000,
        runtime=10 + 2 * len(TEST_PAIRS),
    shell:
        "python -m baselines.nnunet predict --settings {params.settings:q} --threads {threads} "
        "--model {input.model:q} --method nnunet_cect --pairs {params.pairs:q} "
        "--images {input.images:q} --predictions {output.masks:q} "
        "--runtimes {output.runtimes:q} > {log:q} 2>&1"


rule elastix_cnn_register:
    input:
        cect=ELASTIX_CNN_CECT,
        ncect=ELASTIX_CNN_NCECT,
        prealign=ELASTIX_CNN_PREALIGN,
        pair_timings=[LAYOUT.pair_timing(pair) for pair in TEST_PAIRS],
        cect_liver=rules.elastix_cnn_segment_cect.output.masks,
        cect_runtimes=rules.elastix_cnn_segment_cect.output.runtimes,
        ncect_liver=predictions("nnunet_ncect"),
        ncect_runtimes=runtimes("nnunet_ncect"),
        parameter_files=ELASTIX_CNN_PARAMETER_FILES,  # named in the settings JSON
    output:
        predictions=predictions("elastix_cnn"),
        runtimes=runtimes("elastix_cnn"),
        mappings=ELASTIX_CNN_MAPPINGS,
    params:
        settings=ELASTIX_CNN_SETTINGS,
        pairs=TEST_PAIRS,
        transforms=f"{ELASTIX_CNN_DIR}/transforms",
    benchmark:
        LAYOUT.benchmark("elastix_cnn", "register")
    log:
        LAYOUT.log("elastix_cnn", "register"),
    conda:
        "../../envs/elastix.yaml"
    threads: ELASTIX_CNN["threads"]
    priority: CRITICAL_PATH_PRIORITY
    resources:
        mem_mb=4000,
        runtime=5 + ELASTIX_CNN_MINUTES_PER_PAIR * len(TEST_PAIRS),
    shell:
        "python -m baselines.elastix_cnn register --settings {params.settings:q} "
        "--threads {threads} --pairs {params.pairs:q} --cect {input.cect:q} "
        "--ncect {input.ncect:q} --prealign {input.prealign:q} "
        "--pair-timings {input.pair_timings:q} --cect-liver {input.cect_liver:q} "
        "--ncect-liver {input.ncect_liver:q} --cect-runtimes {input.cect_runtimes:q} "
        "--ncect-runtimes {input.ncect_runtimes:q} --predictions {output.predictions:q} "
        "--mappings {output.mappings:q} --runtimes {output.runtimes:q} "
        "--transforms-dir {params.transforms:q} > {log:q} 2>&1"
