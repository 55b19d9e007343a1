# Evaluation: per-pair metrics of every method, from prediction files only; Table 1, the
# extended table, figures and provenance. Everything lands in results/{experiment}/.
#
# Method rule files may register, for the report (in dicts created in common.smk):
#   TRAINING_CURVES[method] = path of a loss CSV (column `epoch`, numeric loss columns,
#                              optional `cascade`/`stage`)      -> figures/training/{method}.png
#   WARPED_CECT[method]     = path pattern with {pair}: the warped CECT on the pair's working
#                              grid (EXP/pairs/{pair}/)           -> figures/checkerboard/...
# report.smk, included last, turns the registrations into targets of `rule all`.

from liverbench.data.splits import parse_pair

TRAINING_CURVES = globals().get("TRAINING_CURVES", {})
WARPED_CECT = globals().get("WARPED_CECT", {})
EVALUATION = config.get("evaluation", {})
METHOD_LABELS = EVALUATION.get("method_labels", {})


METRIC_FILES = expand(f"{EXP}/metrics/{{method}}.csv", method=METHODS)
# What the tables need from the config, as JSON (a change re-runs the tables).
TABLES_SETTINGS = json.dumps(
    {
        "experiment": config["experiment"],
        "seed": SEED,
        "reference_method": EVALUATION.get("reference_method", "regsegnet"),
        "bootstrap_samples": EVALUATION.get("bootstrap_samples", 2000),
        "paper_table1": EVALUATION.get("paper_table1", config.get("paper_table1")),
        "method_labels": METHOD_LABELS,
    },
    sort_keys=True,
)


rule metrics:
    input:
        predictions=lambda wildcards: predictions(wildcards.method),
        runtimes=lambda wildcards: runtimes(wildcards.method),
        cases=expand(f"{EXP}/data/h108/{{patient}}/case.json", patient=TEST_PATIENTS),
    output:
        f"{EXP}/metrics/{{method}}.csv",
    params:
        pairs=" ".join(TEST_PAIRS),
        predictions=lambda wildcards, input: os.path.dirname(input.predictions[0]),
        runtimes=lambda wildcards, input: os.path.dirname(input.runtimes[0]),
        cases=lambda wildcards, input: os.path.dirname(os.path.dirname(input.cases[0])),
    benchmark:
        f"{EXP}/benchmarks/metrics/{{method}}.tsv"
    log:
        f"{EXP}/logs/metrics/{{method}}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
    shell:
        "python -m liverbench.evaluation.evaluate --method {wildcards.method} "
        "--pairs {params.pairs} --predictions {params.predictions} "
        "--runtimes {params.runtimes} --cases {params.cases} "
        "--out {output} > {log} 2>&1"


rule tables:
    input:
        METRIC_FILES,
    output:
        table1_csv=f"{EXP}/table1.csv",
        table1_md=f"{EXP}/table1.md",
        table1_tex=f"{EXP}/table1.tex",
        table1_html=report(
            f"{EXP}/table1.html",
            caption="../report/table1.rst",
            category="1. Table 1",
        ),
        extended_csv=f"{EXP}/table_extended.csv",
        extended_md=f"{EXP}/table_extended.md",
        extended_html=report(
            f"{EXP}/table_extended.html",
            caption="../report/table_extended.rst",
            category="2. Extended table",
        ),
    params:
        settings=TABLES_SETTINGS,
        out=lambda wildcards, output: os.path.dirname(output.table1_csv),
    benchmark:
        f"{EXP}/benchmarks/report/tables.tsv"
    log:
        f"{EXP}/logs/report/tables.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m liverbench.evaluation.tables --metrics {input} "
        "--config-json {params.settings:q} --out-dir {params.out} > {log} 2>&1"


rule figures_summary:
    input:
        METRIC_FILES,
    output:
        boxplot=report(
            f"{EXP}/figures/metrics_boxplot.png",
            caption="../report/metrics_boxplot.rst",
            category="3. Figures",
            subcategory="Metrics and runtime",
        ),
        runtime=report(
            f"{EXP}/figures/runtime.png",
            caption="../report/runtime.rst",
            category="3. Figures",
            subcategory="Metrics and runtime",
        ),
        accuracy=report(
            f"{EXP}/figures/accuracy_runtime.png",
            caption="../report/accuracy_runtime.rst",
            category="3. Figures",
            subcategory="Metrics and runtime",
        ),
    params:
        labels=json.dumps(METHOD_LABELS, sort_keys=True),
        out=lambda wildcards, output: os.path.dirname(output.boxplot),
    benchmark:
        f"{EXP}/benchmarks/report/figures_summary.tsv"
    log:
        f"{EXP}/logs/report/figures_summary.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m liverbench.evaluation.figures summary --metrics {input} "
        "--out-dir {params.out} --labels-json {params.labels:q} > {log} 2>&1"


rule figure_overlay:
    input:
        ncect=lambda wildcards: f"{case_dir(parse_pair(wildcards.pair)[1])}/ncect.nii.gz",
        liver=lambda wildcards: f"{case_dir(parse_pair(wildcards.pair)[1])}/ncect_liver.nii.gz",
        predictions=lambda wildcards: [
            f"{EXP}/predictions/{method}/{wildcards.pair}.nii.gz" for method in METHODS
        ],
    output:
        report(
            f"{EXP}/figures/overlays/{{pair}}.png",
            caption="../report/overlay.rst",
            category="3. Figures",
            subcategory="Contours per test pair",
            labels={"pair": "{pair}"},
        ),
    params:
        cases=f"{EXP}/data/h108",
        predictions=" ".join(f"{method}={EXP}/predictions/{method}" for method in METHODS),
        labels=json.dumps(METHOD_LABELS, sort_keys=True),
        out=lambda wildcards, output: os.path.dirname(output[0]),
    benchmark:
        f"{EXP}/benchmarks/report/overlay_{{pair}}.tsv"
    log:
        f"{EXP}/logs/report/overlay_{{pair}}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    shell:
        "python -m liverbench.evaluation.figures overlays --cases {params.cases} "
        "--pairs {wildcards.pair} --predictions {params.predictions} "
        "--out-dir {params.out} --labels-json {params.labels:q} > {log} 2>&1"


rule figure_checkerboard:
    input:
        fixed=f"{EXP}/pairs/{{pair}}/fixed.nii.gz",
        moving=f"{EXP}/pairs/{{pair}}/moving.nii.gz",
        warped=lambda wildcards: WARPED_CECT[wildcards.method].format(pair=wildcards.pair),
    output:
        report(
            f"{EXP}/figures/checkerboard/{{method}}/{{pair}}.png",
            caption="../report/checkerboard.rst",
            category="3. Figures",
            subcategory="Registration checkerboards",
            labels={"method": "{method}", "pair": "{pair}"},
        ),
    params:
        title=lambda wildcards: (
            f"{METHOD_LABELS.get(wildcards.method, wildcards.method)}, pair {wildcards.pair}"
        ),
    benchmark:
        f"{EXP}/benchmarks/report/checkerboard_{{method}}_{{pair}}.tsv"
    log:
        f"{EXP}/logs/report/checkerboard_{{method}}_{{pair}}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    shell:
        "python -m liverbench.evaluation.figures checkerboard --fixed {input.fixed} "
        "--moving {input.moving} --warped {input.warped} --out {output} "
        "--title {params.title:q} > {log} 2>&1"


rule figure_training:
    input:
        lambda wildcards: TRAINING_CURVES[wildcards.method],
    output:
        report(
            f"{EXP}/figures/training/{{method}}.png",
            caption="../report/training.rst",
            category="3. Figures",
            subcategory="Training curves",
            labels={"method": "{method}"},
        ),
    params:
        title=lambda wildcards: (
            f"{METHOD_LABELS.get(wildcards.method, wildcards.method)}: training"
        ),
    benchmark:
        f"{EXP}/benchmarks/report/training_{{method}}.tsv"
    log:
        f"{EXP}/logs/report/training_{{method}}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m liverbench.evaluation.figures training --csv {input} --out {output} "
        "--title {params.title:q} > {log} 2>&1"


rule provenance:
    input:
        # after the methods ran, so the record describes the finished run
        METRIC_FILES,
    output:
        json=f"{EXP}/provenance.json",
        md=f"{EXP}/provenance.md",
        html=report(
            f"{EXP}/provenance.html",
            caption="../report/provenance.rst",
            category="4. Provenance",
        ),
    params:
        config=json.dumps(config, sort_keys=True, default=str),
    benchmark:
        f"{EXP}/benchmarks/report/provenance.tsv"
    log:
        f"{EXP}/logs/report/provenance.log",
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    shell:
        "python -m liverbench.evaluation.provenance --config-json {params.config:q} "
        "--out-json {output.json} --out-md {output.md} --out-html {output.html} > {log} 2>&1"


ALL_TARGETS += METRIC_FILES
ALL_TARGETS += [
    f"{EXP}/table1.html",
    f"{EXP}/table_extended.html",
    f"{EXP}/figures/metrics_boxplot.png",
    f"{EXP}/provenance.html",
]
ALL_TARGETS += expand(f"{EXP}/figures/overlays/{{pair}}.png", pair=TEST_PAIRS)
