"""Per-method evaluation: one CSV row per test pair, metrics + LSF + runtime.

    python -m liverbench.evaluation.evaluate --method M --pairs A__A B__B ... \\
        --predictions P... --runtimes R... --references GT... [--spect S... --lungs L...] \\
        --out metrics/M.csv

Every per-pair list is aligned with ``--pairs`` (A pair id is ``A__B``: moving CECT of
patient A, fixed nCECT of patient B). The prediction is scored against the reference (the
fixed nCECT's ground-truth liver) in the nCECT's own geometry; with ``--spect`` and
``--lungs`` (the cohort has SPECT), the lung shunt fraction is computed with the ground-truth
liver and with the predicted one (both with the ground-truth lungs). A missing prediction is a
row with status ``missing`` and NaN metrics, so a table can count it; an empty one has status
``empty`` (DSC 0, distances and LSF NaN). A missing runtime record leaves the runtime NaN.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import SimpleITK as sitk

from liverbench.cli import aligned, command
from liverbench.data.io import atomic_path, read_image, read_mask
from liverbench.errors import InputError
from liverbench.evaluation.lsf import lung_shunt_fraction
from liverbench.evaluation.metrics import METRIC_KEYS, evaluate
from liverbench.layout import parse_pair

RUNTIME_COLUMNS = ("seconds_method", "seconds_total", "device", "threads", "peak_memory_mb")
LSF_COLUMNS = ("lsf_gt", "lsf_pred", "lsf_abs_error")
COLUMNS = (
    ("method", "pair", "moving", "fixed", "status")
    + METRIC_KEYS
    + LSF_COLUMNS
    + RUNTIME_COLUMNS
)
STATUSES = ("ok", "empty", "missing")
PROG = "python -m liverbench.evaluation.evaluate"
DESCRIPTION = "Score one method's predictions on the test pairs (one CSV row per pair)."
NAN = float("nan")


@dataclass(frozen=True)
class PairFiles:
    """What one pair is scored from; `spect`/`lungs` only where the cohort has SPECT."""

    pair: str
    prediction: Path
    runtime: Path
    reference: Path
    spect: Path | None = None
    lungs: Path | None = None


def read_runtime(path: Path) -> dict[str, Any]:
    """The runtime columns of a runtime record (NaN/empty where the record is absent)."""
    if not path.exists():
        return {"seconds_method": NAN, "seconds_total": NAN, "device": "",
                "threads": NAN, "peak_memory_mb": NAN}
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: runtime record is not valid JSON ({error})") from error
    missing = [key for key in RUNTIME_COLUMNS if key not in record]
    if missing:
        raise InputError(f"{path}: runtime record lacks {', '.join(missing)}")
    return {key: record[key] for key in RUNTIME_COLUMNS}


def _lsf(files: PairFiles, liver: sitk.Image, gt_liver: sitk.Image) -> float:
    lungs = read_mask(files.lungs, gt_liver, files.reference)
    return lung_shunt_fraction(read_image(files.spect), liver, lungs)


def evaluate_pair(method: str, files: PairFiles) -> dict[str, Any]:
    """One CSV row (a dict with the keys of COLUMNS) for one pair."""
    moving, fixed = parse_pair(files.pair)
    row: dict[str, Any] = {"method": method, "pair": files.pair, "moving": moving, "fixed": fixed}
    row.update(read_runtime(files.runtime))
    gt_image = read_mask(files.reference)
    has_lsf = files.spect is not None and files.lungs is not None
    lsf_gt = _lsf(files, gt_image, gt_image) if has_lsf else NAN
    if not files.prediction.exists():
        row.update(status="missing", **{key: NAN for key in METRIC_KEYS})
        row.update(lsf_gt=lsf_gt, lsf_pred=NAN, lsf_abs_error=NAN)
        return row
    pred_image = read_mask(files.prediction, gt_image, files.reference, allow_empty=True)
    pred = sitk.GetArrayViewFromImage(pred_image)
    spacing_zyx = tuple(reversed(gt_image.GetSpacing()))
    row.update(evaluate(pred, sitk.GetArrayViewFromImage(gt_image), spacing_zyx))
    row["status"] = "ok" if pred.any() else "empty"
    lsf_pred = _lsf(files, pred_image, gt_image) if has_lsf and pred.any() else NAN
    error = abs(lsf_pred - lsf_gt) if not (math.isnan(lsf_pred) or math.isnan(lsf_gt)) else NAN
    row.update(lsf_gt=lsf_gt, lsf_pred=lsf_pred, lsf_abs_error=error)
    return row


def evaluate_method(method: str, pairs: Sequence[PairFiles]) -> pd.DataFrame:
    """A DataFrame with one row per pair, in the given order, columns COLUMNS."""
    ids = [files.pair for files in pairs]
    if len(set(ids)) != len(ids):
        raise InputError(f"--pairs: duplicate pair ids in {ids}")
    rows = [evaluate_pair(method, files) for files in pairs]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write atomically, so a crashed evaluation never leaves a CSV a rerun would trust."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def pair_files(args: argparse.Namespace) -> list[PairFiles]:
    """The aligned per-pair lists of the command line, one PairFiles per pair."""
    if bool(args.spect) != bool(args.lungs):
        raise InputError("--spect and --lungs: give both (the lung shunt fraction) or neither")
    names = ("pairs", "predictions", "runtimes", "references") + (
        ("spect", "lungs") if args.spect else ())
    return [PairFiles(pair, *map(Path, paths)) for pair, *paths in aligned(args, *names)]


def run(args: argparse.Namespace) -> None:
    frame = evaluate_method(args.method, pair_files(args))
    write_csv(frame, args.out)
    counts = frame["status"].value_counts().reindex(STATUSES, fill_value=0)
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    print(f"{args.method}: {len(frame)} pairs ({summary}) -> {args.out}")


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add this command's arguments and handler (also a subcommand of liverbench.evaluation)."""
    parser.add_argument("--method", required=True)
    parser.add_argument("--pairs", nargs="+", required=True, help="pair ids MOVING__FIXED")
    parser.add_argument("--predictions", nargs="+", required=True,
                        help="per pair: the predicted liver mask (absent: status missing)")
    parser.add_argument("--runtimes", nargs="+", required=True,
                        help="per pair: the runtime record JSON")
    parser.add_argument("--references", nargs="+", required=True,
                        help="per pair: the fixed nCECT's ground-truth liver mask")
    parser.add_argument("--spect", nargs="+", help="per pair: the fixed patient's SPECT")
    parser.add_argument("--lungs", nargs="+", help="per pair: the fixed nCECT's lung mask")
    parser.add_argument("--out", required=True, help="output CSV")
    parser.set_defaults(func=run)
    return parser


main = command(PROG, DESCRIPTION, configure)


if __name__ == "__main__":
    sys.exit(main())
