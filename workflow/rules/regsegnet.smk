# RegSegNet (docs/regsegnet.md): one cascade-wise training per loss setting, and one
# prediction job per method variant that registers every test pair.
#
# Method names (put them in `methods` to score them):
#   regsegnet               all cascades of the model trained with regsegnet.loss
#   regsegnet_c{k}          the first k cascades of that same model (cascade-wise training
#                           makes them a model of their own): the cascade ablation
#   regsegnet_w{name}       a model trained with the loss weights of regsegnet.loss_grid entry
#   regsegnet_w{name}_c{k}  its first k cascades        (configs/loss_grid.yaml)

import math
import re

from liverbench.data.splits import parse_pair

REGSEGNET = config.get("regsegnet", {})
REGSEGNET_CASCADES = REGSEGNET.get("cascades", 3)
REGSEGNET_GRID = {entry["name"]: entry for entry in REGSEGNET.get("loss_grid", [])}
for _name in REGSEGNET_GRID:
    if re.search(r"_c[0-9]+$", _name):
        raise ValueError(f"config: regsegnet.loss_grid name {_name!r} must not end in _c<k>")

# Training settings per model: the section without what only prediction uses (so editing the
# grid or the test-time mask source retrains nothing: params are a rerun trigger), the grid
# entry's loss weights, and the seed.
REGSEGNET_TRAINING = {}
for _model, _entry in [("regsegnet", {})] + [
    (f"regsegnet_w{name}", entry) for name, entry in REGSEGNET_GRID.items()
]:
    _settings = {k: v for k, v in REGSEGNET.items() if k not in ("loss_grid", "moving_mask")}
    _weights = {k: v for k, v in _entry.items() if k != "name"}
    _settings["loss"] = {**REGSEGNET.get("loss", {}), **_weights}
    if _settings.get("seed") is None:
        _settings["seed"] = SEED
    REGSEGNET_TRAINING[_model] = json.dumps(_settings, sort_keys=True)

# Method variant -> (model, cascades used at inference).
REGSEGNET_METHODS = {}
for _model in REGSEGNET_TRAINING:
    REGSEGNET_METHODS[_model] = (_model, REGSEGNET_CASCADES)
    for _k in range(1, REGSEGNET_CASCADES + 1):
        REGSEGNET_METHODS[f"{_model}_c{_k}"] = (_model, _k)

REGSEGNET_PREDICTION = json.dumps(
    {k: REGSEGNET[k] for k in ("device", "moving_mask") if k in REGSEGNET}, sort_keys=True
)
# CECT liver segmentations when regsegnet.moving_mask names a method (contract:
# EXP/cect_segmentations/{method}/{patient}.nii.gz, in the original CECT geometry).
REGSEGNET_MOVING_MASKS = (
    []
    if REGSEGNET.get("moving_mask", "annotation") == "annotation"
    else expand(
        f"{EXP}/cect_segmentations/{REGSEGNET['moving_mask']}/{{patient}}.nii.gz",
        patient=sorted({parse_pair(pair)[0] for pair in TEST_PAIRS}),
    )
)

# Wall time asked of a cluster: ~0.5 s per step at 64³ on 2 CPU threads (measured,
# docs/regsegnet.md), proportional to the voxel count; a GPU taken as 20 times faster.
_steps = REGSEGNET_CASCADES * REGSEGNET.get("epochs", 1) * REGSEGNET.get("iterations", 1)
_seconds = _steps * 0.5 * math.prod(config["preprocess"]["shape"]) / 64**3
REGSEGNET_TRAIN_MINUTES = 30 + int(2 * _seconds / 60 / (20 if REGSEGNET.get("gpu", 0) else 1))
# Memory: the pairs are held in memory, ~20 bytes per voxel and pair.
REGSEGNET_TRAIN_MB = 2000 + len(TRAIN_PAIRS + VAL_PAIRS) * 20 * math.prod(
    config["preprocess"]["shape"]
) // 2**20

# What the report draws: loss curves of each trained model, checkerboards of each variant.
TRAINING_CURVES = globals().get("TRAINING_CURVES", {})
WARPED_CECT = globals().get("WARPED_CECT", {})
for _method, (_model, _k) in REGSEGNET_METHODS.items():
    if _method == _model:
        TRAINING_CURVES[_method] = f"{EXP}/models/{_model}/losses.csv"
    WARPED_CECT[_method] = f"{EXP}/warped/{_method}/{{pair}}.nii.gz"


rule regsegnet_train:
    input:
        train=pair_files(TRAIN_PAIRS),
        val=pair_files(VAL_PAIRS),
    output:
        model=f"{EXP}/models/{{model}}/model.pt",
        losses=f"{EXP}/models/{{model}}/losses.csv",
    wildcard_constraints:
        model="|".join(re.escape(model) for model in REGSEGNET_TRAINING),
    params:
        settings=lambda wildcards: REGSEGNET_TRAINING[wildcards.model],
        shape=" ".join(str(s) for s in config["preprocess"]["shape"]),
        train=lambda wildcards, input: " ".join(dict.fromkeys(map(os.path.dirname, input.train))),
        val=lambda wildcards, input: " ".join(dict.fromkeys(map(os.path.dirname, input.val))),
        out=lambda wildcards, output: os.path.dirname(output.model),
    log:
        f"{EXP}/logs/{{model}}/train.log",
    benchmark:
        f"{EXP}/benchmarks/{{model}}/train.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 8
    resources:
        mem_mb=REGSEGNET_TRAIN_MB,
        runtime=REGSEGNET_TRAIN_MINUTES,
        gpu=REGSEGNET.get("gpu", 0),
    shell:
        # A kill leaves checkpoint.pt in the model folder; the rerun resumes from it.
        "python -m regsegnet train --settings '{params.settings}' --threads {threads} "
        "--shape {params.shape} --train-pairs {params.train} --val-pairs {params.val} "
        "--out {params.out} > {log} 2>&1"


rule regsegnet_predict:
    input:
        model=lambda wildcards: "{}/models/{}/model.pt".format(
            EXP, REGSEGNET_METHODS[wildcards.method][0]
        ),
        fixed=expand(f"{EXP}/pairs/{{pair}}/fixed.nii.gz", pair=TEST_PAIRS),
        moving=expand(
            f"{EXP}/pairs/{{pair}}/{{name}}.nii.gz",
            pair=TEST_PAIRS,
            name=["moving", "moving_liver"],
        ),
        originals=[f"{case_dir(parse_pair(pair)[1])}/ncect.nii.gz" for pair in TEST_PAIRS],
        moving_masks=REGSEGNET_MOVING_MASKS,
    output:
        predictions=predictions("{{method}}"),
        runtimes=runtimes("{{method}}"),
        warped=expand(f"{EXP}/warped/{{{{method}}}}/{{pair}}.nii.gz", pair=TEST_PAIRS),
    wildcard_constraints:
        method="|".join(re.escape(method) for method in REGSEGNET_METHODS),
    params:
        settings=REGSEGNET_PREDICTION,
        pairs=lambda wildcards, input: " ".join(map(os.path.dirname, input.fixed)),
        cascades=lambda wildcards: REGSEGNET_METHODS[wildcards.method][1],
        moving_mask_dir=lambda wildcards, input: (
            f"--moving-mask-dir {os.path.dirname(input.moving_masks[0])}"
            if input.moving_masks
            else ""
        ),
        out=lambda wildcards, output: os.path.dirname(output.predictions[0]),
        runtime=lambda wildcards, output: os.path.dirname(output.runtimes[0]),
        warped=lambda wildcards, output: os.path.dirname(output.warped[0]),
    log:
        f"{EXP}/logs/{{method}}/predict.log",
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=2000 + 60 * math.prod(config["preprocess"]["shape"]) // 2**20,
        runtime=30,
    shell:
        "python -m regsegnet predict --settings '{params.settings}' --threads {threads} "
        "--model {input.model} --pair {params.pairs} --original-ncect {input.originals} "
        "--cascades {params.cascades} --method-name {wildcards.method} "
        "--out-dir {params.out} --runtime-dir {params.runtime} --warped-dir {params.warped} "
        "{params.moving_mask_dir} > {log} 2>&1"
