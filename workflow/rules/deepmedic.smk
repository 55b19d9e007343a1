# DeepMedic-style baseline (docs/deepmedic.md): pretrain on the MSD(-like) CECT cohort,
# fine-tune on the training patients' nCECT (validated on the validation patients), then
# segment the nCECT of every test pair in one process, timed per pair.

DEEPMEDIC = config["deepmedic"]
DEEPMEDIC_TRAIN_THREADS = DEEPMEDIC["train_threads"] or DEEPMEDIC["threads"]  # untimed
DEEPMEDIC_DIR = LAYOUT.model_dir("deepmedic")
# Memory: volumes held in memory (float32 image + uint8 label) plus the network's working set.
DM_MB_PER_VOLUME = math.prod(config["preprocess"]["shape"]) * 5 / 2**20
DM_BASE_MB = 3000
# Wall time asked of the scheduler: generous for a CPU, ~0.5 s per iteration.
DM_SECONDS_PER_ITERATION = 0.5
# Each test pair's fixed patient, aligned with TEST_PAIRS: whose nCECT the pair segments.
DM_FIXED = [fixed_of(pair) for pair in TEST_PAIRS]
DM_MINUTES = {
    stage: 10 + math.ceil(DEEPMEDIC[f"iterations_{stage}"] * DM_SECONDS_PER_ITERATION / 60)
    for stage in ("pretrain", "finetune")
}


if TRAINING:  # an external test cohort uses the experiment's models

    rule deepmedic_pretrain:
        input:
            images=[LAYOUT.msd_prep_file(case, "cect") for case in MSD_CASES],
            labels=[LAYOUT.msd_prep_file(case, "cect_liver") for case in MSD_CASES],
        output:
            model=f"{DEEPMEDIC_DIR}/pretrained.pt",
            losses=f"{DEEPMEDIC_DIR}/pretrain_losses.csv",
        params:
            settings=settings_json("deepmedic"),
        benchmark:
            LAYOUT.benchmark("deepmedic", "pretrain")
        log:
            LAYOUT.log("deepmedic", "pretrain"),
        conda:
            "../../envs/torch.yaml"
        threads: DEEPMEDIC_TRAIN_THREADS
        resources:
            mem_mb=DM_BASE_MB + int(len(MSD_CASES) * DM_MB_PER_VOLUME),
            runtime=DM_MINUTES["pretrain"],
            gpu=DEEPMEDIC["gpu"],
        shell:
            "python -m baselines.deepmedic train --stage pretrain "
            "--settings {params.settings:q} --threads {threads} "
            "--images {input.images:q} --labels {input.labels:q} --out {output.model:q} "
            "--losses {output.losses:q} > {log:q} 2>&1"


    rule deepmedic_finetune:
        input:
            pretrained=rules.deepmedic_pretrain.output.model,
            images=[LAYOUT.prep_file(p, "ncect") for p in SPLITS["train"]],
            labels=[LAYOUT.prep_file(p, "ncect_liver") for p in SPLITS["train"]],
            val_images=[LAYOUT.prep_file(p, "ncect") for p in SPLITS["val"]],
            val_labels=[LAYOUT.prep_file(p, "ncect_liver") for p in SPLITS["val"]],
        output:
            model=f"{DEEPMEDIC_DIR}/model.pt",
            losses=f"{DEEPMEDIC_DIR}/losses.csv",
        params:
            settings=settings_json("deepmedic"),
        benchmark:
            LAYOUT.benchmark("deepmedic", "finetune")
        log:
            LAYOUT.log("deepmedic", "finetune"),
        conda:
            "../../envs/torch.yaml"
        threads: DEEPMEDIC_TRAIN_THREADS
        resources:
            mem_mb=DM_BASE_MB + int((len(SPLITS["train"]) + len(SPLITS["val"])) * DM_MB_PER_VOLUME),
            runtime=DM_MINUTES["finetune"],
            gpu=DEEPMEDIC["gpu"],
        shell:
            "python -m baselines.deepmedic train --stage finetune "
            "--settings {params.settings:q} --threads {threads} --init {input.pretrained:q} "
            "--images {input.images:q} --labels {input.labels:q} "
            "--val-images {input.val_images:q} --val-labels {input.val_labels:q} "
            "--out {output.model:q} --losses {output.losses:q} > {log:q} 2>&1"


rule deepmedic_predict:
    input:
        model=f"{DEEPMEDIC_DIR}/model.pt",
        ncect=[LAYOUT.case_file(p, "ncect") for p in DM_FIXED],
    output:
        predictions=predictions("deepmedic"),
        runtimes=runtimes("deepmedic"),
    params:
        settings=settings_json("deepmedic"),
        preprocess=settings_json("preprocess"),
        pairs=TEST_PAIRS,
    benchmark:
        LAYOUT.benchmark("deepmedic", "predict")
    log:
        LAYOUT.log("deepmedic", "predict"),
    conda:
        "../../envs/torch.yaml"
    threads: DEEPMEDIC["threads"]
    resources:
        mem_mb=DM_BASE_MB + int(8 * DM_MB_PER_VOLUME),
        runtime=10 + 2 * len(TEST_PAIRS),
    shell:
        "python -m baselines.deepmedic predict "
        "--settings {params.settings:q} --threads {threads} --model {input.model:q} "
        "--preprocess {params.preprocess:q} --pairs {params.pairs:q} --ncect {input.ncect:q} "
        "--predictions {output.predictions:q} "
        "--runtimes {output.runtimes:q} > {log:q} 2>&1"
