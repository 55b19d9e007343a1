# Data stage: phantom generation (the embedded default) or real data, standardization,
# working grids, splits and registration pairs. See docs/contracts.md.

H108_FILES = ["cect", "cect_liver", "ncect", "ncect_liver"]
PHANTOM_FILES = H108_FILES + ["spect", "ncect_lungs"]


if PHANTOM:

    rule phantom_patient:
        output:
            expand(f"{EXP}/raw/h108/{{{{patient}}}}/{{name}}.nii.gz", name=PHANTOM_FILES),
        params:
            n=COHORT["patients"],
            root=f"{EXP}/raw/h108",
        log:
            f"{EXP}/logs/phantom/{{patient}}.log",
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        shell:
            "python -m liverbench.data.phantom --kind h108 --out {params.root} "
            "--patients {params.n} --seed {SEED} --only {wildcards.patient} > {log} 2>&1"

    rule phantom_manifest:
        output:
            MANIFEST,
        params:
            n=COHORT["patients"],
        log:
            f"{EXP}/logs/phantom/manifest.log",
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=500,
            runtime=5,
        shell:
            "python -m liverbench.data.phantom --kind h108 --manifest {output} "
            "--patients {params.n} > {log} 2>&1"


if not COHORT.get("msd"):

    rule phantom_msd:
        output:
            f"{MSD_ROOT}/dataset.json",
            expand(f"{MSD_ROOT}/imagesTr/{{case}}.nii.gz", case=MSD_CASES),
            expand(f"{MSD_ROOT}/labelsTr/{{case}}.nii.gz", case=MSD_CASES),
        params:
            n=COHORT["msd_cases"],
        log:
            f"{EXP}/logs/phantom/msd.log",
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=20,
        shell:
            "python -m liverbench.data.phantom --kind msd --out {MSD_ROOT} "
            "--patients {params.n} --seed {SEED} > {log} 2>&1"


def manifest_sources(wildcards):
    """The manifest and the patient's source files, so edits to either re-run the patient."""
    if PHANTOM:
        return [MANIFEST] + expand(
            f"{EXP}/raw/h108/{wildcards.patient}/{{name}}.nii.gz", name=PHANTOM_FILES
        )
    rows = {row.patient_id: row for row in adapters.read_manifest(MANIFEST)}
    return [MANIFEST] + [str(p) for p in rows[wildcards.patient].paths.values()]


rule standardize_h108:
    input:
        manifest_sources,
    output:
        expand(f"{EXP}/data/h108/{{{{patient}}}}/{{name}}.nii.gz", name=H108_FILES),
        case=f"{EXP}/data/h108/{{patient}}/case.json",
    log:
        f"{EXP}/logs/standardize/{{patient}}.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    shell:
        "python -m liverbench.data standardize-h108 --manifest {MANIFEST} "
        "--patient {wildcards.patient} --out {EXP}/data/h108/{wildcards.patient} > {log} 2>&1"


rule standardize_msd:
    input:
        f"{MSD_ROOT}/dataset.json",
        f"{MSD_ROOT}/imagesTr/{{case}}.nii.gz",
        f"{MSD_ROOT}/labelsTr/{{case}}.nii.gz",
    output:
        f"{EXP}/data/msd/{{case}}/cect.nii.gz",
        f"{EXP}/data/msd/{{case}}/cect_liver.nii.gz",
    log:
        f"{EXP}/logs/standardize/msd_{{case}}.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    shell:
        "python -m liverbench.data standardize-msd --root {MSD_ROOT} --case {wildcards.case} "
        "--out {EXP}/data/msd/{wildcards.case} > {log} 2>&1"


rule preprocess_h108:
    input:
        expand(f"{EXP}/data/h108/{{{{patient}}}}/{{name}}.nii.gz", name=H108_FILES),
    output:
        expand(f"{EXP}/preprocessed/h108/{{{{patient}}}}/{{name}}.nii.gz", name=H108_FILES),
    params:
        settings=method_settings("preprocess"),
    log:
        f"{EXP}/logs/preprocess/{{patient}}.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    shell:
        "python -m liverbench.data preprocess --case {EXP}/data/h108/{wildcards.patient} "
        "--out {EXP}/preprocessed/h108/{wildcards.patient} --settings '{params.settings}' "
        "> {log} 2>&1"


rule preprocess_msd:
    input:
        f"{EXP}/data/msd/{{case}}/cect.nii.gz",
        f"{EXP}/data/msd/{{case}}/cect_liver.nii.gz",
    output:
        f"{EXP}/preprocessed/msd/{{case}}/cect.nii.gz",
        f"{EXP}/preprocessed/msd/{{case}}/cect_liver.nii.gz",
    params:
        settings=method_settings("preprocess"),
    log:
        f"{EXP}/logs/preprocess/msd_{{case}}.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    shell:
        "python -m liverbench.data preprocess --case {EXP}/data/msd/{wildcards.case} "
        "--out {EXP}/preprocessed/msd/{wildcards.case} --settings '{params.settings}' "
        "> {log} 2>&1"


rule pair:
    input:
        f"{EXP}/data/h108/{{moving}}/cect.nii.gz",
        f"{EXP}/data/h108/{{moving}}/cect_liver.nii.gz",
        f"{EXP}/data/h108/{{fixed}}/ncect.nii.gz",
        f"{EXP}/data/h108/{{fixed}}/ncect_liver.nii.gz",
    output:
        expand(
            f"{EXP}/pairs/{{{{moving}}}}__{{{{fixed}}}}/{{name}}.nii.gz",
            name=["moving", "moving_liver", "fixed", "fixed_liver"],
        ),
    params:
        settings=method_settings("preprocess"),
    log:
        f"{EXP}/logs/pairs/{{moving}}__{{fixed}}.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    shell:
        "python -m liverbench.data pair --moving-case {EXP}/data/h108/{wildcards.moving} "
        "--fixed-case {EXP}/data/h108/{wildcards.fixed} "
        "--out {EXP}/pairs/{wildcards.moving}__{wildcards.fixed} "
        "--settings '{params.settings}' > {log} 2>&1"


rule splits:
    input:
        [] if PHANTOM else [MANIFEST],
    output:
        f"{EXP}/splits.json",
    params:
        patients=" ".join(H108_PATIENTS),
        fractions=" ".join(str(f) for f in COHORT["split_fractions"]),
        manifest="" if PHANTOM else f"--manifest {MANIFEST}",
    log:
        f"{EXP}/logs/splits.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "python -m liverbench.data splits --patients {params.patients} "
        "--fractions {params.fractions} --seed {SEED} "
        "--inter-per-patient {COHORT[inter_per_patient]} {params.manifest} --out {output} "
        "> {log} 2>&1"


def pair_files(pairs):
    """Every file of the given pairs, for rules that take pair folders."""
    return expand(
        f"{EXP}/pairs/{{pair}}/{{name}}.nii.gz",
        pair=pairs,
        name=["moving", "moving_liver", "fixed", "fixed_liver"],
    )
