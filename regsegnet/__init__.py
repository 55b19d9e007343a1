"""RegSegNet (Pham et al., MIDL 2024): liver segmentation of non-contrast CT by registering
the contrast-enhanced CT of the same patient onto it with cascaded 3-D U-Nets.

`python -m regsegnet train|predict ...` is the command line; the modules are
`settings` (config section), `model` (network and spatial transformer), `losses`,
`data` (pair files), `augment` (training augmentation), `checkpoint`, `train` (cascade-wise
training), `predict`, `mapping` (the final mapping as an ITK transform).

Importing the package imports no torch (the workflow reads `regsegnet.settings` while it
builds the DAG); `RegSegNet` is loaded on first use.
"""

from __future__ import annotations

from typing import Any

from regsegnet.settings import Settings

__all__ = ["RegSegNet", "Settings"]


def __getattr__(name: str) -> Any:
    if name == "RegSegNet":
        from regsegnet.model import RegSegNet

        return RegSegNet
    raise AttributeError(f"module 'regsegnet' has no attribute {name!r}")
