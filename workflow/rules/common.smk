# Shared state of the DAG: cohort, splits, pairs, paths, and what `rule all` builds.
# Parsed once; rule files only read these.

import json
import os

# Rules call `python -m <package>`; the project's packages come from PYTHONPATH, so conda
# environments list third-party packages only. Without conda, jobs run this interpreter.
_prefix = f"export PYTHONPATH={ROOT}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "  # braces: shell format
if "conda" not in str(workflow.deployment_settings.deployment_method).lower():
    _prefix += f"export PATH={Path(sys.executable).parent}:$PATH; "
# OpenMP's default busy-wait burns a shared core for nothing between parallel regions
# (measured: 0.9 vs 0.25 CPU-s per 2-thread training step).
_prefix += "export OMP_WAIT_POLICY=${{OMP_WAIT_POLICY:-PASSIVE}}; "
shell.prefix(_prefix)

EXP = f"results/{config['experiment']}"
SEED = config["seed"]
COHORT = config["cohort"]
PHANTOM = COHORT["source"] == "phantom"


if PHANTOM:
    H108_PATIENTS = [f"P{i:03d}" for i in range(1, COHORT["patients"] + 1)]
    MANIFEST = f"{EXP}/raw/h108/manifest.csv"
    FIXED_SPLITS = {}
else:
    if not COHORT.get("manifest"):
        raise ValueError("config: cohort.source is 'manifest' but cohort.manifest is not set")
    MANIFEST = COHORT["manifest"]
    _rows = adapters.read_manifest(MANIFEST)
    H108_PATIENTS = [row.patient_id for row in _rows]
    FIXED_SPLITS = {row.patient_id: row.split for row in _rows if row.split}

if COHORT.get("msd"):
    MSD_ROOT = COHORT["msd"]
    MSD_CASES = adapters.msd_cases(MSD_ROOT)
else:
    MSD_ROOT = f"{EXP}/raw/msd/Task03_Liver"
    MSD_CASES = [f"liver_{i}" for i in range(COHORT["msd_cases"])]

SPLITS = make_splits(H108_PATIENTS, COHORT["split_fractions"], SEED, FIXED_SPLITS)
SPLITS["pairs"] = make_pairs(SPLITS, COHORT["inter_per_patient"], SEED)
TRAIN_PAIRS = SPLITS["pairs"]["train"]
VAL_PAIRS = SPLITS["pairs"]["val"]
TEST_PAIRS = SPLITS["pairs"]["test"]
TEST_PATIENTS = SPLITS["test"]
METHODS = config["methods"]


def case_dir(patient):
    return f"{EXP}/data/h108/{patient}"


def prep_dir(patient):
    return f"{EXP}/preprocessed/h108/{patient}"


def msd_case_dir(case):
    return f"{EXP}/data/msd/{case}"


def msd_prep_dir(case):
    return f"{EXP}/preprocessed/msd/{case}"


def pair_dir(pair):
    return f"{EXP}/pairs/{pair}"


def method_settings(name):
    """A method's config section as JSON, for the CLI's --settings (and rerun triggers)."""
    return json.dumps(config.get(name, {}), sort_keys=True)


def predictions(method, pairs=None):
    pairs = TEST_PAIRS if pairs is None else pairs
    return expand(f"{EXP}/predictions/{method}/{{pair}}.nii.gz", pair=pairs)


def runtimes(method, pairs=None):
    pairs = TEST_PAIRS if pairs is None else pairs
    return expand(f"{EXP}/runtime/{method}/{{pair}}.json", pair=pairs)


# Rule files append what `rule all` must build.
ALL_TARGETS = [f"{EXP}/splits.json"]




def manifest_sources(wildcards):
    """The manifest and the patient's source files, so edits to either re-run the patient."""
    if PHANTOM:
        return [MANIFEST] + expand(
            f"{EXP}/raw/h108/{wildcards.patient}/{{name}}.nii.gz", name=PHANTOM_FILES
        )
    rows = {row.patient_id: row for row in adapters.read_manifest(MANIFEST)}
    return [MANIFEST] + [str(p) for p in rows[wildcards.patient].paths.values()]


def pair_files(pairs):
    """Every file of the given pairs, for rules that take pair folders."""
    return expand(
        f"{EXP}/pairs/{{pair}}/{{name}}.nii.gz",
        pair=pairs,
        name=["moving", "moving_liver", "fixed", "fixed_liver"],
    )


def folder_of(wildcards, output):
    """params helper: the folder of a rule's first output."""
    return os.path.dirname(output[0])


# Method files register for the report a loss CSV per trained method, and a path
# pattern with {pair} of the warped CECT on the pair's working grid (registration methods).
TRAINING_CURVES = {}
WARPED_CECT = {}

H108_FILES = ["cect", "cect_liver", "ncect", "ncect_liver"]
PHANTOM_FILES = H108_FILES + ["spect", "ncect_lungs"]
