# Shared state of the DAG, computed once when the workflow is parsed: cohort, splits and pairs,
# the experiment's Layout, and the selected methods. Rule files only read these.
#
# Rules call `python -m <package>`; the project is installed (editable) into the interpreter
# that runs the jobs: .venv (./run setup), a conda env (envs/*.post-deploy.sh) or the same
# PATH on a Slurm node (docs/running.md).

import json
import math
import os
import re

from liverbench import methods as method_registry
from liverbench.data import adapters, cohorts, memory
from liverbench.data.dicom_masks import source_file
from liverbench.data.io import write_json_if_changed
from liverbench.data.splits import plan_splits
from liverbench.layout import CASE_FILES, PAIR_FILES, PHANTOM_FILES, SPECT_FILES, TRUTH_FILE
from liverbench.layout import Layout
from liverbench.layout import MSD_FILES, pair_id, parse_pair


# OpenMP's default busy-wait burns a shared core for nothing between parallel regions
# (measured: 0.9 vs 0.25 CPU-s per 2-thread training step). Braces: shell.prefix formats.
_prefix = "export OMP_WAIT_POLICY=${{OMP_WAIT_POLICY:-PASSIVE}}; "
if "conda" not in str(workflow.deployment_settings.deployment_method).lower():
    # Without conda, jobs run this interpreter (the venv's), even where PATH lacks it.
    _prefix += f"export PATH={Path(sys.executable).parent}:$PATH; "
shell.prefix(_prefix)

# An external test cohort (docs/external-cohorts.md) runs this same workflow as a module, with
# its own cohort and results under external/{name}/, scoring the models trained here: it defines
# no training rule (TRAINING), and its Layout reads models from the experiment's root.
EXTERNAL = config.get("external_cohort")
TRAINING = EXTERNAL is None
MAIN_LAYOUT = Layout(f"results/{config['experiment']}")
LAYOUT = MAIN_LAYOUT.external(EXTERNAL) if EXTERNAL else MAIN_LAYOUT
EXP = LAYOUT.root
SEED = config["seed"]
COHORT = config["cohort"]
PHANTOM = COHORT["source"] == "phantom"
DERIVED = COHORT["source"] == "derived"
REGISTRY = method_registry.registry(config)  # every method this config can run, by id
SELECTED = method_registry.selected(config)  # Method objects, in table order
METHODS = [method.id for method in SELECTED]
TEST_COHORTS = cohorts.external_cohorts(config)  # the main run's external cohorts

CASE_SOURCES, _FIXED_SPLITS = cohorts.cohort_sources(COHORT, LAYOUT)
H108_PATIENTS = list(CASE_SOURCES)
# The lung shunt fraction needs a SPECT and lung mask for every patient.
HAS_SPECT = all(set(SPECT_FILES) <= set(files) for files in CASE_SOURCES.values())
# Registration error needs the true motion (the phantom's, or a manifest's true_motion column).
HAS_TRUTH = all(TRUTH_FILE in files for files in CASE_SOURCES.values())
# What standardization writes (a manifest with these columns for only some patients: left out)
STANDARD_FILES = (
    CASE_FILES + (SPECT_FILES if HAS_SPECT else ()) + ((TRUTH_FILE,) if HAS_TRUTH else ())
)

if COHORT["msd"]:
    MSD_ROOT = COHORT["msd"]
    MSD_CASES = adapters.msd_cases(MSD_ROOT) if TRAINING else []
else:
    MSD_ROOT = LAYOUT.phantom_msd_root
    MSD_CASES = [f"liver_{i}" for i in range(COHORT["msd_cases"])] if TRAINING else []

SPLITS = (
    plan_splits(
        H108_PATIENTS, COHORT["split_fractions"], SEED, COHORT["inter_per_patient"], _FIXED_SPLITS
    )
    if TRAINING
    else cohorts.all_test_splits(H108_PATIENTS)
)
TRAIN_PAIRS = SPLITS["pairs"]["train"]
VAL_PAIRS = SPLITS["pairs"]["val"]
TEST_PAIRS = SPLITS["pairs"]["test"]
TEST_PATIENTS = SPLITS["test"]

# Records of the run, written here (not by a rule) because the DAG itself is built from them;
# rewritten only when their content changes, so an unchanged re-run runs no job.
write_json_if_changed(SPLITS, LAYOUT.splits)
write_json_if_changed(config, LAYOUT.resolved_config)


def report_place(category, subcategory=None):
    """Where a result sits in the HTML report: its own category, or for an external cohort a
    subcategory of that cohort's section (`report(path, caption=..., **report_place(...))`)."""
    if EXTERNAL:
        inner = category.split(". ", 1)[-1]
        return {
            "category": f"5. External cohort: {EXTERNAL}",
            "subcategory": f"{inner}: {subcategory}" if subcategory else inner,
        }
    return {"category": category, "subcategory": subcategory}


def moving_of(pair):
    return parse_pair(pair)[0]


def fixed_of(pair):
    return parse_pair(pair)[1]


def settings_json(section):
    """A (filled) config section as JSON: the CLI's --settings, and a rerun trigger."""
    return json.dumps(config[section], sort_keys=True)


def predictions(method, pairs=None):
    return [LAYOUT.prediction(method, pair) for pair in (TEST_PAIRS if pairs is None else pairs)]


def runtimes(method, pairs=None):
    return [LAYOUT.runtime(method, pair) for pair in (TEST_PAIRS if pairs is None else pairs)]


def moving_files(name, pairs=None):
    """Per pair, a case file of its moving patient (the CECT side), aligned with the pairs."""
    return [LAYOUT.case_file(moving_of(p), name) for p in (TEST_PAIRS if pairs is None else pairs)]


def fixed_files(name, pairs=None):
    """Per pair, a case file of its fixed patient (the nCECT side), aligned with the pairs."""
    return [LAYOUT.case_file(fixed_of(p), name) for p in (TEST_PAIRS if pairs is None else pairs)]


def pair_files(pairs, names=PAIR_FILES):
    """Every file of the given pairs, for rules that take pair folders."""
    return [LAYOUT.pair_file(pair, name) for pair in pairs for name in names]


# The longest chain of dependent jobs (the report's "Run time" figure): MSD -> nnU-Net
# preparation, pretraining, training -> Elastix + CNN's CECT segmentation -> its elastix
# registration. Snakemake starts these first when jobs wait for cores; the others fill in.
CRITICAL_PATH_PRIORITY = 10


def data_memory(step, sources=None):
    """A data step's `mem_mb` from the headers of the images it reads (liverbench.data.memory):
    a 1024 x 1024 x 600 export asks for what it needs and the demo's phantom for little. Known
    once the job's inputs exist, or, with `sources` (wildcards -> the original files the
    inputs were made from, same sizes), as soon as those exist: a Slurm group job (phantom ->
    standardize -> preprocess) is sized when it is submitted, before its members run. A
    retry (Slurm's `retries`) asks for that much again."""

    def mem_mb(wildcards, input, attempt):
        paths = [path for path in input if not str(path).endswith(".json")]
        originals = None if sources is None else [source_file(p) for p in sources(wildcards)]
        if originals is not None and all(os.path.exists(p) for p in originals):
            paths = originals  # `path::label` sources by their files (an RTSTRUCT: 0 voxels)
        return attempt * memory.data_rule_mb(step, paths)

    return mem_mb
