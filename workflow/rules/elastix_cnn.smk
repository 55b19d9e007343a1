# Elastix + CNN, the two-phase method of Luu et al. 2023 (docs/elastix_cnn.md).
#   phase 1  nnU-Net liver masks: the CECT model on each test pair's CECT (this file), the
#            nCECT model on its nCECT (= the predictions of method nnunet_ncect, nnunet.smk)
#   phase 2-4  elastix (rigid, then B-spline) CECT -> nCECT with both masks restricting the
#            metric; transformix carries the CECT liver to the nCECT; all test pairs in one
#            process (elastix loads once), each timed. Maps and logs: EXP/elastix_cnn/transforms/.
# The runtime record adds phase 1's seconds to elastix's (extra: seconds_nnunet, seconds_elastix).

import math

ELASTIX_CNN = config.get("elastix_cnn", {})
ELASTIX_CNN_DIR = f"{EXP}/elastix_cnn"


# Wall time asked of the scheduler per pair: ~25 ms per iteration at 2048 samples on 2 cores,
# plus pyramids and transformix.
ELASTIX_CNN_MINUTES_PER_PAIR = 2 + math.ceil(
    sum(
        len(ELASTIX_CNN.get(stage, {}).get("schedule", [[1, 1, 1]] * 5))
        * ELASTIX_CNN.get(stage, {}).get("iterations", 500)
        for stage in ("rigid", "bspline")
    )
    * 0.025
    / 60
)


rule elastix_cnn_segment_cect:
    input:
        model=f"{EXP}/models/nnunet/cect.json",
        cases=expand(f"{EXP}/data/h108/{{patient}}/case.json", patient=TEST_PATIENTS),
    output:
        masks=expand(f"{ELASTIX_CNN_DIR}/cect_liver/{{pair}}.nii.gz", pair=TEST_PAIRS),
        runtimes=expand(f"{ELASTIX_CNN_DIR}/cect_liver_runtime/{{pair}}.json", pair=TEST_PAIRS),
    params:
        settings=method_settings("nnunet"),
        pairs=" ".join(TEST_PAIRS),
        cases=lambda wildcards, input: os.path.dirname(os.path.dirname(input.cases[0])),
        out=lambda wildcards, output: os.path.dirname(output.masks[0]),
        runtime=lambda wildcards, output: os.path.dirname(output.runtimes[0]),
    benchmark:
        f"{EXP}/benchmarks/elastix_cnn/segment_cect.tsv"
    log:
        f"{EXP}/logs/elastix_cnn/segment_cect.log",
    conda:
        "../../envs/nnunet.yaml"
    threads: config.get("nnunet", {}).get("threads", 2)
    resources:
        mem_mb=6000,
        runtime=10 + 2 * len(TEST_PAIRS),
    shell:
        "python -m baselines.nnunet predict --settings '{params.settings}' --threads {threads} "
        "--model {input.model} --image cect --cases {params.cases} --pairs {params.pairs} "
        "--method nnunet_cect --out-dir {params.out} --runtime-dir {params.runtime} "
        "> {log} 2>&1"


rule elastix_cnn_register:
    input:
        cect_liver=rules.elastix_cnn_segment_cect.output.masks,
        cect_runtime=rules.elastix_cnn_segment_cect.output.runtimes,
        ncect_liver=predictions("nnunet_ncect"),
        ncect_runtime=runtimes("nnunet_ncect"),
        cases=expand(f"{EXP}/data/h108/{{patient}}/case.json", patient=TEST_PATIENTS),
    output:
        predictions=predictions("elastix_cnn"),
        runtimes=runtimes("elastix_cnn"),
    params:
        settings=method_settings("elastix_cnn"),
        pairs=" ".join(TEST_PAIRS),
        cases=lambda wildcards, input: os.path.dirname(os.path.dirname(input.cases[0])),
        cect_liver=lambda wildcards, input: os.path.dirname(input.cect_liver[0]),
        cect_runtime=lambda wildcards, input: os.path.dirname(input.cect_runtime[0]),
        ncect_liver=lambda wildcards, input: os.path.dirname(input.ncect_liver[0]),
        ncect_runtime=lambda wildcards, input: os.path.dirname(input.ncect_runtime[0]),
        out=lambda wildcards, output: os.path.dirname(output.predictions[0]),
        runtime=lambda wildcards, output: os.path.dirname(output.runtimes[0]),
        transforms=f"{ELASTIX_CNN_DIR}/transforms",
    benchmark:
        f"{EXP}/benchmarks/elastix_cnn/register.tsv"
    log:
        f"{EXP}/logs/elastix_cnn/register.log",
    conda:
        "../../envs/elastix.yaml"
    threads: ELASTIX_CNN.get("threads", 2)
    resources:
        mem_mb=4000,
        runtime=5 + ELASTIX_CNN_MINUTES_PER_PAIR * len(TEST_PAIRS),
    shell:
        "python -m baselines.elastix_cnn register --settings '{params.settings}' "
        "--threads {threads} --cases {params.cases} --pairs {params.pairs} "
        "--cect-liver-dir {params.cect_liver} --cect-runtime-dir {params.cect_runtime} "
        "--ncect-liver-dir {params.ncect_liver} --ncect-runtime-dir {params.ncect_runtime} "
        "--out-dir {params.out} --runtime-dir {params.runtime} "
        "--transforms-dir {params.transforms} > {log} 2>&1"
