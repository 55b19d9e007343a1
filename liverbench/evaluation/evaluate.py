"""Per-method evaluation: one CSV row per test pair, metrics + LSF + runtime.

    python -m liverbench.evaluation.evaluate --method M --pairs A__A B__B ... \\
        --predictions DIR --runtimes DIR --cases DIR --out metrics/M.csv

A pair id is ``A__B`` (moving CECT of patient A, fixed nCECT of patient B). The prediction
``DIR/{pair}.nii.gz`` is scored against ``CASES/{B}/ncect_liver.nii.gz`` in the nCECT's own
geometry; when ``CASES/{B}/spect.nii.gz`` and ``ncect_lungs.nii.gz`` exist, the lung shunt
fraction is computed with the ground-truth liver and with the predicted one (both with the
ground-truth lungs). A missing prediction is a row with status ``missing`` and NaN metrics, so
a table can count it; an empty one has status ``empty`` (DSC 0, distances and LSF NaN).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import SimpleITK as sitk

from liverbench.data.io import ImageError, atomic_path, read_image, read_mask
from liverbench.evaluation.lsf import lung_shunt_fraction
from liverbench.evaluation.metrics import METRIC_KEYS, evaluate

RUNTIME_COLUMNS = ("seconds_method", "seconds_total", "device", "threads", "peak_memory_mb")
LSF_COLUMNS = ("lsf_gt", "lsf_pred", "lsf_abs_error")
COLUMNS = (
    ("method", "pair", "moving", "fixed", "status")
    + METRIC_KEYS
    + LSF_COLUMNS
    + RUNTIME_COLUMNS
)
STATUSES = ("ok", "empty", "missing")
NAN = float("nan")


def split_pair(pair: str) -> tuple[str, str]:
    """'A__B' → ('A', 'B'); patient ids may contain single underscores, not double ones."""
    parts = pair.split("__")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"pair id {pair!r} is not of the form MOVING__FIXED")
    return parts[0], parts[1]


def read_runtime(path: Path) -> dict[str, Any]:
    """The runtime columns of a runtime record (NaN/empty where the record is absent)."""
    if not path.exists():
        return {"seconds_method": NAN, "seconds_total": NAN, "device": "",
                "threads": NAN, "peak_memory_mb": NAN}
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: runtime record is not valid JSON ({error})") from error
    missing = [key for key in RUNTIME_COLUMNS if key not in record]
    if missing:
        raise ValueError(f"{path}: runtime record lacks {', '.join(missing)}")
    return {key: record[key] for key in RUNTIME_COLUMNS}


def _lsf(case_dir: Path, liver: sitk.Image, gt_liver: sitk.Image) -> float:
    spect_path, lungs_path = case_dir / "spect.nii.gz", case_dir / "ncect_lungs.nii.gz"
    if not (spect_path.exists() and lungs_path.exists()):
        return NAN
    lungs = read_mask(lungs_path, gt_liver, case_dir / "ncect_liver.nii.gz")
    return lung_shunt_fraction(read_image(spect_path), liver, lungs)


def evaluate_pair(
    method: str, pair: str, predictions: Path, runtimes: Path, cases: Path
) -> dict[str, Any]:
    """One CSV row (a dict with the keys of COLUMNS) for one pair."""
    moving, fixed = split_pair(pair)
    case_dir = cases / fixed
    gt_path = case_dir / "ncect_liver.nii.gz"
    pred_path = predictions / f"{pair}.nii.gz"
    row: dict[str, Any] = {"method": method, "pair": pair, "moving": moving, "fixed": fixed}
    row.update(read_runtime(runtimes / f"{pair}.json"))
    gt_image = read_mask(gt_path)
    has_lsf = (case_dir / "spect.nii.gz").exists() and (case_dir / "ncect_lungs.nii.gz").exists()
    lsf_gt = _lsf(case_dir, gt_image, gt_image) if has_lsf else NAN
    if not pred_path.exists():
        row.update(status="missing", **{key: NAN for key in METRIC_KEYS})
        row.update(lsf_gt=lsf_gt, lsf_pred=NAN, lsf_abs_error=NAN)
        return row
    pred_image = read_mask(pred_path, gt_image, gt_path, allow_empty=True)
    pred = sitk.GetArrayViewFromImage(pred_image)
    spacing_zyx = tuple(reversed(gt_image.GetSpacing()))
    row.update(evaluate(pred, sitk.GetArrayViewFromImage(gt_image), spacing_zyx))
    row["status"] = "ok" if pred.any() else "empty"
    lsf_pred = _lsf(case_dir, pred_image, gt_image) if has_lsf and pred.any() else NAN
    error = abs(lsf_pred - lsf_gt) if not (math.isnan(lsf_pred) or math.isnan(lsf_gt)) else NAN
    row.update(lsf_gt=lsf_gt, lsf_pred=lsf_pred, lsf_abs_error=error)
    return row


def evaluate_method(
    method: str,
    pairs: Sequence[str],
    predictions: str | os.PathLike,
    runtimes: str | os.PathLike,
    cases: str | os.PathLike,
) -> pd.DataFrame:
    """A DataFrame with one row per pair, in the given order, columns COLUMNS."""
    if len(set(pairs)) != len(pairs):
        raise ValueError(f"duplicate pair ids in {list(pairs)}")
    rows = [
        evaluate_pair(method, pair, Path(predictions), Path(runtimes), Path(cases))
        for pair in pairs
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write atomically, so a crashed evaluation never leaves a CSV a rerun would trust."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m liverbench.evaluation.evaluate",
        description="Score one method's predictions on the test pairs (one CSV row per pair).",
    )
    parser.add_argument("--method", required=True)
    parser.add_argument("--pairs", nargs="+", required=True, help="pair ids MOVING__FIXED")
    parser.add_argument("--predictions", required=True, help="folder of {pair}.nii.gz masks")
    parser.add_argument("--runtimes", required=True, help="folder of {pair}.json records")
    parser.add_argument("--cases", required=True, help="folder of standardized cases")
    parser.add_argument("--out", required=True, help="output CSV")
    args = parser.parse_args(argv)
    try:
        frame = evaluate_method(
            args.method, args.pairs, args.predictions, args.runtimes, args.cases
        )
    except (ImageError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    write_csv(frame, args.out)
    counts = frame["status"].value_counts().reindex(STATUSES, fill_value=0)
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    print(f"{args.method}: {len(frame)} pairs ({summary}) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
