# nnU-Net v2 (docs/nnunet.md). nnU-Net's own folders live in EXP/nnunet/{raw,preprocessed,
# results}; model records (JSON), loss CSVs and the plans summary in EXP/models/nnunet/.
#   nnunet_prepare     raw datasets (MSD-like pretraining cohort, cohort CECT, cohort nCECT),
#                      plans (+ the small extra configuration at demo/smoke), preprocessing
#   nnunet_pretrain    the MSD cohort with a target's moved plans (the `pretraining` sources)
#   nnunet_train       a target, from the pretrained weights (`pretraining`) or from scratch
#   nnunet_import      a target's model from a trained model folder the user brings
#                      (nnunet.pretrained_model), instead of prepare/pretrain/train
#   nnunet_ncect_predict  method nnunet_ncect: nnU-Net on the original nCECT of each test pair
# The CECT model serves elastix_cnn (elastix_cnn.smk), the nCECT model both methods.

from baselines.nnunet.settings import Settings as NnunetSettings

NNUNET = config["nnunet"]
NNUNET_SETTINGS = NnunetSettings.from_mapping(NNUNET, section="nnunet")
NNUNET_ROOT = LAYOUT.method_dir("nnunet")
# Cohort datasets the requested methods need (nnunet_ncect: nCECT; elastix_cnn: both), and
# those whose plans their pretraining uses.
NNUNET_NEEDED = ["cect", "ncect"] if "elastix_cnn" in METHODS else ["ncect"]
# Targets whose model the user brings (nnunet.pretrained_model, docs/nnunet.md): imported,
# not trained; the rest are trained, and prepared with the plans their pretraining needs.
NNUNET_IMPORTED = NNUNET_SETTINGS.pretrained_model.imported(NNUNET_NEEDED)
NNUNET_TRAINED = [target for target in NNUNET_NEEDED if target not in NNUNET_IMPORTED]
NNUNET_TARGETS = sorted({*NNUNET_TRAINED, *NNUNET_SETTINGS.pretraining_sources(NNUNET_TRAINED)})
NNUNET_COHORT = SPLITS["train"] + SPLITS["val"]


# Wall time asked of the scheduler: ~2 s per CPU iteration with the small configuration,
# ~1 s on a GPU with 3d_fullres; plus start-up, unpacking and validation.
NNUNET_MINUTES = {
    stage: 20
    + math.ceil(
        NNUNET[stage]["epochs"]
        * (NNUNET[stage]["iterations_per_epoch"] + NNUNET[stage]["val_iterations"])
        * (2.0 if NNUNET_SETTINGS.is_small else 1.0)
        / 60
    )
    for stage in ("pretrain", "train")
}
# Training is untimed: the demo gives it fewer threads than a (timed) prediction, so that two
# training jobs share the cores (docs/speed.md).
NNUNET_TRAIN_THREADS = NNUNET["train_threads"] or NNUNET["threads"]
NNUNET_MEMORY_MB = 6000 if NNUNET_SETTINGS.is_small else 32000


if TRAINING and NNUNET_IMPORTED:

    rule nnunet_import:
        input:
            lambda wildcards: NNUNET_SETTINGS.pretrained_model.files(wildcards.target),
        output:
            model=LAYOUT.model_file("nnunet", "{target}.json"),
            losses=LAYOUT.model_file("nnunet", "{target}_losses.csv"),
        wildcard_constraints:
            target="|".join(NNUNET_IMPORTED),
        params:
            root=NNUNET_ROOT,
            settings=settings_json("nnunet"),
        benchmark:
            LAYOUT.benchmark("nnunet", "import_{target}")
        log:
            LAYOUT.log("nnunet", "import_{target}"),
        conda:
            "../../envs/nnunet.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        shell:
            "python -m baselines.nnunet import --root {params.root:q} "
            "--settings {params.settings:q} --threads {threads} --target {wildcards.target:q} "
            "--out {output.model:q} --losses {output.losses:q} > {log:q} 2>&1"


if TRAINING and NNUNET_TRAINED:  # an external test cohort uses the experiment's models

    rule nnunet_prepare:
        input:
            msd=[LAYOUT.msd_case_file(case, name) for case in MSD_CASES for name in MSD_FILES],
            cohort=[LAYOUT.case_file(p, name) for p in NNUNET_COHORT for name in CASE_FILES],
        output:
            LAYOUT.model_file("nnunet", "configuration.json"),
        params:
            root=NNUNET_ROOT,
            settings=settings_json("nnunet"),
            msd=[LAYOUT.msd_case_dir(case) for case in MSD_CASES],
            train=[LAYOUT.case_dir(patient) for patient in SPLITS["train"]],
            val=[LAYOUT.case_dir(patient) for patient in SPLITS["val"]],
            targets=NNUNET_TARGETS,
        benchmark:
            LAYOUT.benchmark("nnunet", "prepare")
        log:
            LAYOUT.log("nnunet", "prepare"),
        conda:
            "../../envs/nnunet.yaml"
        threads: NNUNET_TRAIN_THREADS
        priority: CRITICAL_PATH_PRIORITY
        resources:
            mem_mb=8000,
            runtime=30,
        shell:
            "python -m baselines.nnunet prepare --root {params.root:q} "
            "--settings {params.settings:q} --threads {threads} --msd-cases {params.msd:q} "
            "--train-cases {params.train:q} --val-cases {params.val:q} "
            "--targets {params.targets:q} --summary {output:q} > {log:q} 2>&1"


    rule nnunet_pretrain:
        input:
            rules.nnunet_prepare.output,
        output:
            model=LAYOUT.model_file("nnunet", "pretrain_{target}.json"),
            losses=LAYOUT.model_file("nnunet", "pretrain_{target}_losses.csv"),
        wildcard_constraints:
            target="cect|ncect",
        params:
            root=NNUNET_ROOT,
            settings=settings_json("nnunet"),
            seed=SEED,
        benchmark:
            LAYOUT.benchmark("nnunet", "pretrain_{target}")
        log:
            LAYOUT.log("nnunet", "pretrain_{target}"),
        conda:
            "../../envs/nnunet.yaml"
        threads: NNUNET_TRAIN_THREADS
        priority: CRITICAL_PATH_PRIORITY
        resources:
            mem_mb=NNUNET_MEMORY_MB,
            runtime=NNUNET_MINUTES["pretrain"],
            gpu=NNUNET["gpu"],
        shell:
            "python -m baselines.nnunet pretrain --root {params.root:q} "
            "--settings {params.settings:q} --threads {threads} --target {wildcards.target:q} "
            "--seed {params.seed} --out {output.model:q} --losses {output.losses:q} > {log:q} 2>&1"


    rule nnunet_train:
        input:
            summary=rules.nnunet_prepare.output,
            # the pretraining record a target fine-tunes from (none: trained from scratch)
            pretrained=lambda wildcards: [
                LAYOUT.model_file("nnunet", f"pretrain_{source}.json")
                for source in [NNUNET["pretraining"][wildcards.target]]
                if source
            ],
        output:
            model=LAYOUT.model_file("nnunet", "{target}.json"),
            losses=LAYOUT.model_file("nnunet", "{target}_losses.csv"),
        wildcard_constraints:
            target="|".join(NNUNET_TRAINED),
        params:
            root=NNUNET_ROOT,
            settings=settings_json("nnunet"),
            seed=SEED,
            pretrained=lambda wildcards, input: ["--pretrained", *input.pretrained]
            if input.pretrained
            else [],
        benchmark:
            LAYOUT.benchmark("nnunet", "train_{target}")
        log:
            LAYOUT.log("nnunet", "train_{target}"),
        conda:
            "../../envs/nnunet.yaml"
        threads: NNUNET_TRAIN_THREADS
        priority: CRITICAL_PATH_PRIORITY
        resources:
            mem_mb=NNUNET_MEMORY_MB,
            runtime=NNUNET_MINUTES["train"],
            gpu=NNUNET["gpu"],
        shell:
            "python -m baselines.nnunet train --root {params.root:q} "
            "--settings {params.settings:q} --threads {threads} --target {wildcards.target:q} "
            "--seed {params.seed} {params.pretrained:q} --out {output.model:q} "
            "--losses {output.losses:q} > {log:q} 2>&1"


rule nnunet_ncect_predict:
    input:
        model=LAYOUT.model_file("nnunet", "ncect.json"),
        images=fixed_files("ncect"),
    output:
        predictions=predictions("nnunet_ncect"),
        runtimes=runtimes("nnunet_ncect"),
    params:
        settings=settings_json("nnunet"),
        pairs=TEST_PAIRS,
    benchmark:
        LAYOUT.benchmark("nnunet", "predict_ncect")
    log:
        LAYOUT.log("nnunet", "predict_ncect"),
    conda:
        "../../envs/nnunet.yaml"
    threads: NNUNET["threads"]
    resources:
        mem_mb=NNUNET_MEMORY_MB,
        runtime=10 + 2 * len(TEST_PAIRS),
    shell:
        "python -m baselines.nnunet predict --settings {params.settings:q} --threads {threads} "
        "--model {input.model:q} --method nnunet_ncect --pairs {params.pairs:q} "
        "--images {input.images:q} --predictions {output.predictions:q} "
        "--runtimes {output.runtimes:q} > {log:q} 2>&1"
