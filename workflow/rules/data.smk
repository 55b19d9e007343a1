# Data stage: phantom generation (the embedded default) or real data, standardization,
# working grids and registration pairs. See docs/contracts.md. Splits and pairs are computed
# once, in common.smk, and recorded in splits.json.

DATA_COMMAND = "python -m liverbench.data"


if PHANTOM:

    rule phantom_patient:
        output:
            [LAYOUT.phantom_file("{patient}", name) for name in PHANTOM_FILES],
        params:
            n=COHORT["patients"],
            seed=SEED,
            size=COHORT["phantom_size"],
            root=lambda wildcards: LAYOUT.phantom_root,
        benchmark:
            LAYOUT.benchmark("phantom", "{patient}")
        log:
            LAYOUT.log("phantom", "{patient}"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        shell:
            "python -m liverbench.data.phantom --kind h108 --out {params.root:q} "
            "--patients {params.n} --seed {params.seed} --size {params.size:q} "
            "--only {wildcards.patient:q} > {log:q} 2>&1"


if DERIVED:
    # A derived real-anatomy cohort (docs/derived.md): each source contrast CT and its liver
    # mask -> an H108-like patient with a simulated nCECT, SPECT and the true motion.
    from liverbench.data.derive import source_files

    DERIVED_FROM = COHORT["derived_from"]

    rule derive_patient:
        input:
            lambda wildcards: source_files(DERIVED_FROM["source"], wildcards.patient),
        output:
            [LAYOUT.derived_file("{patient}", name) for name in PHANTOM_FILES],
        params:
            source=DERIVED_FROM["source"],
            seed=cohorts.derived_seed(COHORT, SEED),
            root=lambda wildcards: LAYOUT.derived_root,
        benchmark:
            LAYOUT.benchmark("derive", "{patient}")
        log:
            LAYOUT.log("derive", "{patient}"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=data_memory("derive"),
            runtime=15,
        shell:
            "python -m liverbench.data.derive --source {params.source:q} --out {params.root:q} "
            "--seed {params.seed} --only {wildcards.patient:q} > {log:q} 2>&1"


if TRAINING and not COHORT["msd"]:

    rule phantom_msd:
        output:
            dataset=f"{MSD_ROOT}/dataset.json",
            images=expand(f"{MSD_ROOT}/imagesTr/{{case}}.nii.gz", case=MSD_CASES),
            labels=expand(f"{MSD_ROOT}/labelsTr/{{case}}.nii.gz", case=MSD_CASES),
        params:
            n=COHORT["msd_cases"],
            seed=SEED,
            size=COHORT["phantom_size"],
            root=lambda wildcards: MSD_ROOT,
        benchmark:
            LAYOUT.benchmark("phantom", "msd")
        log:
            LAYOUT.log("phantom", "msd"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=20,
        shell:
            "python -m liverbench.data.phantom --kind msd --out {params.root:q} "
            "--patients {params.n} --seed {params.seed} --size {params.size:q} > {log:q} 2>&1"


rule standardize_h108:
    input:
        # the patient's source files by name (from the manifest, parsed once, or the phantom);
        # a mask in an RTSTRUCT or DICOM-SEG is `path::label`: the input is the file alone
        unpack(
            lambda wildcards: {
                n: source_file(CASE_SOURCES[wildcards.patient][n]) for n in STANDARD_FILES
            }
        ),
    output:
        case=LAYOUT.case_record("{patient}"),
        images=[LAYOUT.case_file("{patient}", name) for name in STANDARD_FILES],
    params:
        sources=lambda wildcards: [
            f"{name}={CASE_SOURCES[wildcards.patient][name]}" for name in STANDARD_FILES
        ],
        out=lambda wildcards: LAYOUT.case_dir(wildcards.patient),
    benchmark:
        LAYOUT.benchmark("standardize", "{patient}")
    log:
        LAYOUT.log("standardize", "{patient}"),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=data_memory("standardize"),
        runtime=10,
    shell:
        f"{DATA_COMMAND} standardize-h108 --patient {{wildcards.patient:q}} "
        "--sources {params.sources:q} --out {params.out:q} > {log:q} 2>&1"


if TRAINING:  # an external test cohort uses the experiment's models

    rule standardize_msd:
        input:
            dataset=f"{MSD_ROOT}/dataset.json",
            image=f"{MSD_ROOT}/imagesTr/{{case}}.nii.gz",
            label=f"{MSD_ROOT}/labelsTr/{{case}}.nii.gz",
        output:
            [LAYOUT.msd_case_file("{case}", name) for name in MSD_FILES],
        params:
            root=lambda wildcards: MSD_ROOT,
            out=lambda wildcards: LAYOUT.msd_case_dir(wildcards.case),
        benchmark:
            LAYOUT.benchmark("standardize", "msd_{case}")
        log:
            LAYOUT.log("standardize", "msd_{case}"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=data_memory("standardize"),
            runtime=10,
        shell:
            f"{DATA_COMMAND} standardize-msd --root {{params.root:q}} --case {{wildcards.case:q}} "
            "--out {params.out:q} > {log:q} 2>&1"


rule preprocess_h108:
    input:
        [LAYOUT.case_file("{patient}", name) for name in CASE_FILES],
    output:
        [LAYOUT.prep_file("{patient}", name) for name in CASE_FILES],
    params:
        case=lambda wildcards: LAYOUT.case_dir(wildcards.patient),
        out=lambda wildcards: LAYOUT.prep_dir(wildcards.patient),
        settings=settings_json("preprocess"),
    benchmark:
        LAYOUT.benchmark("preprocess", "{patient}")
    log:
        LAYOUT.log("preprocess", "{patient}"),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=data_memory(
            "preprocess", lambda w: [CASE_SOURCES[w.patient][n] for n in CASE_FILES]
        ),
        runtime=10,
    shell:
        f"{DATA_COMMAND} preprocess --case {{params.case:q}} --out {{params.out:q}} "
        "--settings {params.settings:q} > {log:q} 2>&1"


if TRAINING:  # an external test cohort uses the experiment's models

    rule preprocess_msd:
        input:
            [LAYOUT.msd_case_file("{case}", name) for name in MSD_FILES],
        output:
            [LAYOUT.msd_prep_file("{case}", name) for name in MSD_FILES],
        params:
            case=lambda wildcards: LAYOUT.msd_case_dir(wildcards.case),
            out=lambda wildcards: LAYOUT.msd_prep_dir(wildcards.case),
            settings=settings_json("preprocess"),
        benchmark:
            LAYOUT.benchmark("preprocess", "msd_{case}")
        log:
            LAYOUT.log("preprocess", "msd_{case}"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=data_memory("preprocess", lambda w: [f"{MSD_ROOT}/imagesTr/{w.case}.nii.gz"]),
            runtime=10,
        shell:
            f"{DATA_COMMAND} preprocess --case {{params.case:q}} --out {{params.out:q}} "
            "--settings {params.settings:q} > {log:q} 2>&1"


rule pair:
    input:
        moving=LAYOUT.case_file("{moving}", "cect"),
        moving_liver=LAYOUT.case_file("{moving}", "cect_liver"),
        fixed=LAYOUT.case_file("{fixed}", "ncect"),
        fixed_liver=LAYOUT.case_file("{fixed}", "ncect_liver"),
    output:
        images=[LAYOUT.pair_file(pair_id("{moving}", "{fixed}"), name) for name in PAIR_FILES],
        prealign=LAYOUT.prealign(pair_id("{moving}", "{fixed}")),
        timing=LAYOUT.pair_timing(pair_id("{moving}", "{fixed}")),
    params:
        out=lambda wildcards: LAYOUT.pair_dir(pair_id(wildcards.moving, wildcards.fixed)),
        settings=settings_json("preprocess"),
        prealign=settings_json("prealign"),
    benchmark:
        LAYOUT.benchmark("pairs", pair_id("{moving}", "{fixed}"))
    log:
        LAYOUT.log("pairs", pair_id("{moving}", "{fixed}")),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=data_memory("pair"),
        runtime=10,
    shell:
        f"{DATA_COMMAND} pair --moving {{input.moving:q}} --moving-liver {{input.moving_liver:q}} "
        "--fixed {input.fixed:q} --fixed-liver {input.fixed_liver:q} --out {params.out:q} "
        "--settings {params.settings:q} --prealign-settings {params.prealign:q} "
        "--prealign-out {output.prealign:q} --timing-out {output.timing:q} > {log:q} 2>&1"
