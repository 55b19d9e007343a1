"""Command line: `python -m regsegnet train ...` and `python -m regsegnet predict ...`.

Both take the `regsegnet:` config section as `--settings JSON` and explicit paths, so the
Snakemake rules and a user at the shell call the same thing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liverbench.data.io import ImageError
from liverbench.data.splits import parse_pair
from regsegnet.checkpoint import CheckpointError
from regsegnet.settings import Settings, SettingsError

CLEAN_ERRORS = (ImageError, CheckpointError, SettingsError)


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_json(args.settings)
    overrides = {}
    if getattr(args, "shape", None):
        overrides["shape"] = args.shape
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    if getattr(args, "device", None):
        overrides["device"] = args.device
    if overrides:
        settings = Settings.from_dict({**settings.to_dict(), **overrides})
    return settings


def _train(args: argparse.Namespace) -> None:
    from regsegnet.hardware import set_threads
    from regsegnet.train import train

    set_threads(args.threads)
    result = train(
        _settings(args), args.train_pairs, args.val_pairs, args.out,
        resume=not args.no_resume, progress=not args.no_progress,
    )
    print(
        f"model {result.model_path}: best epoch {result.best_epoch}, validation Dice "
        f"{result.best_val_dice:.4f}; {result.epochs_run} epoch(s) in {result.seconds:.1f} s"
    )


def _original_ncects(args: argparse.Namespace) -> list[Path]:
    if args.original_ncect:
        return [Path(p) for p in args.original_ncect]
    if args.case_root is None:
        raise SettingsError(
            "give --case-root (cases as {root}/{patient}/ncect.nii.gz) or --original-ncect"
        )
    return [Path(args.case_root) / parse_pair(Path(p).name)[1] / "ncect.nii.gz" for p in args.pair]


def _predict(args: argparse.Namespace) -> None:
    from regsegnet.hardware import set_threads
    from regsegnet.predict import predict_pairs

    set_threads(args.threads)
    settings = _settings(args)
    records = predict_pairs(
        args.model, args.pair, _original_ncects(args), args.out_dir, args.runtime_dir,
        method_name=args.method_name, cascades=args.cascades, device=settings.device,
        warped_dir=args.warped_dir, moving_mask=settings.moving_mask,
        moving_mask_dir=args.moving_mask_dir,
    )
    mean = sum(r.seconds_method for r in records) / len(records)
    print(f"{args.method_name}: {len(records)} pair(s), network {mean:.3f} s per pair")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m regsegnet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--settings", default="{}", help="the regsegnet config section as JSON")
    common.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    common.add_argument("--device", default=None, help="auto | cpu | cuda[:N] (overrides settings)")

    train = commands.add_parser("train", parents=[common], help="cascade-wise training")
    train.add_argument("--train-pairs", nargs="+", required=True, metavar="DIR")
    train.add_argument("--val-pairs", nargs="+", required=True, metavar="DIR")
    train.add_argument("--out", required=True, help="model folder (model.pt, losses.csv, ...)")
    train.add_argument("--shape", nargs=3, type=int, metavar=("Z", "Y", "X"),
                       help="working shape the pairs must have (default: settings, else the data)")
    train.add_argument("--seed", type=int, default=None, help="overrides settings.seed")
    train.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)

    predict = commands.add_parser("predict", parents=[common], help="register and segment pairs")
    predict.add_argument("--model", required=True, help="model.pt written by train")
    predict.add_argument("--pair", nargs="+", required=True, metavar="DIR")
    originals = predict.add_mutually_exclusive_group()
    originals.add_argument("--case-root", help="standardized cases: {root}/{patient}/ncect.nii.gz")
    originals.add_argument("--original-ncect", nargs="+", metavar="FILE",
                           help="the original nCECT of each pair, in --pair order")
    predict.add_argument("--out-dir", required=True, help="masks {out-dir}/{pair}.nii.gz")
    predict.add_argument("--runtime-dir", required=True, help="records {runtime-dir}/{pair}.json")
    predict.add_argument("--warped-dir", help="also write the warped CECT here")
    predict.add_argument("--cascades", type=int, default=None, help="use the first k cascades")
    predict.add_argument("--method-name", default="regsegnet")
    predict.add_argument(
        "--moving-mask-dir",
        help="CECT liver segmentations {patient}.nii.gz, when moving_mask names a method",
    )
    predict.set_defaults(func=_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CLEAN_ERRORS as error:
        print(f"regsegnet {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
