# nnU-Net v2 (docs/nnunet.md). nnU-Net's own folders live in EXP/nnunet/{raw,preprocessed,
# results}; model records (JSON), loss CSVs and the plans summary in EXP/models/nnunet/.
#   nnunet_prepare     raw datasets (MSD-like pretraining cohort, cohort CECT, cohort nCECT),
#                      plans (+ the small extra configuration at demo/smoke), preprocessing
#   nnunet_pretrain    the MSD cohort with a target's moved plans (the `pretraining` sources)
#   nnunet_train       a target, from the pretrained weights (`pretraining`) or from scratch
#   nnunet_ncect_predict  method nnunet_ncect: nnU-Net on the nCECT of each test pair
# The CECT model serves elastix_cnn (elastix_cnn.smk), the nCECT model both methods.

import math

NNUNET = config.get("nnunet", {})
NNUNET_ROOT = f"{EXP}/nnunet"
NNUNET_MODELS = f"{EXP}/models/nnunet"
NNUNET_PRETRAINING = NNUNET.get("pretraining", {"cect": "cect", "ncect": "ncect"})
NNUNET_SMALL = NNUNET.get("configuration", "3d_fullres") != "3d_fullres"
# Cohort datasets the requested methods need (nnunet_ncect: nCECT; elastix_cnn: both), and
# those whose plans their pretraining uses.
_nn_needed = {"cect", "ncect"} if "elastix_cnn" in METHODS else {"ncect"}
NNUNET_TARGETS = sorted(_nn_needed | {NNUNET_PRETRAINING.get(t) for t in _nn_needed} - {None})
NNUNET_COHORT = SPLITS["train"] + SPLITS["val"]


# Wall time asked of the scheduler: ~2 s per CPU iteration with the small configuration,
# ~1 s on a GPU with 3d_fullres; plus start-up, unpacking and validation.
NNUNET_MINUTES = {
    stage: 20
    + math.ceil(
        NNUNET.get(stage, {}).get("epochs", 1000)
        * (
            NNUNET.get(stage, {}).get("iterations_per_epoch", 250)
            + NNUNET.get(stage, {}).get("val_iterations", 50)
        )
        * (2.0 if NNUNET_SMALL else 1.0)
        / 60
    )
    for stage in ("pretrain", "train")
}
NNUNET_MEMORY_MB = 6000 if NNUNET_SMALL else 32000


rule nnunet_prepare:
    input:
        msd=expand(
            f"{EXP}/data/msd/{{case}}/{{name}}.nii.gz", case=MSD_CASES, name=["cect", "cect_liver"]
        ),
        cohort=expand(f"{EXP}/data/h108/{{patient}}/case.json", patient=NNUNET_COHORT),
    output:
        f"{NNUNET_MODELS}/configuration.json",
    params:
        root=NNUNET_ROOT,
        settings=method_settings("nnunet"),
        msd=" ".join(msd_case_dir(case) for case in MSD_CASES),
        train=" ".join(case_dir(patient) for patient in SPLITS["train"]),
        val=" ".join(case_dir(patient) for patient in SPLITS["val"]),
        targets=" ".join(NNUNET_TARGETS),
    benchmark:
        f"{EXP}/benchmarks/nnunet/prepare.tsv"
    log:
        f"{EXP}/logs/nnunet/prepare.log",
    conda:
        "../../envs/nnunet.yaml"
    threads: NNUNET.get("threads", 2)
    resources:
        mem_mb=8000,
        runtime=30,
    shell:
        "python -m baselines.nnunet prepare --root {params.root} --settings '{params.settings}' "
        "--threads {threads} --msd-cases {params.msd} --train-cases {params.train} "
        "--val-cases {params.val} --targets {params.targets} --summary {output} > {log} 2>&1"


rule nnunet_pretrain:
    input:
        f"{NNUNET_MODELS}/configuration.json",
    output:
        model=f"{NNUNET_MODELS}/pretrain_{{target}}.json",
        losses=f"{NNUNET_MODELS}/pretrain_{{target}}_losses.csv",
    wildcard_constraints:
        target="cect|ncect",
    params:
        root=NNUNET_ROOT,
        settings=method_settings("nnunet"),
        seed=SEED,
    benchmark:
        f"{EXP}/benchmarks/nnunet/pretrain_{{target}}.tsv"
    log:
        f"{EXP}/logs/nnunet/pretrain_{{target}}.log",
    conda:
        "../../envs/nnunet.yaml"
    threads: NNUNET.get("threads", 2)
    resources:
        mem_mb=NNUNET_MEMORY_MB,
        runtime=NNUNET_MINUTES["pretrain"],
        gpu=NNUNET.get("gpu", 0),
    shell:
        "python -m baselines.nnunet pretrain --root {params.root} --settings '{params.settings}' "
        "--threads {threads} --target {wildcards.target} --seed {params.seed} "
        "--out {output.model} --losses {output.losses} > {log} 2>&1"


rule nnunet_train:
    input:
        summary=f"{NNUNET_MODELS}/configuration.json",
        pretrained=lambda wildcards: (
            [f"{NNUNET_MODELS}/pretrain_{NNUNET_PRETRAINING[wildcards.target]}.json"]
            if NNUNET_PRETRAINING.get(wildcards.target)
            else []
        ),
    output:
        model=f"{NNUNET_MODELS}/{{target}}.json",
        losses=f"{NNUNET_MODELS}/{{target}}_losses.csv",
    wildcard_constraints:
        target="cect|ncect",
    params:
        root=NNUNET_ROOT,
        settings=method_settings("nnunet"),
        seed=SEED,
        pretrained=lambda wildcards, input: (
            f"--pretrained {input.pretrained}" if input.pretrained else ""
        ),
    benchmark:
        f"{EXP}/benchmarks/nnunet/train_{{target}}.tsv"
    log:
        f"{EXP}/logs/nnunet/train_{{target}}.log",
    conda:
        "../../envs/nnunet.yaml"
    threads: NNUNET.get("threads", 2)
    resources:
        mem_mb=NNUNET_MEMORY_MB,
        runtime=NNUNET_MINUTES["train"],
        gpu=NNUNET.get("gpu", 0),
    shell:
        "python -m baselines.nnunet train --root {params.root} --settings '{params.settings}' "
        "--threads {threads} --target {wildcards.target} --seed {params.seed} "
        "{params.pretrained} --out {output.model} --losses {output.losses} > {log} 2>&1"


rule nnunet_ncect_predict:
    input:
        model=f"{NNUNET_MODELS}/ncect.json",
        cases=expand(f"{EXP}/data/h108/{{patient}}/case.json", patient=TEST_PATIENTS),
    output:
        predictions=predictions("nnunet_ncect"),
        runtimes=runtimes("nnunet_ncect"),
    params:
        settings=method_settings("nnunet"),
        pairs=" ".join(TEST_PAIRS),
        cases=lambda wildcards, input: os.path.dirname(os.path.dirname(input.cases[0])),
        out=lambda wildcards, output: os.path.dirname(output.predictions[0]),
        runtime=lambda wildcards, output: os.path.dirname(output.runtimes[0]),
    benchmark:
        f"{EXP}/benchmarks/nnunet/predict_ncect.tsv"
    log:
        f"{EXP}/logs/nnunet/predict_ncect.log",
    conda:
        "../../envs/nnunet.yaml"
    threads: NNUNET.get("threads", 2)
    resources:
        mem_mb=NNUNET_MEMORY_MB,
        runtime=10 + 2 * len(TEST_PAIRS),
    shell:
        "python -m baselines.nnunet predict --settings '{params.settings}' --threads {threads} "
        "--model {input.model} --image ncect --cases {params.cases} --pairs {params.pairs} "
        "--method nnunet_ncect --out-dir {params.out} --runtime-dir {params.runtime} "
        "> {log} 2>&1"


# The report plots the nCECT model's losses (see evaluate.smk).
TRAINING_CURVES = globals().get("TRAINING_CURVES", {})
TRAINING_CURVES["nnunet_ncect"] = f"{NNUNET_MODELS}/ncect_losses.csv"
