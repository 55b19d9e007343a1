# The mask source as a design factor (docs/evaluation.md): a registration method's final
# mapping, computed once, carries the OTHER CECT liver too. Rows `{id}_cnnmask` carry
# nnU-Net's CECT segmentation (Elastix + CNN's phase 1, elastix_cnn.smk) where the method
# carried the annotation; row `elastix` carries the annotation through Elastix + CNN's
# mapping. One resampling of the original CECT mask onto the original nCECT, like every
# method's. The runtime is the source method's, plus nnU-Net's CECT segmentation where it is
# carried.

# row id -> whether it carries nnU-Net's CECT liver (else the annotation)
CARRIES_NNUNET = {m.id: m.cect_mask == "nnunet" for m in method_registry.MASK_SOURCE_ROWS}


rule carry_mask:
    input:
        cect_liver=lambda wildcards: (
            ELASTIX_CNN_CECT_LIVER if CARRIES_NNUNET[wildcards.method] else moving_files("cect_liver")
        ),
        ncect=fixed_files("ncect"),
        mappings=lambda wildcards: [
            LAYOUT.mapping(REGISTRY[wildcards.method].carries, pair) for pair in TEST_PAIRS
        ],
        source_runtimes=lambda wildcards: runtimes(REGISTRY[wildcards.method].carries),
        extra_runtimes=lambda wildcards: (
            ELASTIX_CNN_CECT_RUNTIMES if CARRIES_NNUNET[wildcards.method] else []
        ),
    output:
        predictions=[LAYOUT.prediction("{method}", pair) for pair in TEST_PAIRS],
        runtimes=[LAYOUT.runtime("{method}", pair) for pair in TEST_PAIRS],
    wildcard_constraints:
        method="|".join(re.escape(m) for m in CARRIES_NNUNET),
    params:
        pairs=TEST_PAIRS,
        extra=lambda wildcards, input: (
            ["--extra-runtimes", *input.extra_runtimes] if input.extra_runtimes else []
        ),
    log:
        LAYOUT.log("{method}", "carry"),
    benchmark:
        LAYOUT.benchmark("{method}", "carry")
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=5 + len(TEST_PAIRS),
    shell:
        "python -m baselines.carry --method {wildcards.method:q} --pairs {params.pairs:q} "
        "--cect-liver {input.cect_liver:q} --ncect {input.ncect:q} --mappings {input.mappings:q} "
        "--source-runtimes {input.source_runtimes:q} {params.extra:q} "
        "--predictions {output.predictions:q} --runtimes {output.runtimes:q} > {log:q} 2>&1"
