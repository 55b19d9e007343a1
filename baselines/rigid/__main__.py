"""Rigid baseline: the CECT liver mask carried onto the nCECT by the pair's pre-alignment alone.

The pre-alignment (docs/registration.md) is the rigid transform every registration method
starts from, so this row shows what deformable registration adds beyond it; identity shows
what the pre-alignment adds beyond scanner geometry. Per test pair, aligned with `--pairs`:
the CECT liver and CECT (original geometry), the nCECT it is carried onto, the pair's
pre-alignment (written by `python -m liverbench.data pair`), and the outputs of the method
contract plus the mapping (the pre-alignment itself, nCECT world -> CECT world).

    python -m baselines.rigid --pairs P001__P001 ... --cect F... --cect-liver F... \\
        --ncect F... --prealign F... --pair-timings F... --predictions F... --runtimes F... \\
        --mappings F...

The pre-alignment ran in the pair step; its stages (`--pair-timings`, the pair step's
timing.json) count in this row's `seconds_case`, and the pre-alignment is its core.
"""

from __future__ import annotations

import sys

from baselines.carry import carry_liver
from liverbench.cli import per_pair_command

PROG = "python -m baselines.rigid"
PER_PAIR = ("pairs", "cect", "cect_liver", "ncect", "prealign", "pair_timings", "predictions",
            "runtimes", "mappings")


def predict_pair(
    pair: str, cect_path: str, liver_path: str, ncect_path: str, prealign_path: str,
    pair_timing: str, prediction: str, runtime: str, mapping: str,
) -> None:
    """One resampling of the original CECT liver onto the original nCECT through the
    pre-alignment (as the identity baseline through scanner geometry)."""
    carry_liver("rigid", pair, cect_path, liver_path, ncect_path, prealign_path, prediction,
                runtime, mapping, pair_timing)


main = per_pair_command(PROG, __doc__, PER_PAIR, predict_pair)


if __name__ == "__main__":
    sys.exit(main())
