"""Command line: `python -m baselines.nnunet prepare|pretrain|train|predict ...`.

    python -m baselines.nnunet prepare --root EXP/nnunet --settings '{...}' --threads 2 \
        --msd-cases EXP/data/msd/liver_0 ... --train-cases EXP/data/h108/P001 ... \
        --val-cases EXP/data/h108/P007 ... --summary EXP/models/nnunet/configuration.json
    python -m baselines.nnunet pretrain --root EXP/nnunet --settings '{...}' --target cect \
        --out EXP/models/nnunet/pretrain_cect.json
    python -m baselines.nnunet train --root EXP/nnunet --settings '{...}' --target cect \
        --pretrained EXP/models/nnunet/pretrain_cect.json --out EXP/models/nnunet/cect.json
    python -m baselines.nnunet predict --settings '{...}' --model EXP/models/nnunet/ncect.json \
        --image ncect --cases EXP/data/h108 --pairs P003__P003 ... --method nnunet_ncect \
        --out-dir EXP/predictions/nnunet_ncect --runtime-dir EXP/runtime/nnunet_ncect

`--image ncect` segments the nCECT of each pair's fixed patient, `--image cect` the CECT of
its moving patient; each mask is written in the geometry of the image it segments.
Model records (JSON) hold paths relative to the working directory, like every other path.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from baselines.nnunet.environment import configure
from baselines.nnunet.settings import TARGETS, Settings
from liverbench.data.io import ImageError, write_json, write_text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m baselines.nnunet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def common(command: argparse.ArgumentParser) -> None:
        command.add_argument("--settings", help="the nnunet config section as JSON")
        command.add_argument("--threads", type=int, help="CPU threads and worker processes "
                             "(default: settings.threads)")

    prepare = commands.add_parser("prepare", help="raw datasets, plans, preprocessing")
    common(prepare)
    prepare.add_argument("--root", type=Path, required=True, help="folder for nnU-Net's "
                         "raw/, preprocessed/ and results/")
    prepare.add_argument("--msd-cases", nargs="+", required=True, help="pretraining case folders")
    prepare.add_argument("--train-cases", nargs="+", required=True, help="cohort case folders")
    prepare.add_argument("--val-cases", nargs="+", required=True, help="cohort case folders")
    prepare.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS),
                         help="cohort datasets to build (default: both)")
    prepare.add_argument("--summary", type=Path, required=True, help="JSON to write: datasets, "
                         "plans and the configuration chosen")

    for name, text in (("pretrain", "train on the pretraining cohort with a target's plans"),
                       ("train", "train (fine-tune) a target")):
        command = commands.add_parser(name, help=text)
        common(command)
        command.add_argument("--root", type=Path, required=True)
        command.add_argument("--target", choices=TARGETS, required=True)
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--out", type=Path, required=True, help="model record (JSON)")
        command.add_argument("--losses", type=Path, help="per-epoch losses to write (CSV)")
        if name == "train":
            command.add_argument("--pretrained", type=Path,
                                 help="model record of the pretraining (fine-tune from it)")

    predict = commands.add_parser("predict", help="segment one image per pair, timed per pair")
    common(predict)
    predict.add_argument("--model", type=Path, required=True, help="model record (JSON)")
    predict.add_argument("--image", choices=TARGETS, required=True)
    predict.add_argument("--cases", type=Path, required=True, help="standardized case folders")
    predict.add_argument("--pairs", nargs="+", required=True)
    predict.add_argument("--method", required=True, help="method name for the runtime records")
    predict.add_argument("--out-dir", type=Path, required=True)
    predict.add_argument("--runtime-dir", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings.from_json(args.settings)
        threads = args.threads or settings.threads
        if args.command == "prepare":
            configure(args.root, threads)
            from baselines.nnunet.planning import prepare

            summary = prepare(args.root, args.msd_cases, args.train_cases, args.val_cases,
                              settings, threads, args.targets)
            write_json(summary, args.summary)
        elif args.command in ("pretrain", "train"):
            configure(args.root, threads)
            record = _train(args, settings)
            if args.losses is not None:
                _write_losses(record["history"], args.command, args.losses)
            write_json(record, args.out)
        else:
            root = Path(_load_record(args.model)["model_folder"]).parents[2]
            configure(root, threads)
            from baselines.nnunet.prediction import predict_pairs

            predict_pairs(_load_record(args.model), settings, args.image, args.cases,
                          args.pairs, args.method, args.out_dir, args.runtime_dir, threads)
    except (ImageError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _train(args: argparse.Namespace, settings: Settings) -> dict:
    from baselines.nnunet.planning import PLANS, pretraining_plans
    from baselines.nnunet.training import resolve_device, train

    device = resolve_device(settings.device)
    mirroring = settings.use_mirroring(device.type)
    if args.command == "pretrain":
        if args.target not in settings.pretraining_sources():
            raise ValueError(f"no target is pretrained with {args.target}'s plans (settings "
                             f"pretraining: {settings.pretraining})")
        return train(args.root, "msd", pretraining_plans(args.target), settings.configuration,
                     settings.pretrain, device=device, validate=settings.validate_after_training,
                     mirroring=mirroring, seed=args.seed)
    pretrained = None
    if args.pretrained is not None:
        pretrained = _load_record(args.pretrained)["checkpoint"]
    elif settings.pretraining.get(args.target) is not None:
        raise ValueError(f"settings pretrain {args.target} from MSD "
                         f"({settings.pretraining[args.target]}'s plans); pass --pretrained")
    return train(args.root, args.target, PLANS, settings.configuration, settings.train,
                 pretrained=pretrained, device=device,
                 validate=settings.validate_after_training, mirroring=mirroring, seed=args.seed)


def _write_losses(history: list[dict], stage: str, path: Path) -> None:
    columns = ["stage", "epoch", "train_loss", "val_loss", "pseudo_dice", "ema_pseudo_dice"]
    lines = [",".join(columns)]
    lines += [",".join(str({**row, "stage": stage}[c]) for c in columns) for row in history]
    write_text("\n".join(lines) + "\n", path)


def _load_record(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model record not found (train the model first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a model record ({error})") from error


if __name__ == "__main__":
    sys.exit(main())
