"""RegSegNet (Pham et al., MIDL 2024): liver segmentation of non-contrast CT by registering
the contrast-enhanced CT of the same patient onto it with cascaded 3-D U-Nets.

`python -m regsegnet train|predict ...` is the command line; the modules are
`settings` (config section), `model` (network and spatial transformer), `losses`,
`data` (pair folders), `checkpoint`, `train` (cascade-wise training), `predict`.
"""

import os

# OpenMP threads that find no work spin by default. On a shared machine with more runnable
# threads than cores (2 cores, several jobs), spinning made a 2-thread training step ~50x
# slower (8.6 s instead of 0.12-0.5 s at load 10); on an idle machine both policies take
# 0.235 s per 64³ step. Read once when torch loads libgomp, hence here, before torch's import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from regsegnet.model import RegSegNet  # noqa: E402
from regsegnet.settings import Settings  # noqa: E402

__all__ = ["RegSegNet", "Settings"]
