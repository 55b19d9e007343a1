"""The embedded synthetic SPECT-CT cohort (H108-like) and an MSD-like CECT cohort.

    from liverbench.data.phantom import generate_cohort, generate_h108_patient
    generate_cohort(Path("raw/h108"), n=20, seed=2024)              # raw/h108/P001/...
    generate_h108_patient(6, seed=2024, out_dir=Path("raw/h108"))    # just P007
    case = simulate_patient(0, seed=2024)    # in memory, with organ label maps and truth
    case.images["true_motion"]               # nCECT world -> CECT world displacements (mm)

See docs/phantom.md for what is modelled and how it compares with real scans.
"""

from liverbench.data.phantom.acquisition import SIZES
from liverbench.data.phantom.anatomy import LIVER_LABELS, TUMOUR_LABELS, Label
from liverbench.data.phantom.cohort import (
    H108_FILES,
    KINDS,
    PATIENT_FILES,
    TRUTH_RECORD,
    SimulatedCase,
    case_ids,
    generate_cohort,
    generate_h108_patient,
    generate_msd_case,
    index_of,
    msd_case_id,
    msd_dataset_json,
    patient_id,
    patient_ids,
    simulate_msd_case,
    simulate_patient,
    write_manifest,
    write_msd_dataset_json,
)

__all__ = [
    "H108_FILES",
    "KINDS",
    "LIVER_LABELS",
    "PATIENT_FILES",
    "SIZES",
    "TRUTH_RECORD",
    "TUMOUR_LABELS",
    "Label",
    "SimulatedCase",
    "case_ids",
    "generate_cohort",
    "generate_h108_patient",
    "generate_msd_case",
    "index_of",
    "msd_case_id",
    "msd_dataset_json",
    "patient_id",
    "patient_ids",
    "simulate_msd_case",
    "simulate_patient",
    "write_manifest",
    "write_msd_dataset_json",
]
