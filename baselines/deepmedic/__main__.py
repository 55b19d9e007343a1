"""Command line: `python -m baselines.deepmedic train|predict ...`.

    python -m baselines.deepmedic train --stage pretrain --settings '{...}' \
        --images MSD/c1/cect.nii.gz ... --labels MSD/c1/cect_liver.nii.gz ... \
        --out models/deepmedic/pretrained.pt
    python -m baselines.deepmedic train --stage finetune --settings '{...}' \
        --init models/deepmedic/pretrained.pt --images P1/ncect.nii.gz ... \
        --labels P1/ncect_liver.nii.gz ... --val-images ... --val-labels ... \
        --out models/deepmedic/model.pt --losses models/deepmedic/losses.csv
    python -m baselines.deepmedic predict --settings '{...}' --model model.pt \
        --preprocess '{"shape": ...}' --pairs P1__P1 ... --ncect data/P1/ncect.nii.gz ... \
        --predictions pred/P1__P1.nii.gz ... --runtimes runtime/P1__P1.json ...

`predict` puts each original nCECT on its working grid itself (`--preprocess`: the config's
preprocess section, as the training images were made), so a case is timed from the image as
read to the mask written.

Per-pair lists of `predict` are aligned with `--pairs` (one entry each, same order).
"""

from __future__ import annotations

import argparse
import logging
import sys

import torch

from baselines.deepmedic.predict import predict_cases
from baselines.deepmedic.sampling import load_volumes
from baselines.deepmedic.settings import SECTION, Settings
from baselines.deepmedic.train import STAGES, train_stage
from liverbench.cli import aligned, run_cli
from liverbench.data.preprocess import WorkingGrid
from liverbench.progress import show_bars
from liverbench.settings import read_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m baselines.deepmedic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train one stage (pretrain or finetune)")
    train.add_argument("--stage", choices=STAGES, required=True)
    train.add_argument("--settings", help="the deepmedic config section: JSON or a file")
    train.add_argument("--images", nargs="+", required=True, help="preprocessed images")
    train.add_argument("--labels", nargs="+", required=True, help="liver masks, one per image")
    train.add_argument("--val-images", nargs="*", default=[])
    train.add_argument("--val-labels", nargs="*", default=[])
    train.add_argument("--init", help="pretrained model file to start from (fine-tuning)")
    train.add_argument("--out", required=True, help="model file to write (.pt)")
    train.add_argument("--losses", help="loss CSV to write (all stages so far)")
    train.add_argument("--checkpoint", help="checkpoint file (default: OUT.checkpoint)")
    train.add_argument("--threads", type=int, help="CPU threads (default: settings.threads)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)

    predict = commands.add_parser("predict", help="segment nCECT volumes, timed per pair")
    predict.add_argument("--settings", help="the deepmedic config section: JSON or a file")
    predict.add_argument("--model", required=True)
    predict.add_argument("--pairs", nargs="+", required=True, help="pair ids MOVING__FIXED")
    predict.add_argument("--preprocess", required=True,
                         help="the config's preprocess section (JSON or a file): the working grid")
    predict.add_argument("--ncect", nargs="+", required=True,
                         help="original nCECT of each pair's fixed patient (output geometry)")
    predict.add_argument("--predictions", nargs="+", required=True, help="liver masks to write")
    predict.add_argument("--runtimes", nargs="+", required=True, help="runtime JSONs to write")
    predict.add_argument("--threads", type=int, help="CPU threads (default: settings.threads)")
    predict.set_defaults(func=run_predict)
    return parser


def setup(args: argparse.Namespace) -> Settings:
    """Settings from --settings; logging and torch threads for either command."""
    settings = Settings.from_text(args.settings, section=SECTION)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads or settings.threads)
    # Denormal floats take a slow path on x86 CPUs; flushing them to zero changes no result
    # that matters.
    torch.set_flush_denormal(True)
    return settings


def run_train(args: argparse.Namespace) -> None:
    settings = setup(args)
    if args.stage == "finetune" and not args.init:
        logging.warning("fine-tuning without --init: training from scratch")
    train_volumes = load_volumes(args.images, args.labels)
    val_volumes = load_volumes(args.val_images, args.val_labels)
    train_stage(
        settings,
        args.stage,
        train_volumes,
        args.out,
        val_volumes=val_volumes,
        init_path=args.init,
        losses_path=args.losses,
        checkpoint_path=args.checkpoint,
        fingerprint={"images": args.images, "labels": args.labels},
        progress=not args.no_progress and show_bars(),
    )


def run_predict(args: argparse.Namespace) -> None:
    jobs = aligned(args, "pairs", "ncect", "predictions", "runtimes")
    grid = WorkingGrid.from_config(read_settings(args.preprocess, "preprocess"))
    predict_cases(args.model, setup(args), grid, jobs)


def main(argv: list[str] | None = None) -> int:
    return run_cli("python -m baselines.deepmedic", build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
