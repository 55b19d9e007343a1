"""A deliberately naive method, to show how a user's own method joins the benchmark: the
largest connected region of the nCECT between two HU thresholds is called liver.

    python threshold.py --low 30 --high 90 --pairs ID... --ncect F... --predictions F... \
        --runtimes F...
"""

from __future__ import annotations

import argparse
import sys

import SimpleITK as sitk

from liverbench.cli import aligned, command
from liverbench.data.io import read_image, write_image
from liverbench.runtime import RuntimeRecord, Stages


def segment(ncect: sitk.Image, low: float, high: float) -> sitk.Image:
    band = sitk.BinaryThreshold(ncect, low, high, 1, 0)
    band = sitk.BinaryMorphologicalOpening(band, [1, 1, 1])
    largest = sitk.RelabelComponent(sitk.ConnectedComponent(band), sortByObjectSize=True) == 1
    return sitk.Cast(largest, sitk.sitkUInt8)


def predict(args: argparse.Namespace) -> None:
    for pair, ncect_path, prediction, runtime in aligned(
        args, "pairs", "ncect", "predictions", "runtimes"
    ):
        stages = Stages()  # one timing scope for every method: the image read to the mask written
        with stages("read"):
            ncect = read_image(ncect_path)
        with stages("segmentation"):
            mask = segment(ncect, args.low, args.high)
        with stages("write"):
            write_image(mask, prediction)
        RuntimeRecord.from_stages("threshold", pair, stages, core=["segmentation"],
                                  threads=1).write(runtime)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--low", type=float, required=True)
    parser.add_argument("--high", type=float, required=True)
    for name in ("pairs", "ncect", "predictions", "runtimes"):
        parser.add_argument(f"--{name}", nargs="+", required=True)
    parser.set_defaults(func=predict)


main = command("threshold.py", __doc__, configure)  # exit 2 + one line on bad input

if __name__ == "__main__":
    sys.exit(main())
