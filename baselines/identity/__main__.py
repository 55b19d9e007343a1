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

import SimpleITK as sitk

from liverbench.cli import per_pair_command
from liverbench.data.io import read_image, read_mask, write_image, write_transform
from liverbench.data.preprocess import resample_mask
from liverbench.runtime import RuntimeRecord, Stopwatch

PER_PAIR = ("pairs", "cect", "cect_liver", "ncect", "predictions", "runtimes", "mappings")


def predict_pair(
    pair: str, cect_path: str, liver_path: str, ncect_path: str, prediction: str, runtime: str,
    mapping: str,
) -> None:
    with Stopwatch() as total:
        ncect = read_image(ncect_path)
        cect = read_image(cect_path)
        liver = read_mask(liver_path, cect, cect_path)
        with Stopwatch() as work:
            mask = resample_mask(liver, ncect)
        write_image(mask, prediction)
        write_transform(sitk.Transform(3, sitk.sitkIdentity), mapping)
    RuntimeRecord("identity", pair, work.seconds, total.seconds, threads=1).write(runtime)


main = per_pair_command("python -m baselines.identity", __doc__, PER_PAIR, predict_pair)


if __name__ == "__main__":
    sys.exit(main())
