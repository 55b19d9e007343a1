# Data stage: phantom generation (the embedded default) or real data, standardization,
# working grids, splits and registration pairs. See docs/contracts.md.


if PHANTOM:

    rule phantom_patient:
        output:
            expand(f"{EXP}/raw/h108/{{{{patient}}}}/{{name}}.nii.gz", name=PHANTOM_FILES),
        params:
            n=COHORT["patients"],
            seed=SEED,
            size=COHORT["phantom_size"],
            root=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
        benchmark:
            f"{EXP}/benchmarks/phantom/{{patient}}.tsv"
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
            "--patients {params.n} --seed {params.seed} --size {params.size} "
            "--only {wildcards.patient} > {log} 2>&1"

    rule phantom_manifest:
        output:
            MANIFEST,
        params:
            n=COHORT["patients"],
        benchmark:
            f"{EXP}/benchmarks/phantom/manifest.tsv"
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
            dataset=f"{MSD_ROOT}/dataset.json",
            images=expand(f"{MSD_ROOT}/imagesTr/{{case}}.nii.gz", case=MSD_CASES),
            labels=expand(f"{MSD_ROOT}/labelsTr/{{case}}.nii.gz", case=MSD_CASES),
        params:
            n=COHORT["msd_cases"],
            seed=SEED,
            size=COHORT["phantom_size"],
            root=folder_of,
        benchmark:
            f"{EXP}/benchmarks/phantom/msd.tsv"
        log:
            f"{EXP}/logs/phantom/msd.log",
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=20,
        shell:
            "python -m liverbench.data.phantom --kind msd --out {params.root} "
            "--patients {params.n} --seed {params.seed} --size {params.size} > {log} 2>&1"


rule standardize_h108:
    input:
        manifest_sources,
    output:
        case=f"{EXP}/data/h108/{{patient}}/case.json",
        images=expand(f"{EXP}/data/h108/{{{{patient}}}}/{{name}}.nii.gz", name=H108_FILES),
    params:
        manifest=MANIFEST,
        out=folder_of,
    benchmark:
        f"{EXP}/benchmarks/standardize/{{patient}}.tsv"
    log:
        f"{EXP}/logs/standardize/{{patient}}.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    shell:
        "python -m liverbench.data standardize-h108 --manifest {params.manifest} "
        "--patient {wildcards.patient} --out {params.out} > {log} 2>&1"


rule standardize_msd:
    input:
        dataset=f"{MSD_ROOT}/dataset.json",
        image=f"{MSD_ROOT}/imagesTr/{{case}}.nii.gz",
        label=f"{MSD_ROOT}/labelsTr/{{case}}.nii.gz",
    output:
        f"{EXP}/data/msd/{{case}}/cect.nii.gz",
        f"{EXP}/data/msd/{{case}}/cect_liver.nii.gz",
    params:
        root=lambda wildcards, input: os.path.dirname(input.dataset),
        out=folder_of,
    benchmark:
        f"{EXP}/benchmarks/standardize/msd_{{case}}.tsv"
    log:
        f"{EXP}/logs/standardize/msd_{{case}}.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    shell:
        "python -m liverbench.data standardize-msd --root {params.root} --case {wildcards.case} "
        "--out {params.out} > {log} 2>&1"


rule preprocess_h108:
    input:
        expand(f"{EXP}/data/h108/{{{{patient}}}}/{{name}}.nii.gz", name=H108_FILES),
    output:
        expand(f"{EXP}/preprocessed/h108/{{{{patient}}}}/{{name}}.nii.gz", name=H108_FILES),
    params:
        case=lambda wildcards, input: os.path.dirname(input[0]),
        out=folder_of,
        settings=method_settings("preprocess"),
    benchmark:
        f"{EXP}/benchmarks/preprocess/{{patient}}.tsv"
    log:
        f"{EXP}/logs/preprocess/{{patient}}.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    shell:
        "python -m liverbench.data preprocess --case {params.case} --out {params.out} "
        "--settings '{params.settings}' > {log} 2>&1"


rule preprocess_msd:
    input:
        f"{EXP}/data/msd/{{case}}/cect.nii.gz",
        f"{EXP}/data/msd/{{case}}/cect_liver.nii.gz",
    output:
        f"{EXP}/preprocessed/msd/{{case}}/cect.nii.gz",
        f"{EXP}/preprocessed/msd/{{case}}/cect_liver.nii.gz",
    params:
        case=lambda wildcards, input: os.path.dirname(input[0]),
        out=folder_of,
        settings=method_settings("preprocess"),
    benchmark:
        f"{EXP}/benchmarks/preprocess/msd_{{case}}.tsv"
    log:
        f"{EXP}/logs/preprocess/msd_{{case}}.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    shell:
        "python -m liverbench.data preprocess --case {params.case} --out {params.out} "
        "--settings '{params.settings}' > {log} 2>&1"


rule pair:
    input:
        moving=f"{EXP}/data/h108/{{moving}}/cect.nii.gz",
        moving_liver=f"{EXP}/data/h108/{{moving}}/cect_liver.nii.gz",
        fixed=f"{EXP}/data/h108/{{fixed}}/ncect.nii.gz",
        fixed_liver=f"{EXP}/data/h108/{{fixed}}/ncect_liver.nii.gz",
    output:
        expand(
            f"{EXP}/pairs/{{{{moving}}}}__{{{{fixed}}}}/{{name}}.nii.gz",
            name=["moving", "moving_liver", "fixed", "fixed_liver"],
        ),
    params:
        moving=lambda wildcards, input: os.path.dirname(input.moving),
        fixed=lambda wildcards, input: os.path.dirname(input.fixed),
        out=folder_of,
        settings=method_settings("preprocess"),
    benchmark:
        f"{EXP}/benchmarks/pairs/{{moving}}__{{fixed}}.tsv"
    log:
        f"{EXP}/logs/pairs/{{moving}}__{{fixed}}.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    shell:
        "python -m liverbench.data pair --moving-case {params.moving} "
        "--fixed-case {params.fixed} --out {params.out} --settings '{params.settings}' "
        "> {log} 2>&1"


rule splits:
    input:
        [] if PHANTOM else [MANIFEST],
    output:
        f"{EXP}/splits.json",
    params:
        patients=" ".join(H108_PATIENTS),
        fractions=" ".join(str(f) for f in COHORT["split_fractions"]),
        seed=SEED,
        inter=COHORT["inter_per_patient"],
        manifest="" if PHANTOM else f"--manifest {MANIFEST}",
    benchmark:
        f"{EXP}/benchmarks/splits.tsv"
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
        "--fractions {params.fractions} --seed {params.seed} "
        "--inter-per-patient {params.inter} {params.manifest} --out {output} > {log} 2>&1"
