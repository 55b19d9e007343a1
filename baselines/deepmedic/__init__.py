"""Revised-DeepMedic-style baseline: a dual-pathway 3-D CNN that segments the liver in nCECT.

Pretrained on CECT (MSD-like), fine-tuned on the cohort's nCECT; see docs/deepmedic.md.
Importing the package (or its settings) imports no torch: the network loads on first use.
"""

from typing import Any

from baselines.deepmedic.settings import Architecture, Settings

__all__ = ["Architecture", "DeepMedic", "Geometry", "Settings"]


def __getattr__(name: str) -> Any:
    """`DeepMedic` and `Geometry` from the torch-using model module, imported when asked for."""
    if name in ("DeepMedic", "Geometry"):
        from baselines.deepmedic import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
