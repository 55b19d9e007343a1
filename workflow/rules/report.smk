# The HTML report: `snakemake --report results/{experiment}/report.html` (or `./run report`).
# Its results are the outputs marked `report(...)` in evaluate.smk; what `rule all` builds is
# `report_targets()` there.


report: "../report/workflow.rst"
