# RegSegNet (docs/regsegnet.md): one cascade-wise training per loss setting, and one
# prediction job per method variant that registers every test pair (from its pre-alignment)
# and writes its mask, warped CECT and final mapping (pre-alignment ∘ network field).
#
# Method names (put them in `methods` to score them; liverbench.methods.regsegnet_variants):
#   regsegnet               all cascades of the model trained with regsegnet.loss
#   regsegnet_c{k}          the first k cascades of that same model (cascade-wise training
#                           makes them a model of their own): the cascade ablation
#   regsegnet_w{name}       a model trained with the loss weights of regsegnet.loss_grid entry
#   regsegnet_w{name}_c{k}  its first k cascades        (configs/loss_grid.yaml)

from regsegnet.settings import Settings

REGSEGNET = Settings.from_mapping(config["regsegnet"], section="regsegnet")
# Training settings per model, as JSON (params are a rerun trigger: only what training reads).
REGSEGNET_TRAINING = {
    model: json.dumps(REGSEGNET.training_section(model), sort_keys=True)
    for model in REGSEGNET.models()
}
REGSEGNET_METHODS = REGSEGNET.variants()  # method -> (model, cascades used at inference)
REGSEGNET_PREDICTION = json.dumps(REGSEGNET.prediction_section(), sort_keys=True)


# CECT liver segmentations, one per test pair (of its moving patient), when
# regsegnet.moving_mask names a method instead of the annotation.
REGSEGNET_MOVING_MASKS = (
    []
    if REGSEGNET.moving_mask_method is None
    else [LAYOUT.cect_segmentation(REGSEGNET.moving_mask_method, moving_of(p)) for p in TEST_PAIRS]
)

# Wall time asked of a cluster: ~0.5 s per step at 64³ on 2 CPU threads (measured,
# docs/regsegnet.md), proportional to the voxel count; a GPU taken as 20 times faster.
_REGSEGNET_VOXELS = math.prod(config["preprocess"]["shape"])
_REGSEGNET_STEPS = (
    config["regsegnet"]["cascades"] * config["regsegnet"]["epochs"]
    * config["regsegnet"]["iterations"]
)
_REGSEGNET_SECONDS = _REGSEGNET_STEPS * 0.5 * _REGSEGNET_VOXELS / 64**3
REGSEGNET_TRAIN_MINUTES = 30 + int(
    2 * _REGSEGNET_SECONDS / 60 / (20 if config["regsegnet"]["gpu"] else 1)
)
# Memory: the pairs held in memory (~20 bytes per voxel and pair) and the step's tensors
# (~800 bytes per voxel and batch element, measured: 1.37 GB at 64³ with the demo's widths,
# 2.78 GB at 128³ with the paper's; docs/speed.md#memory), with margin.
REGSEGNET_TRAIN_MB = (
    1500
    + len(TRAIN_PAIRS + VAL_PAIRS) * 20 * _REGSEGNET_VOXELS // 2**20
    + config["regsegnet"]["batch_size"] * 1000 * _REGSEGNET_VOXELS // 2**20
)


if TRAINING:  # an external test cohort uses the experiment's models

    rule regsegnet_train:
        input:
            train=pair_files(TRAIN_PAIRS),
            val=pair_files(VAL_PAIRS),
        output:
            model=LAYOUT.model_file("{model}", "model.pt"),
            losses=LAYOUT.model_file("{model}", "losses.csv"),
        wildcard_constraints:
            model="|".join(re.escape(model) for model in REGSEGNET_TRAINING),
        params:
            settings=lambda wildcards: REGSEGNET_TRAINING[wildcards.model],
            train=[LAYOUT.pair_dir(pair) for pair in TRAIN_PAIRS],
            val=[LAYOUT.pair_dir(pair) for pair in VAL_PAIRS],
            out=lambda wildcards: LAYOUT.model_dir(wildcards.model),
        log:
            LAYOUT.log("{model}", "train"),
        benchmark:
            LAYOUT.benchmark("{model}", "train")
        conda:
            "../../envs/torch.yaml"
        threads: config["regsegnet"]["threads"]
        resources:
            mem_mb=REGSEGNET_TRAIN_MB,
            runtime=REGSEGNET_TRAIN_MINUTES,
            gpu=config["regsegnet"]["gpu"],
        shell:
            # A kill leaves checkpoint.pt in the model folder; the rerun resumes from it.
            "python -m regsegnet train --settings {params.settings:q} --threads {threads} "
            "--train-pairs {params.train:q} --val-pairs {params.val:q} "
            "--out {params.out:q} > {log:q} 2>&1"


rule regsegnet_predict:
    input:
        model=lambda wildcards: LAYOUT.model_file(REGSEGNET_METHODS[wildcards.method][0], "model.pt"),
        moving=[LAYOUT.pair_file(pair, "moving") for pair in TEST_PAIRS],
        moving_liver=[LAYOUT.pair_file(pair, "moving_liver") for pair in TEST_PAIRS],
        fixed=[LAYOUT.pair_file(pair, "fixed") for pair in TEST_PAIRS],
        prealign=[LAYOUT.prealign(pair) for pair in TEST_PAIRS],
        pair_timings=[LAYOUT.pair_timing(pair) for pair in TEST_PAIRS],
        originals=fixed_files("ncect"),
        cect_liver=moving_files("cect_liver"),
        moving_masks=REGSEGNET_MOVING_MASKS,
    output:
        predictions=predictions("{method}"),
        runtimes=runtimes("{method}"),
        warped=[LAYOUT.warped("{method}", pair) for pair in TEST_PAIRS],
        mappings=[LAYOUT.mapping("{method}", pair) for pair in TEST_PAIRS],
    wildcard_constraints:
        method="|".join(re.escape(method) for method in REGSEGNET_METHODS),
    params:
        settings=REGSEGNET_PREDICTION,
        pairs=TEST_PAIRS,
        cascades=lambda wildcards: REGSEGNET_METHODS[wildcards.method][1],
        moving_masks=lambda wildcards, input: (
            ["--moving-masks", *input.moving_masks] if input.moving_masks else []
        ),
    log:
        LAYOUT.log("{method}", "predict"),
    benchmark:
        LAYOUT.benchmark("{method}", "predict")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=2000 + 60 * _REGSEGNET_VOXELS // 2**20,
        runtime=30,
    shell:
        "python -m regsegnet predict --settings {params.settings:q} --threads {threads} "
        "--model {input.model:q} --pairs {params.pairs:q} --moving {input.moving:q} "
        "--moving-liver {input.moving_liver:q} --fixed {input.fixed:q} "
        "--prealign {input.prealign:q} --pair-timings {input.pair_timings:q} "
        "--original-ncect {input.originals:q} "
        "--cect-liver {input.cect_liver:q} "
        "--predictions {output.predictions:q} --runtimes {output.runtimes:q} "
        "--warped {output.warped:q} --mappings {output.mappings:q} "
        "{params.moving_masks:q} --cascades {params.cascades} "
        "--method-name {wildcards.method:q} > {log:q} 2>&1"
