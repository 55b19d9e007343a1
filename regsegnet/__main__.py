"""Command line: `python -m regsegnet train ...` and `python -m regsegnet predict ...`.

Both take the `regsegnet:` config section as `--settings` (JSON, or a JSON/YAML file) and
explicit paths, so the Snakemake rules and a user at the shell call the same thing. Training
reads whole pair folders; prediction takes aligned per-pair file lists (`--pairs` order).
Bad input exits with status 2 and one line naming the file or key.
"""

from __future__ import annotations

import os

# OpenMP threads that find no work spin by default. On a shared machine with more runnable
# threads than cores (2 cores, several jobs), spinning made a 2-thread training step ~50x
# slower (8.6 s instead of 0.12-0.5 s at load 10); on an idle machine both policies take
# 0.235 s per 64³ step. Read once when torch loads libgomp, hence before torch's import
# (the handlers import the torch-using modules).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from liverbench.cli import aligned, run_cli  # noqa: E402
from liverbench.progress import show_bars  # noqa: E402
from regsegnet.settings import Settings  # noqa: E402

if TYPE_CHECKING:
    from regsegnet.predict import PairJob

PROG = "python -m regsegnet"


def _train(args: argparse.Namespace) -> None:
    from regsegnet.hardware import set_threads
    from regsegnet.train import train

    settings = Settings.from_text(args.settings, section="regsegnet")
    set_threads(args.threads)
    result = train(
        settings, args.train_pairs, args.val_pairs, args.out,
        resume=not args.no_resume, progress=not args.no_progress and show_bars(),
    )
    print(
        f"model {result.model_path}: epoch {result.kept_epoch} ({settings.model_selection}), "
        f"validation Dice {result.kept_val_dice:.4f}; {result.epochs_run} epoch(s) in "
        f"{result.seconds:.1f} s"
    )


PER_PAIR = ("pairs", "moving", "moving_liver", "fixed", "prealign", "original_ncect",
            "predictions", "runtimes")
OPTIONAL_PER_PAIR = ("warped", "mappings", "moving_masks", "cect_liver", "pair_timings")


def _jobs(args: argparse.Namespace) -> list[PairJob]:
    """One `PairJob` per `--pairs` entry, from the aligned per-pair lists."""
    from regsegnet.data import PairFiles
    from regsegnet.predict import PairJob

    given = [name for name in OPTIONAL_PER_PAIR if getattr(args, name)]
    jobs = []
    for row in aligned(args, *PER_PAIR, *given):
        values = dict(zip(PER_PAIR + tuple(given), row))
        optional = {name: Path(values[name]) for name in given}
        jobs.append(PairJob(
            pair=values["pairs"],
            files=PairFiles(Path(values["moving"]), Path(values["moving_liver"]),
                            Path(values["fixed"])),
            prealign=Path(values["prealign"]), original_ncect=Path(values["original_ncect"]),
            prediction=Path(values["predictions"]), runtime=Path(values["runtimes"]),
            warped=optional.get("warped"), mapping=optional.get("mappings"),
            moving_mask=optional.get("moving_masks"), cect_liver=optional.get("cect_liver"),
            pair_timing=optional.get("pair_timings"),
        ))
    return jobs


def _predict(args: argparse.Namespace) -> None:
    from regsegnet.hardware import set_threads
    from regsegnet.predict import predict_pairs

    settings = Settings.from_text(args.settings, section="regsegnet")
    jobs = _jobs(args)
    set_threads(args.threads)
    records = predict_pairs(
        args.model, jobs, method_name=args.method_name, cascades=args.cascades,
        device=settings.device, moving_mask=settings.moving_mask, inference=settings.inference,
    )
    core = sum(r.seconds_core for r in records) / len(records)
    case = sum(r.seconds_case for r in records) / len(records)
    print(f"{args.method_name}: {len(records)} pair(s), per pair: network {core:.3f} s, "
          f"case {case:.3f} s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--settings", default="{}",
                        help="the regsegnet config section: JSON, or a JSON/YAML file")
    common.add_argument("--threads", type=int, default=None, help="torch CPU threads")

    train = commands.add_parser("train", parents=[common], help="cascade-wise training")
    train.add_argument("--train-pairs", nargs="+", required=True, metavar="DIR",
                       help="training pair folders (moving, moving_liver, fixed, fixed_liver)")
    train.add_argument("--val-pairs", nargs="+", required=True, metavar="DIR",
                       help="validation pair folders")
    train.add_argument("--out", required=True, metavar="DIR",
                       help="model folder (model.pt, losses.csv, checkpoint.pt, training.json)")
    train.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)

    predict = commands.add_parser("predict", parents=[common], help="register and segment pairs")
    predict.add_argument("--model", required=True, help="model.pt written by train")
    per_pair = {
        "--pairs": ("ID", "pair ids MOVING__FIXED"),
        "--moving": ("FILE", "the moving CECT of each pair, on the working grid"),
        "--moving-liver": ("FILE", "its annotated liver, on the working grid"),
        "--fixed": ("FILE", "the fixed nCECT of each pair, on the working grid"),
        "--prealign": ("FILE", "the pair's pre-alignment (ITK transform, nCECT -> CECT world)"),
        "--original-ncect": ("FILE", "the original nCECT (the mask's geometry)"),
        "--predictions": ("FILE", "output: the liver mask on the original nCECT"),
        "--runtimes": ("FILE", "output: the runtime record (JSON)"),
    }
    for option, (metavar, text) in per_pair.items():
        predict.add_argument(option, nargs="+", required=True, metavar=metavar,
                             help=f"{text}; one per pair, in --pairs order")
    predict.add_argument("--pair-timings", nargs="+", metavar="FILE",
                         help="the pair step's stages (timing.json) of each pair, counted in "
                              "the pair's seconds_case (the DAG always gives them)")
    predict.add_argument("--warped", nargs="+", metavar="FILE",
                         help="output: the warped CECT on the working grid, one per pair")
    predict.add_argument("--mappings", nargs="+", metavar="FILE",
                         help="output: the final mapping, nCECT world -> CECT world (ITK "
                              "transform, .h5: pre-alignment after the network's field), "
                              "one per pair")
    predict.add_argument("--cect-liver", nargs="+", metavar="FILE",
                         help="the annotated CECT liver of each pair, original geometry: the "
                              "final mapping carries it onto the original nCECT")
    predict.add_argument("--moving-masks", nargs="+", metavar="FILE",
                         help="CECT liver segmentations replacing --moving-liver, one per pair, "
                              "when regsegnet.moving_mask names a method")
    predict.add_argument("--cascades", type=int, default=None, help="use the first k cascades")
    predict.add_argument("--method-name", default="regsegnet",
                         help="method id written into the runtime records")
    predict.set_defaults(func=_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
