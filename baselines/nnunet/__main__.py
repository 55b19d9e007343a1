"""Command line: `python -m baselines.nnunet prepare|pretrain|train|import|predict ...`.

    python -m baselines.nnunet prepare --root EXP/nnunet --settings '{...}' --threads 2 \
        --msd-cases EXP/data/msd/liver_0 ... --train-cases EXP/data/h108/P001 ... \
        --val-cases EXP/data/h108/P007 ... --targets cect ncect \
        --summary EXP/models/nnunet/configuration.json
    python -m baselines.nnunet pretrain --root EXP/nnunet --settings '{...}' --target cect \
        --seed 0 --out EXP/models/nnunet/pretrain_cect.json \
        --losses EXP/models/nnunet/pretrain_cect_losses.csv
    python -m baselines.nnunet train --root EXP/nnunet --settings '{...}' --target ncect \
        --seed 0 --pretrained EXP/models/nnunet/pretrain_cect.json \
        --out EXP/models/nnunet/ncect.json --losses EXP/models/nnunet/ncect_losses.csv
    python -m baselines.nnunet import --root EXP/nnunet --settings '{...}' --target cect \
        --out EXP/models/nnunet/cect.json --losses EXP/models/nnunet/cect_losses.csv
    python -m baselines.nnunet predict --settings '{...}' --threads 2 \
        --model EXP/models/nnunet/ncect.json --method nnunet_ncect --pairs P003__P003 ... \
        --images EXP/data/h108/P003/ncect.nii.gz ... \
        --predictions EXP/predictions/nnunet_ncect/P003__P003.nii.gz ... \
        --runtimes EXP/runtime/nnunet_ncect/P003__P003.json ...

`prepare` reads whole case folders (`cect`/`ncect` and their `_liver` masks). `predict` takes
aligned per-pair lists: the original image to segment (the fixed patient's nCECT for
nnunet_ncect, the moving patient's CECT for phase 1 of elastix_cnn), and where its mask (in
that image's geometry) and runtime record go. Model records (JSON) hold paths relative to
the working directory, like every other path. Bad input exits with status 2 and one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from baselines.nnunet.environment import configure
from baselines.nnunet.settings import TARGETS, Settings
from liverbench.cli import aligned, run_cli
from liverbench.data.io import write_json, write_text
from liverbench.errors import InputError

PROG = "python -m baselines.nnunet"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def common(command: argparse.ArgumentParser) -> None:
        command.add_argument("--settings", help="the nnunet config section (JSON, or a "
                             "JSON/YAML file)")
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
    prepare.set_defaults(func=_prepare)

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
        command.set_defaults(func=_train_command)

    imported = commands.add_parser("import", help="check a trained model folder the config "
                                   "names (pretrained_model) and write its model record")
    common(imported)
    imported.add_argument("--root", type=Path, required=True)
    imported.add_argument("--target", choices=TARGETS, required=True)
    imported.add_argument("--out", type=Path, required=True, help="model record (JSON)")
    imported.add_argument("--losses", type=Path, help="the (empty) loss CSV to write")
    imported.set_defaults(func=_import)

    predict = commands.add_parser("predict", help="segment one image per pair, timed per pair")
    common(predict)
    predict.add_argument("--model", type=Path, required=True, help="model record (JSON)")
    predict.add_argument("--method", required=True, help="method name for the runtime records")
    predict.add_argument("--pairs", nargs="+", required=True, help="pair ids MOVING__FIXED")
    predict.add_argument("--images", nargs="+", type=Path, required=True,
                         help="per pair: the original image to segment")
    predict.add_argument("--predictions", nargs="+", type=Path, required=True,
                         help="per pair: the liver mask to write (the image's geometry)")
    predict.add_argument("--runtimes", nargs="+", type=Path, required=True,
                         help="per pair: the runtime record to write (JSON)")
    predict.set_defaults(func=_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, build_parser(), argv)


def _settings(args: argparse.Namespace) -> tuple[Settings, int]:
    settings = Settings.from_text(args.settings, section="nnunet")
    return settings, args.threads or settings.threads


def _prepare(args: argparse.Namespace) -> None:
    settings, threads = _settings(args)
    configure(args.root, threads)
    from baselines.nnunet.planning import prepare

    summary = prepare(args.root, args.msd_cases, args.train_cases, args.val_cases, settings,
                      threads, args.targets)
    write_json(summary, args.summary)


def _train_command(args: argparse.Namespace) -> None:
    settings, threads = _settings(args)
    configure(args.root, threads, settings.augmentation_workers)
    record = _train(args, settings)
    if args.losses is not None:
        _write_losses(record["history"], args.command, args.losses)
    write_json(record, args.out)


def _import(args: argparse.Namespace) -> None:
    settings, threads = _settings(args)
    folder = settings.pretrained_model.folder(args.target)
    if not folder:
        raise InputError(f"nnunet.pretrained_model.{args.target} is not set")
    configure(args.root, threads)
    from baselines.nnunet.environment import folder_sources
    from baselines.nnunet.pretrained import check_model

    record = check_model(folder, settings.pretrained_model)
    record.update(nnunet_root=str(args.root), nnunet_folders=folder_sources(args.root))
    print(f"{args.target}: {folder} ({record['configuration']}, fold {record['fold']}, liver "
          f"labels {record['liver_labels']}) used instead of training", flush=True)
    if args.losses is not None:
        _write_losses([], "import", args.losses)
    write_json(record, args.out)


def _predict(args: argparse.Namespace) -> None:
    settings, threads = _settings(args)
    jobs = aligned(args, "pairs", "images", "predictions", "runtimes")
    record = _load_record(args.model)
    configure(record.get("nnunet_root") or Path(record["model_folder"]).parents[2], threads)
    from baselines.nnunet.predict import predict_pairs

    predict_pairs(record, settings, args.method, jobs, threads)


def _train(args: argparse.Namespace, settings: Settings) -> dict:
    from baselines.nnunet.planning import PLANS, pretraining_plans
    from baselines.nnunet.train import resolve_device, train

    device = resolve_device(settings.device)
    mirroring = settings.use_mirroring(device.type)
    if args.command == "pretrain":
        if args.target not in settings.pretraining_sources():
            raise InputError(f"no target is pretrained with {args.target}'s plans (settings "
                             f"pretraining: {settings.pretraining})")
        return train(args.root, "msd", pretraining_plans(args.target), settings.configuration,
                     settings.pretrain, device=device, validate=settings.validate_after_training,
                     mirroring=mirroring, seed=args.seed)
    pretrained = None
    if args.pretrained is not None:
        pretrained = _load_record(args.pretrained)["checkpoint"]
    elif settings.pretraining.get(args.target) is not None:
        raise InputError(f"settings pretrain {args.target} from MSD "
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
        raise InputError(f"{path}: not a model record ({error})") from error


if __name__ == "__main__":
    sys.exit(main())
