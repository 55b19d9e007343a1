# DeepMedic-style baseline (docs/deepmedic.md): pretrain on the MSD(-like) CECT cohort,
# fine-tune on the training patients' nCECT (validated on the validation patients), then
# segment the nCECT of every test pair in one process, timed per pair.

import math

from liverbench.data.splits import parse_pair

DEEPMEDIC = config.get("deepmedic", {})
DEEPMEDIC_DIR = f"{EXP}/models/deepmedic"
DEEPMEDIC_TEST_PATIENTS = [parse_pair(pair)[1] for pair in TEST_PAIRS]
# Memory: volumes held in memory (float32 image + uint8 label) plus the network's working set.
DM_MB_PER_VOLUME = math.prod(config["preprocess"]["shape"]) * 5 / 2**20
DM_BASE_MB = 3000
# Wall time asked of the scheduler: generous for a CPU, ~0.5 s per iteration.
DM_SECONDS_PER_ITERATION = 0.5
DM_PREP = f"{EXP}/preprocessed/h108/{{patient}}"

# The report plots the loss CSV of both stages (see evaluate.smk).
TRAINING_CURVES["deepmedic"] = f"{DEEPMEDIC_DIR}/losses.csv"


rule deepmedic_pretrain:
    input:
        images=expand(f"{EXP}/preprocessed/msd/{{case}}/cect.nii.gz", case=MSD_CASES),
        labels=expand(f"{EXP}/preprocessed/msd/{{case}}/cect_liver.nii.gz", case=MSD_CASES),
    output:
        model=f"{DEEPMEDIC_DIR}/pretrained.pt",
        losses=f"{DEEPMEDIC_DIR}/pretrain_losses.csv",
    params:
        settings=method_settings("deepmedic"),
        seed=SEED,
    benchmark:
        f"{EXP}/benchmarks/deepmedic/pretrain.tsv"
    log:
        f"{EXP}/logs/deepmedic/pretrain.log",
    conda:
        "../../envs/torch.yaml"
    threads: DEEPMEDIC.get("threads", 2)
    resources:
        mem_mb=DM_BASE_MB + int(len(MSD_CASES) * DM_MB_PER_VOLUME),
        runtime=10
        + math.ceil(DEEPMEDIC.get("iterations_pretrain", 20000) * DM_SECONDS_PER_ITERATION / 60),
        gpu=DEEPMEDIC.get("gpu", 0),
    shell:
        "python -m baselines.deepmedic train --stage pretrain "
        "--settings '{params.settings}' --seed {params.seed} --threads {threads} "
        "--images {input.images} --labels {input.labels} --out {output.model} "
        "--losses {output.losses} > {log} 2>&1"


rule deepmedic_finetune:
    input:
        pretrained=rules.deepmedic_pretrain.output.model,
        images=expand(f"{DM_PREP}/ncect.nii.gz", patient=SPLITS["train"]),
        labels=expand(f"{DM_PREP}/ncect_liver.nii.gz", patient=SPLITS["train"]),
        val_images=expand(f"{DM_PREP}/ncect.nii.gz", patient=SPLITS["val"]),
        val_labels=expand(f"{DM_PREP}/ncect_liver.nii.gz", patient=SPLITS["val"]),
    output:
        model=f"{DEEPMEDIC_DIR}/model.pt",
        losses=f"{DEEPMEDIC_DIR}/losses.csv",
    params:
        settings=method_settings("deepmedic"),
        seed=SEED,
    benchmark:
        f"{EXP}/benchmarks/deepmedic/finetune.tsv"
    log:
        f"{EXP}/logs/deepmedic/finetune.log",
    conda:
        "../../envs/torch.yaml"
    threads: DEEPMEDIC.get("threads", 2)
    resources:
        mem_mb=DM_BASE_MB + int((len(SPLITS["train"]) + len(SPLITS["val"])) * DM_MB_PER_VOLUME),
        runtime=10
        + math.ceil(DEEPMEDIC.get("iterations_finetune", 10000) * DM_SECONDS_PER_ITERATION / 60),
        gpu=DEEPMEDIC.get("gpu", 0),
    shell:
        "python -m baselines.deepmedic train --stage finetune "
        "--settings '{params.settings}' --seed {params.seed} --threads {threads} "
        "--init {input.pretrained} "
        "--images {input.images} --labels {input.labels} --val-images {input.val_images} "
        "--val-labels {input.val_labels} --out {output.model} --losses {output.losses} "
        "> {log} 2>&1"


rule deepmedic_predict:
    input:
        model=rules.deepmedic_finetune.output.model,
        inputs=expand(f"{DM_PREP}/ncect.nii.gz", patient=DEEPMEDIC_TEST_PATIENTS),
        references=expand(
            f"{EXP}/data/h108/{{patient}}/ncect.nii.gz", patient=DEEPMEDIC_TEST_PATIENTS
        ),
    output:
        predictions=predictions("deepmedic"),
        runtimes=runtimes("deepmedic"),
    params:
        settings=method_settings("deepmedic"),
        pairs=" ".join(TEST_PAIRS),
    benchmark:
        f"{EXP}/benchmarks/deepmedic/predict.tsv"
    log:
        f"{EXP}/logs/deepmedic/predict.log",
    conda:
        "../../envs/torch.yaml"
    threads: DEEPMEDIC.get("threads", 2)
    resources:
        mem_mb=DM_BASE_MB + int(8 * DM_MB_PER_VOLUME),
        runtime=10 + 2 * len(TEST_PAIRS),
    shell:
        "python -m baselines.deepmedic predict "
        "--settings '{params.settings}' --threads {threads} --model {input.model} "
        "--pairs {params.pairs} --inputs {input.inputs} --references {input.references} "
        "--outputs {output.predictions} --runtimes {output.runtimes} > {log} 2>&1"
