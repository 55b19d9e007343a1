"""Per-method evaluation: one CSV row per test pair, metrics + LSF + runtime.

    python -m liverbench.evaluation.evaluate --method M --pairs A__A B__B ... \\
        --predictions P... --runtimes R... --references GT... [--spect S... --lungs L...] \\
        [--truths D... [--mappings T...]] --out metrics/M.csv

Every per-pair list is aligned with ``--pairs`` (A pair id is ``A__B``: moving CECT of
patient A, fixed nCECT of patient B). The prediction is scored against the reference (the
fixed nCECT's ground-truth liver) in the nCECT's own geometry; with ``--spect`` and
``--lungs`` (the cohort has SPECT), the lung shunt fraction is computed with the ground-truth
liver and with the predicted one (both with the ground-truth lungs). A missing prediction is a
row with status ``missing`` and NaN metrics, so a table can count it; an empty one has status
``empty`` (DSC 0, distances and LSF NaN). A pair the method recorded as failed (its runtime
record says ``status: failed``, `liverbench.runtime.record_failure`) has status ``failed``,
its ``reason``, and the metrics of the empty mask it left. A missing runtime record leaves
the runtime NaN.
With ``--truths`` (the cohort has a true motion: the fixed patient's displacement field) the
registration-error columns are added (`registration_error.TRUTH_COLUMNS`): liver centroids
for every method, and with ``--mappings`` (the method's final nCECT → CECT transform) the
target registration error; without ``--truths`` these columns are absent, not zero.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import SimpleITK as sitk

from liverbench import runtime
from liverbench.cli import aligned, command
from liverbench.data.io import atomic_path, read_image, read_mask
from liverbench.errors import InputError
from liverbench.evaluation.lsf import lung_shunt_fraction
from liverbench.evaluation.metrics import METRIC_KEYS, evaluate
from liverbench.evaluation.registration_error import TRUTH_COLUMNS, registration_columns
from liverbench.layout import parse_pair

RUNTIME_COLUMNS = ("seconds_core", "seconds_case", "device", "threads", "peak_memory_mb",
                   "stages")
LSF_COLUMNS = ("lsf_gt", "lsf_pred", "lsf_abs_error")
COLUMNS = (
    ("method", "pair", "moving", "fixed", "status")
    + METRIC_KEYS
    + LSF_COLUMNS
    + RUNTIME_COLUMNS
    + ("reason",)
)
STATUSES = ("ok", "empty", "failed", "missing")
PROG = "python -m liverbench.evaluation.evaluate"
DESCRIPTION = "Score one method's predictions on the test pairs (one CSV row per pair)."
NAN = float("nan")


@dataclass(frozen=True)
class PairFiles:
    """What one pair is scored from; `spect`/`lungs` only where the cohort has SPECT, `truth`
    where it has a true motion, `mapping` where the method writes one."""

    pair: str
    prediction: Path
    runtime: Path
    reference: Path
    spect: Path | None = None
    lungs: Path | None = None
    truth: Path | None = None
    mapping: Path | None = None


def read_runtime(path: Path) -> dict[str, Any]:
    """The runtime columns of a runtime record (NaN/empty where the record is absent), and
    its status (`failed`, with the reason, where the method gave up on the pair)."""
    if not path.exists():
        return {"seconds_core": NAN, "seconds_case": NAN, "device": "", "threads": NAN,
                "peak_memory_mb": NAN, "stages": "", "status": runtime.OK, "reason": ""}
    record = runtime.read_record(path)
    values = {key: NAN if record[key] is None else record[key] for key in RUNTIME_COLUMNS}
    values["stages"] = json.dumps(record["stages"])  # name -> seconds, adding up to the case
    if record["status"] == runtime.FAILED:  # no comparable runtime: its time to give up is
        values["seconds_case"] = NAN       # in the record, never in a mean
    return {**values, "status": record["status"], "reason": str(record.get("reason") or "")}


def _lsf(files: PairFiles, liver: sitk.Image, gt_liver: sitk.Image) -> float:
    lungs = read_mask(files.lungs, gt_liver, files.reference)
    return lung_shunt_fraction(read_image(files.spect), liver, lungs)


def evaluate_pair(method: str, files: PairFiles) -> dict[str, Any]:
    """One CSV row (a dict with the keys of COLUMNS) for one pair."""
    moving, fixed = parse_pair(files.pair)
    row: dict[str, Any] = {"method": method, "pair": files.pair, "moving": moving, "fixed": fixed}
    row.update(read_runtime(files.runtime))
    failed = row.pop("status") == runtime.FAILED
    gt_image = read_mask(files.reference)
    has_lsf = files.spect is not None and files.lungs is not None
    lsf_gt = _lsf(files, gt_image, gt_image) if has_lsf else NAN
    if not files.prediction.exists():
        row.update(status="missing", **{key: NAN for key in METRIC_KEYS})
        row.update(lsf_gt=lsf_gt, lsf_pred=NAN, lsf_abs_error=NAN)
        return _with_truth(row, files, gt_image, None)
    pred_image = read_mask(files.prediction, gt_image, files.reference, allow_empty=True)
    pred = sitk.GetArrayViewFromImage(pred_image)
    spacing_zyx = tuple(reversed(gt_image.GetSpacing()))
    row.update(evaluate(pred, sitk.GetArrayViewFromImage(gt_image), spacing_zyx))
    if failed:  # scored as the empty mask it left (DSC 0); its mapping is not scored
        row.update(status=runtime.FAILED, lsf_gt=lsf_gt, lsf_pred=NAN, lsf_abs_error=NAN)
        return _with_truth(row, replace(files, mapping=None), gt_image, None)
    row["status"] = "ok" if pred.any() else "empty"
    lsf_pred = _lsf(files, pred_image, gt_image) if has_lsf and pred.any() else NAN
    error = abs(lsf_pred - lsf_gt) if not (math.isnan(lsf_pred) or math.isnan(lsf_gt)) else NAN
    row.update(lsf_gt=lsf_gt, lsf_pred=lsf_pred, lsf_abs_error=error)
    return _with_truth(row, files, gt_image, pred_image)


def _with_truth(row: dict[str, Any], files: PairFiles, gt_image: sitk.Image,
                pred_image: sitk.Image | None) -> dict[str, Any]:
    """The row plus the registration-error columns, where the cohort has a truth."""
    if files.truth is None:
        return row
    mapping = files.mapping if files.mapping is not None and files.mapping.exists() else None
    try:
        row.update(registration_columns(gt_image, pred_image, files.truth, mapping,
                                        row["moving"] == row["fixed"]))
    except InputError as error:
        raise InputError(f"{files.pair}: {error}") from error
    return row


def columns(pairs: Sequence[PairFiles]) -> list[str]:
    """COLUMNS, plus TRUTH_COLUMNS where the pairs come with a true motion."""
    with_truth = any(files.truth is not None for files in pairs)
    return list(COLUMNS) + (list(TRUTH_COLUMNS) if with_truth else [])


def evaluate_method(method: str, pairs: Sequence[PairFiles]) -> pd.DataFrame:
    """A DataFrame with one row per pair, in the given order, columns `columns(pairs)`."""
    ids = [files.pair for files in pairs]
    if len(set(ids)) != len(ids):
        raise InputError(f"--pairs: duplicate pair ids in {ids}")
    rows = [evaluate_pair(method, files) for files in pairs]
    return pd.DataFrame(rows, columns=columns(pairs))


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write atomically, so a crashed evaluation never leaves a CSV a rerun would trust."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


# command-line list -> PairFiles field
FIELDS = {"predictions": "prediction", "runtimes": "runtime", "references": "reference",
          "truths": "truth", "mappings": "mapping"}


def pair_files(args: argparse.Namespace) -> list[PairFiles]:
    """The aligned per-pair lists of the command line, one PairFiles per pair."""
    if bool(args.spect) != bool(args.lungs):
        raise InputError("--spect and --lungs: give both (the lung shunt fraction) or neither")
    if args.mappings and not args.truths:
        raise InputError("--mappings: needs --truths (the error is against the true motion)")
    names = ["predictions", "runtimes", "references"] + [
        name for name in ("spect", "lungs", "truths", "mappings") if getattr(args, name)]
    fields = [FIELDS.get(name, name) for name in names]
    return [PairFiles(pair, **{field: Path(path) for field, path in zip(fields, paths)})
            for pair, *paths in aligned(args, "pairs", *names)]


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
    parser.add_argument("--truths", nargs="+", help="per pair: the fixed patient's true motion "
                        "(displacement field, nCECT world -> CECT world); adds the "
                        "registration-error columns")
    parser.add_argument("--mappings", nargs="+", help="per pair: the method's final mapping "
                        "(ITK transform, nCECT world -> CECT world; absent: TRE NaN)")
    parser.add_argument("--out", required=True, help="output CSV")
    parser.set_defaults(func=run)
    return parser


main = command(PROG, DESCRIPTION, configure)


if __name__ == "__main__":
    sys.exit(main())
