# Evaluation: per-pair metrics of every selected method, from its prediction files only; Table
# 1, the extended table, figures and provenance. Every path comes from LAYOUT; what the report
# draws per method (a loss CSV, warped CECTs) comes from the method registry
# (liverbench/methods.py). `rule all` builds `REPORT_TARGETS`.

LABELS = config["evaluation"]["method_labels"]  # filled for every selected method
LABELS_JSON = json.dumps(LABELS, sort_keys=True)  # the figures' --labels-json
METRIC_FILES = [LAYOUT.metrics(method) for method in METHODS]
CURVES = {m.id: m.training_curve(LAYOUT) for m in SELECTED if m.training_curve}
WARPED_METHODS = [m.id for m in SELECTED if m.warped]
# Methods that write their final mapping (scored against the cohort's true motion), and the
# registration methods among them, whose displacement beyond `rigid` the report plots.
MAPPED_METHODS = [m.id for m in SELECTED if m.mapping]
MAPPING_OWNER = {m.id: m.mapping_owner for m in SELECTED}  # a mask-source row: its source's
# The registration x CECT mask source table: every selected row with a mapping, by the
# registration it carries through and the CECT liver it carries.
MASK_SOURCES = json.dumps({
    m.id: {
        "registration": REGISTRY[m.mapping_owner].registration
        or LABELS.get(m.mapping_owner, REGISTRY[m.mapping_owner].label),
        "mask": m.cect_mask,
    }
    for m in SELECTED if m.mapping
}, sort_keys=True)
# Only rows carrying the annotated CECT liver, as `rigid` does: a row carrying another mask
# would add that mask's own offset to the displacement it is credited with.
DISPLACEMENT_METHODS = [
    m.id for m in SELECTED
    if m.mapping and m.family == method_registry.REGISTRATION and m.cect_mask == "annotation"
]
# The displacement figure needs the pre-alignment row and the centroid columns, which the
# evaluation writes only where the cohort has a true motion.
DISPLACEMENT_FIGURE = HAS_TRUTH and "rigid" in METHODS and bool(DISPLACEMENT_METHODS)


# Everything `rule all` builds: metrics, tables, figures, overlays, provenance, and the
# training curves and checkerboards of the methods that declare them. An external cohort's
# module builds its metrics, tables, summary figures and overlays; what describes training
# (curves, checkerboards of the training run, provenance) is the main run's.
REPORT_TARGETS = (
    METRIC_FILES
    + [
        LAYOUT.table("table1", "html"),
        LAYOUT.table("table_extended", "html"),
        LAYOUT.figure("metrics_boxplot"),
    ]
    + [LAYOUT.figure("overlays", pair) for pair in TEST_PAIRS]
    + ([LAYOUT.figure("displacement")] if DISPLACEMENT_FIGURE else [])
)
if TRAINING:
    REPORT_TARGETS += (
        [LAYOUT.provenance("html")]
        + [LAYOUT.figure("training", method) for method in CURVES]
        + [LAYOUT.figure("checkerboard", m, pair) for m in WARPED_METHODS for pair in TEST_PAIRS]
    )


rule metrics:
    input:
        predictions=lambda wildcards: predictions(wildcards.method),
        runtimes=lambda wildcards: runtimes(wildcards.method),
        references=fixed_files("ncect_liver"),
        # the lung shunt fraction, where the cohort has SPECT
        spect=fixed_files("spect") if HAS_SPECT else [],
        lungs=fixed_files("ncect_lungs") if HAS_SPECT else [],
        # registration error, where the cohort has a true motion: the fixed patient's, and
        # the method's final mapping where it writes one
        truths=fixed_files(TRUTH_FILE) if HAS_TRUTH else [],
        mappings=lambda wildcards: (
            [LAYOUT.mapping(MAPPING_OWNER[wildcards.method], pair) for pair in TEST_PAIRS]
            if HAS_TRUTH and wildcards.method in MAPPED_METHODS
            else []
        ),
    output:
        report(
            LAYOUT.metrics("{method}"),
            caption="../report/metrics_per_case.rst",
            **report_place("4. Per-case metrics"),
            labels={"method": "{method}"},
        ),
    params:
        pairs=TEST_PAIRS,
        lsf=lambda wildcards, input: (
            ["--spect", *input.spect, "--lungs", *input.lungs] if HAS_SPECT else []
        ),
        truth=lambda wildcards, input: (
            (["--truths", *input.truths] if HAS_TRUTH else [])
            + (["--mappings", *input.mappings] if input.mappings else [])
        ),
    benchmark:
        LAYOUT.benchmark("metrics", "{method}")
    log:
        LAYOUT.log("metrics", "{method}"),
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
    shell:
        "python -m liverbench.evaluation.evaluate --method {wildcards.method:q} "
        "--pairs {params.pairs:q} --predictions {input.predictions:q} "
        "--runtimes {input.runtimes:q} --references {input.references:q} {params.lsf:q} "
        "{params.truth:q} --out {output:q} > {log:q} 2>&1"


rule tables:
    input:
        metrics=METRIC_FILES,
    output:
        table1_csv=LAYOUT.table("table1", "csv"),
        table1_paper=LAYOUT.table("table1_paper", "csv"),  # the paper's printed rows, apart
        table1_md=LAYOUT.table("table1", "md"),
        table1_tex=LAYOUT.table("table1", "tex"),
        table1_html=report(
            LAYOUT.table("table1", "html"),
            caption="../report/table1.rst",
            **report_place("1. Table 1"),
        ),
        extended_csv=LAYOUT.table("table_extended", "csv"),
        extended_md=LAYOUT.table("table_extended", "md"),
        extended_html=report(
            LAYOUT.table("table_extended", "html"),
            caption="../report/table_extended.rst",
            **report_place("2. Extended table"),
        ),
        mask_source_csv=LAYOUT.table("table_mask_source", "csv"),
        mask_source_md=LAYOUT.table("table_mask_source", "md"),
        mask_source_html=report(
            LAYOUT.table("table_mask_source", "html"),
            caption="../report/table_mask_source.rst",
            **report_place("1. Table 1"),
        ),
        runtime_csv=LAYOUT.table("table_runtime", "csv"),
        runtime_md=LAYOUT.table("table_runtime", "md"),
        runtime_html=report(
            LAYOUT.table("table_runtime", "html"),
            caption="../report/table_runtime.rst",
            **report_place("1. Table 1"),
        ),
        speed_ratio=LAYOUT.table("speed_ratio", "csv"),
    params:
        settings=settings_json("evaluation"),
        experiment=config["experiment"] + (f", external cohort {EXTERNAL}" if EXTERNAL else ""),
        seed=SEED,
        mask_sources=MASK_SOURCES,
        out=lambda wildcards, output: os.path.dirname(output.table1_csv),
    benchmark:
        LAYOUT.benchmark("report", "tables")
    log:
        LAYOUT.log("report", "tables"),
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m liverbench.evaluation.tables --metrics {input.metrics:q} "
        "--settings {params.settings:q} --experiment {params.experiment:q} "
        "--seed {params.seed:q} --mask-sources {params.mask_sources:q} "
        "--out-dir {params.out:q} > {log:q} 2>&1"


rule figures_summary:
    input:
        metrics=METRIC_FILES,
    output:
        boxplot=report(
            LAYOUT.figure("metrics_boxplot"),
            caption="../report/metrics_boxplot.rst",
            **report_place("3. Figures", "Metrics and runtime"),
        ),
        runtime=report(
            LAYOUT.figure("runtime"),
            caption="../report/runtime.rst",
            **report_place("3. Figures", "Metrics and runtime"),
        ),
        accuracy=report(
            LAYOUT.figure("accuracy_runtime"),
            caption="../report/accuracy_runtime.rst",
            **report_place("3. Figures", "Metrics and runtime"),
        ),
        lsf=report(
            LAYOUT.figure("lsf_bland_altman"),
            caption="../report/lsf_bland_altman.rst",
            **report_place("3. Figures", "Lung shunt fraction"),
        ),
    params:
        labels=LABELS_JSON,
        out=lambda wildcards, output: os.path.dirname(output.boxplot),
    benchmark:
        LAYOUT.benchmark("report", "figures_summary")
    log:
        LAYOUT.log("report", "figures_summary"),
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m liverbench.evaluation.figures summary --metrics {input.metrics:q} "
        "--out-dir {params.out:q} --labels-json {params.labels:q} > {log:q} 2>&1"


rule figure_displacement:
    input:
        metrics=[LAYOUT.metrics(method) for method in DISPLACEMENT_METHODS],
        baseline=LAYOUT.metrics("rigid"),
    output:
        figure=report(
            LAYOUT.figure("displacement"),
            caption="../report/displacement.rst",
            **report_place("3. Figures", "Registration against the true motion"),
        ),
        # the correlation per method, for the closing note of a run
        csv=LAYOUT.table("figures/displacement", "csv"),
    params:
        labels=LABELS_JSON,
    benchmark:
        LAYOUT.benchmark("report", "figure_displacement")
    log:
        LAYOUT.log("report", "figure_displacement"),
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m liverbench.evaluation.figures displacement --metrics {input.metrics:q} "
        "--baseline {input.baseline:q} --out {output.figure:q} --csv {output.csv:q} "
        "--labels-json {params.labels:q} > {log:q} 2>&1"


rule figure_overlay:
    input:
        ncect=lambda wildcards: LAYOUT.case_file(fixed_of(wildcards.pair), "ncect"),
        liver=lambda wildcards: LAYOUT.case_file(fixed_of(wildcards.pair), "ncect_liver"),
        predictions=lambda wildcards: [LAYOUT.prediction(m, wildcards.pair) for m in METHODS],
    output:
        report(
            LAYOUT.figure("overlays", "{pair}"),
            caption="../report/overlay.rst",
            **report_place("3. Figures", "Contours per test pair"),
            labels={"pair": "{pair}"},
        ),
    params:
        predictions=lambda wildcards, input: [
            f"{method}={path}" for method, path in zip(METHODS, input.predictions)
        ],
        labels=LABELS_JSON,
    benchmark:
        LAYOUT.benchmark("report", "overlay_{pair}")
    log:
        LAYOUT.log("report", "overlay_{pair}"),
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    shell:
        "python -m liverbench.evaluation.figures overlays --pair {wildcards.pair:q} "
        "--ncect {input.ncect:q} --liver {input.liver:q} --predictions {params.predictions:q} "
        "--out {output:q} --labels-json {params.labels:q} > {log:q} 2>&1"


rule figure_checkerboard:
    input:
        fixed=LAYOUT.pair_file("{pair}", "fixed"),
        moving=LAYOUT.pair_file("{pair}", "moving"),
        warped=LAYOUT.warped("{method}", "{pair}"),
    output:
        report(
            LAYOUT.figure("checkerboard", "{method}", "{pair}"),
            caption="../report/checkerboard.rst",
            **report_place("3. Figures", "Registration checkerboards"),
            labels={"method": "{method}", "pair": "{pair}"},
        ),
    params:
        title=lambda wildcards: f"{LABELS[wildcards.method]}, pair {wildcards.pair}",
    benchmark:
        LAYOUT.benchmark("report", "checkerboard_{method}_{pair}")
    log:
        LAYOUT.log("report", "checkerboard_{method}_{pair}"),
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    shell:
        "python -m liverbench.evaluation.figures checkerboard --fixed {input.fixed:q} "
        "--moving {input.moving:q} --warped {input.warped:q} --out {output:q} "
        "--title {params.title:q} > {log:q} 2>&1"


rule figure_training:
    input:
        lambda wildcards: CURVES[wildcards.method],
    output:
        report(
            LAYOUT.figure("training", "{method}"),
            caption="../report/training.rst",
            **report_place("3. Figures", "Training curves"),
            labels={"method": "{method}"},
        ),
    params:
        title=lambda wildcards: f"{LABELS[wildcards.method]}: training",
    benchmark:
        LAYOUT.benchmark("report", "training_{method}")
    log:
        LAYOUT.log("report", "training_{method}"),
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m liverbench.evaluation.figures training --csv {input:q} --out {output:q} "
        "--title {params.title:q} > {log:q} 2>&1"


rule provenance:
    input:
        metrics=METRIC_FILES,  # after the methods ran, so the record describes the finished run
        config=LAYOUT.resolved_config,  # rewritten by common.smk only when its content changes
    output:
        json=LAYOUT.provenance("json"),
        md=LAYOUT.provenance("md"),
        html=report(
            LAYOUT.provenance("html"),
            caption="../report/provenance.rst",
            **report_place("4. Provenance"),
        ),
    benchmark:
        LAYOUT.benchmark("report", "provenance")
    log:
        LAYOUT.log("report", "provenance"),
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    shell:
        "python -m liverbench.evaluation.provenance --config {input.config:q} "
        "--out-json {output.json:q} --out-md {output.md:q} --out-html {output.html:q} "
        "> {log:q} 2>&1"


# The speed benchmark's table (benchmarks/speed.py, run by hand on an idle machine after the
# run): in the report when results/<experiment>/speed.csv exists.
SPEED_CSV = LAYOUT.table("speed", "csv")
if TRAINING and os.path.exists(SPEED_CSV):
    REPORT_TARGETS.append(LAYOUT.table("speed", "html"))

    rule speed_table:
        input:
            SPEED_CSV,
        output:
            md=LAYOUT.table("speed", "md"),
            html=report(
                LAYOUT.table("speed", "html"),
                caption="../report/speed.rst",
                **report_place("1. Table 1"),
            ),
        log:
            LAYOUT.log("report", "speed_table"),
        benchmark:
            LAYOUT.benchmark("report", "speed_table")
        conda:
            "../../envs/report.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=5,
        shell:
            "python -m liverbench.evaluation.speed_table --csv {input:q} --html {output.html:q} "
            "--md {output.md:q} > {log:q} 2>&1"
