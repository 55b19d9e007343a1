"""Every path under `results/{experiment}/`, defined once (docs/contracts.md).

The rules build their inputs and outputs from a `Layout`, and the commands that write a case or
a pair folder name its files with `image_file`, so a file name exists in one place only. Each
method takes a Snakemake wildcard as well as a value: `layout.case_file("{patient}", "cect")`
is the pattern of a rule, `layout.case_file("P001", "cect")` one file.

    results/{experiment}/
      raw/h108/{patient}/*.nii                                 phantom cohort (generated)
      raw/msd/Task03_Liver/                                    phantom MSD-like cohort
      raw/derived/{patient}/*.nii                              derived cohort (generated)
      data/h108/{patient}/{name}.nii, case.json                standardized cases
      data/msd/{case}/cect.nii, cect_liver.nii
      preprocessed/{h108,msd}/{id}/{name}.nii                 working grids
      pairs/{moving}__{fixed}/{moving,moving_liver,fixed,fixed_liver}.nii, prealign.tfm
      models/{model}/ ...                                      trained models, loss CSVs
      predictions/{method}/{pair}.nii.gz                       per-pair outputs of a method:
      runtime/{method}/{pair}.json                             mask + runtime record
      warped/{method}/{pair}.nii.gz                            registration methods only
      mappings/{method}/{pair}.h5                              nCECT world -> CECT world (ITK)
      metrics/{method}.csv, table1.*, table_extended.*, figures/, provenance.*
      splits.json, config.resolved.json                        written when the DAG is built
      logs/, benchmarks/
      external/{name}/ ...                                     a test cohort: the same layout
                                                               (no models: it uses the above)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PAIR_SEPARATOR = "__"
CASE_FILES = ("cect", "cect_liver", "ncect", "ncect_liver")  # every H108-style case
SPECT_FILES = ("spect", "ncect_lungs")  # optional: the lung shunt fraction needs them
# The true mapping of a simulated (or otherwise known) patient motion, where a cohort has one:
# a displacement field in mm on a grid in the nCECT's world frame, d(p) such that nCECT world
# point p is CECT world point p + d(p) (the direction ITK resamples the CECT onto the nCECT).
TRUTH_FILE = "true_motion"
PHANTOM_FILES = CASE_FILES + SPECT_FILES + (TRUTH_FILE,)  # what the phantom writes per patient
MSD_FILES = ("cect", "cect_liver")
PAIR_FILES = ("moving", "moving_liver", "fixed", "fixed_liver")
# The pipeline's own images (cases, working grids, pairs) are stored uncompressed: every method
# reads them inside its timed case, and inflating a gzip'd CT costs more than registering it
# (48 ms against 9 ms for a demo CECT; docs/speed.md). Outputs users keep stay .nii.gz.
IMAGE_SUFFIX = ".nii"


# Patient and case ids become file names, pair ids ('A__B') and words of shell commands:
# letters and digits, in runs joined by single '.', '_' or '-' (so no '__', no leading dot,
# no trailing '_', no space or shell character).
SAFE_ID = re.compile(r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$")
SAFE_ID_RULE = ("letters and digits, in runs joined by single '.', '_' or '-' (e.g. P001, "
                "liver_0, ircadb-1.1)")


def is_safe_id(value: str) -> bool:
    return bool(SAFE_ID.match(value))


def image_file(folder: str, name: str) -> str:
    """The one spelling of an image in a case, working-grid or pair folder."""
    return f"{folder}/{name}{IMAGE_SUFFIX}"


def pair_id(moving: str, fixed: str) -> str:
    """'A', 'B' → 'A__B': the moving CECT of patient A onto the fixed nCECT of patient B."""
    return f"{moving}{PAIR_SEPARATOR}{fixed}"


def parse_pair(pair: str) -> tuple[str, str]:
    """'A__B' → ('A', 'B'); patient ids may hold single underscores, not double ones."""
    parts = pair.split(PAIR_SEPARATOR)
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"pair id {pair!r} is not of the form MOVING{PAIR_SEPARATOR}FIXED")
    return parts[0], parts[1]


@dataclass(frozen=True)
class Layout:
    """Paths of one experiment; `root` is `results/{experiment}`.

    `models_root` is where trained models are read from: `root` itself, or for an external
    test cohort (`external/{name}`, scored with the experiment's models) the experiment's root.
    """

    root: str
    models_root: str | None = None

    # --- cohorts ---------------------------------------------------------------------
    @property
    def phantom_root(self) -> str:
        return f"{self.root}/raw/h108"

    def phantom_file(self, patient: str, name: str) -> str:
        return image_file(f"{self.phantom_root}/{patient}", name)

    @property
    def phantom_msd_root(self) -> str:
        return f"{self.root}/raw/msd/Task03_Liver"

    @property
    def derived_root(self) -> str:
        return f"{self.root}/raw/derived"

    def derived_file(self, patient: str, name: str) -> str:
        return image_file(f"{self.derived_root}/{patient}", name)

    def external(self, name: str) -> Layout:
        """The layout of test cohort `name`: its own data and results, this one's models."""
        return Layout(f"{self.root}/external/{name}", models_root=self.models_root or self.root)

    def case_dir(self, patient: str) -> str:
        return f"{self.root}/data/h108/{patient}"

    def case_file(self, patient: str, name: str) -> str:
        return image_file(self.case_dir(patient), name)

    def case_record(self, patient: str) -> str:
        return f"{self.case_dir(patient)}/case.json"

    def msd_case_dir(self, case: str) -> str:
        return f"{self.root}/data/msd/{case}"

    def msd_case_file(self, case: str, name: str) -> str:
        return image_file(self.msd_case_dir(case), name)

    def prep_dir(self, patient: str) -> str:
        return f"{self.root}/preprocessed/h108/{patient}"

    def prep_file(self, patient: str, name: str) -> str:
        return image_file(self.prep_dir(patient), name)

    def msd_prep_dir(self, case: str) -> str:
        return f"{self.root}/preprocessed/msd/{case}"

    def msd_prep_file(self, case: str, name: str) -> str:
        return image_file(self.msd_prep_dir(case), name)

    def pair_dir(self, pair: str) -> str:
        return f"{self.root}/pairs/{pair}"

    def pair_file(self, pair: str, name: str) -> str:
        return image_file(self.pair_dir(pair), name)

    def prealign(self, pair: str) -> str:
        """The pair's shared rigid pre-alignment: an ITK transform (SimpleITK .tfm) mapping
        nCECT world points to CECT world points; every registration method starts from it."""
        return f"{self.pair_dir(pair)}/prealign.tfm"

    def pair_timing(self, pair: str) -> str:
        """The pair step's stages (reading the originals, the pre-alignment, the working
        grid; `liverbench.runtime.write_stages`), which the methods using the pair add to
        their own `seconds_case`."""
        return f"{self.pair_dir(pair)}/timing.json"

    @property
    def splits(self) -> str:
        return f"{self.root}/splits.json"

    @property
    def resolved_config(self) -> str:
        return f"{self.root}/config.resolved.json"

    # --- methods ---------------------------------------------------------------------
    def model_dir(self, model: str) -> str:
        return f"{self.models_root or self.root}/models/{model}"

    def model_file(self, model: str, name: str) -> str:
        """A file of a trained model's folder (model.pt, losses.csv, a record JSON)."""
        return f"{self.model_dir(model)}/{name}"

    def method_dir(self, method: str) -> str:
        """A method's own intermediate files (e.g. elastix transforms, phase-1 masks)."""
        return f"{self.root}/{method}"

    def prediction(self, method: str, pair: str) -> str:
        return f"{self.root}/predictions/{method}/{pair}.nii.gz"

    def runtime(self, method: str, pair: str) -> str:
        return f"{self.root}/runtime/{method}/{pair}.json"

    def cect_segmentation(self, method: str, patient: str) -> str:
        """A method's liver segmentation of a CECT (original geometry), to carry instead of
        the annotation (regsegnet.moving_mask)."""
        return f"{self.root}/cect_segmentations/{method}/{patient}.nii.gz"

    def mapping(self, method: str, pair: str) -> str:
        """A registration method's final mapping (pre-alignment composed with its own), as an
        ITK transform file: nCECT world point -> CECT world point. Scored against the truth."""
        return f"{self.root}/mappings/{method}/{pair}.h5"

    def warped(self, method: str, pair: str) -> str:
        return f"{self.root}/warped/{method}/{pair}.nii.gz"

    # --- evaluation and report -------------------------------------------------------
    def metrics(self, method: str) -> str:
        return f"{self.root}/metrics/{method}.csv"

    def table(self, name: str, extension: str) -> str:
        return f"{self.root}/{name}.{extension}"

    def figure(self, *parts: str) -> str:
        return f"{self.root}/figures/{'/'.join(parts)}.png"

    def provenance(self, extension: str) -> str:
        return f"{self.root}/provenance.{extension}"

    # --- bookkeeping -----------------------------------------------------------------
    def log(self, *parts: str) -> str:
        return f"{self.root}/logs/{'/'.join(parts)}.log"

    def benchmark(self, *parts: str) -> str:
        return f"{self.root}/benchmarks/{'/'.join(parts)}.tsv"
