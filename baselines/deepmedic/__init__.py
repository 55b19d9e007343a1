"""Revised-DeepMedic-style baseline: a dual-pathway 3-D CNN that segments the liver in nCECT.

Pretrained on CECT (MSD-like), fine-tuned on the cohort's nCECT; see docs/deepmedic.md.
"""

from baselines.deepmedic.model import Architecture, DeepMedic, Geometry
from baselines.deepmedic.settings import Settings

__all__ = ["Architecture", "DeepMedic", "Geometry", "Settings"]
