"""Identity baseline: resample the CECT liver mask onto the nCECT grid in world coordinates.

No registration at all, so every table shows what registration adds.

    python -m baselines.identity --cases EXP/data/h108 --pairs P001__P001 ... \
        --out-dir EXP/predictions/identity --runtime-dir EXP/runtime/identity
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liverbench.data.io import ImageError, read_image, read_mask, write_image
from liverbench.data.preprocess import resample_mask
from liverbench.data.splits import parse_pair
from liverbench.runtime import RuntimeRecord, Stopwatch


def predict_pair(cases: Path, pair: str, out_dir: Path, runtime_dir: Path) -> None:
    moving, fixed = parse_pair(pair)
    with Stopwatch() as total:
        ncect = read_image(cases / fixed / "ncect.nii.gz")
        cect = read_image(cases / moving / "cect.nii.gz")
        cect_path = cases / moving / "cect.nii.gz"
        liver = read_mask(cases / moving / "cect_liver.nii.gz", cect, cect_path)
        with Stopwatch() as work:
            prediction = resample_mask(liver, ncect)
        write_image(prediction, out_dir / f"{pair}.nii.gz")
    RuntimeRecord("identity", pair, work.seconds, total.seconds, threads=1).write(
        runtime_dir / f"{pair}.json"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m baselines.identity", description=__doc__)
    parser.add_argument("--cases", type=Path, required=True, help="folder of standardized cases")
    parser.add_argument("--pairs", nargs="+", required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--runtime-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        for pair in args.pairs:
            predict_pair(args.cases, pair, args.out_dir, args.runtime_dir)
    except (ImageError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
