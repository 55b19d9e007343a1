"""Identity baseline: resample the CECT liver mask onto the nCECT grid in world coordinates.

No registration at all, so every table shows what registration adds. Per test pair, aligned
with `--pairs`: the CECT liver and CECT (original geometry), the nCECT it is carried onto, and
the outputs of the method contract (docs/adding-a-method.md): the mask, its runtime, and the
mapping (the identity transform, scored against the true motion like any other).

    python -m baselines.identity --pairs P001__P001 ... --cect F... --cect-liver F... \\
        --ncect F... --predictions F... --runtimes F... --mappings F...
"""

from __future__ import annotations

import sys

from baselines.carry import carry_liver
from liverbench.cli import per_pair_command

PER_PAIR = ("pairs", "cect", "cect_liver", "ncect", "predictions", "runtimes", "mappings")


def predict_pair(
    pair: str, cect_path: str, liver_path: str, ncect_path: str, prediction: str, runtime: str,
    mapping: str,
) -> None:
    carry_liver("identity", pair, cect_path, liver_path, ncect_path, None, prediction, runtime,
                mapping)


main = per_pair_command("python -m baselines.identity", __doc__, PER_PAIR, predict_pair)


if __name__ == "__main__":
    sys.exit(main())
