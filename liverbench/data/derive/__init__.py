"""A derived real-anatomy H108-like cohort from contrast CTs with liver masks.

From each public portal-venous CECT with a liver mask (MSD Task03_Liver / LiTS layout, or a
CSV listing e.g. 3D-IRCADb DICOM series): the real CECT and its mask as they are, and a
simulated low-dose non-contrast CT of the same anatomy in another scanner's frame (the
phantom's motion model, with the true mapping), its liver and lung masks and a 99mTc-MAA
SPECT: the file set of a phantom patient. See docs/derived.md for what it is and is not.

    from liverbench.data.derive import derive_cohort, source_cases
    source_cases("Task03_Liver", patients=10)          # ['liver_0', 'liver_1', 'liver_10', ...]
    derive_cohort("Task03_Liver", "raw/derived", seed=2024, patients=10)
    derive_cohort("Task03_Liver", "raw/derived", seed=2024, only=["liver_3"])
"""

from liverbench.data.derive.cohort import MANIFEST, derive_cohort, derive_patient, write_patient
from liverbench.data.derive.sources import SourceCase, read_case, source_cases, source_files

__all__ = [
    "MANIFEST",
    "SourceCase",
    "derive_cohort",
    "derive_patient",
    "read_case",
    "source_cases",
    "source_files",
    "write_patient",
]
