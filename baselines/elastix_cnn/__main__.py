"""Command line: `python -m baselines.elastix_cnn register ...` (phases 2-4 of Elastix + CNN).

    python -m baselines.elastix_cnn register --settings '{...}' --threads 2 \
        --cases EXP/data/h108 --pairs P003__P003 ... \
        --cect-liver-dir EXP/elastix_cnn/cect_liver \
        --cect-runtime-dir EXP/elastix_cnn/cect_liver_runtime \
        --ncect-liver-dir EXP/predictions/nnunet_ncect \
        --ncect-runtime-dir EXP/runtime/nnunet_ncect \
        --out-dir EXP/predictions/elastix_cnn --runtime-dir EXP/runtime/elastix_cnn \
        --transforms-dir EXP/elastix_cnn/transforms

Phase 1 (nnU-Net liver masks of each pair's CECT and nCECT, `{pair}.nii.gz` in the two liver
folders) comes from `python -m baselines.nnunet predict`; its runtime records (`{pair}.json`)
are added to this method's time when given. Per pair: the dilated nCECT mask restricts the
fixed image, the CECT liver the moving one; elastix registers CECT to nCECT (rigid, then
B-spline); transformix carries the CECT liver to the nCECT grid. The input parameter maps,
elastix's result transform and its log are kept in `{transforms-dir}/{pair}/`. All pairs run
in one process: loading elastix costs seconds once, and every pair is timed on its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from baselines.elastix_cnn.settings import Settings
from liverbench.data.io import ImageError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m baselines.elastix_cnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    register = commands.add_parser("register", help="register and propagate, per pair")
    register.add_argument("--settings", help="the elastix_cnn config section as JSON")
    register.add_argument("--threads", type=int, help="elastix threads (default: settings)")
    register.add_argument("--cases", type=Path, required=True, help="standardized case folders")
    register.add_argument("--pairs", nargs="+", required=True)
    register.add_argument("--cect-liver-dir", type=Path, required=True,
                          help="nnU-Net CECT liver masks, {pair}.nii.gz (moving mask, propagated)")
    register.add_argument("--ncect-liver-dir", type=Path, required=True,
                          help="coarse nCECT liver masks, {pair}.nii.gz (fixed mask, dilated)")
    register.add_argument("--cect-runtime-dir", type=Path, help="runtime records of phase 1")
    register.add_argument("--ncect-runtime-dir", type=Path, help="runtime records of phase 1")
    register.add_argument("--out-dir", type=Path, required=True)
    register.add_argument("--runtime-dir", type=Path, required=True)
    register.add_argument("--transforms-dir", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from baselines.elastix_cnn.pipeline import PairPaths, register_pairs
    from baselines.elastix_cnn.registration import RegistrationError

    try:
        settings = Settings.from_json(args.settings)
        paths = PairPaths(
            cases=args.cases, cect_liver=args.cect_liver_dir, ncect_liver=args.ncect_liver_dir,
            cect_runtime=args.cect_runtime_dir, ncect_runtime=args.ncect_runtime_dir,
            out=args.out_dir, runtime=args.runtime_dir, transforms=args.transforms_dir,
        )
        register_pairs(args.pairs, paths, settings, args.threads or settings.threads)
    except (ImageError, RegistrationError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
