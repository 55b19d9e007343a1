# The HTML report: `snakemake --report results/{experiment}/report.html` (or `./run report`).
# Include this file LAST: it turns what method rule files registered (TRAINING_CURVES,
# WARPED_CECT, see evaluate.smk) into targets of `rule all`.


report: "../report/workflow.rst"


ALL_TARGETS += [
    f"{EXP}/figures/training/{method}.png" for method in METHODS if method in TRAINING_CURVES
]
ALL_TARGETS += [
    f"{EXP}/figures/checkerboard/{method}/{pair}.png"
    for method in METHODS
    if method in WARPED_CECT
    for pair in TEST_PAIRS
]
