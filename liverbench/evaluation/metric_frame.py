"""The per-method metric CSVs as one frame, and what every table derived from it shares:
which rows enter which number (`scored`, `penalised`), the counts per status, and the notes
that say so (module docstring of `liverbench.evaluation.tables`)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from liverbench.evaluation.evaluate import COLUMNS, STATUSES
from liverbench.evaluation.registration_error import TRUTH_COLUMNS

CONVENTION_NOTE = (
    "Mean ± sample std over test pairs. FNR = FN/|GT∪P| and FPR = FP/|GT∪P| (the paper's "
    "convention); MSD is the maximum symmetric surface distance (Hausdorff) in mm, as in the "
    "paper. Runtime per case (3 significant digits), one scope for every method: Case, from "
    "the original images as read to the mask written, every step included whichever DAG "
    "rule ran it; Core, the network forward passes or the registration alone (the runtime "
    "table breaks the case into stages)."
)
TRE_NOTE = (
    "TRE: target registration error against the true motion, the mean over the nCECT's "
    "ground-truth liver voxels of |T_method(p) − T_true(p)| in mm, for the methods that write "
    "a mapping; a dash for the others."
)


def present(metrics: Sequence[str], frame: pd.DataFrame) -> list[str]:
    """The metrics the frame has: the registration-error columns exist only where the cohort
    has a true motion."""
    return [metric for metric in metrics if metric in frame.columns]


def load_metrics(paths: Sequence[str | os.PathLike]) -> tuple[pd.DataFrame, list[str]]:
    """Concatenate per-method CSVs (one method each); return the frame and the method order."""
    frames, methods = [], []
    for path in paths:
        frame = pd.read_csv(path, keep_default_na=True)
        if "reason" not in frame.columns:  # written before failures were recorded: none failed
            frame["reason"] = ""
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: not a metrics CSV, lacks columns {', '.join(missing)}")
        names = frame["method"].dropna().unique().tolist()
        if len(names) != 1:
            raise ValueError(f"{path}: expected one method per file, found {names}")
        bad = sorted(set(frame["status"]) - set(STATUSES))
        if bad:
            raise ValueError(f"{path}: unknown status values {bad}")
        if names[0] in methods:
            raise ValueError(f"{path}: method {names[0]!r} appears in two metric files")
        methods.append(str(names[0]))
        frames.append(frame)
    if not frames:
        raise ValueError("no metric files given")
    frame = pd.concat(frames, ignore_index=True)
    numeric = [c for c in (*COLUMNS, *TRUTH_COLUMNS) if c in frame.columns
               and c not in ("method", "pair", "moving", "fixed", "status", "device", "reason",
                             "stages")]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce")
    return frame, methods


def scored(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with a prediction (status ok, empty or failed): the rows that enter means."""
    return frame[frame["status"] != "missing"]


def penalised(frame: pd.DataFrame, metric: str) -> pd.Series:
    """The metric of the scored rows, an empty or failed prediction's undefined value (NaN)
    replaced by the worst value of the metric over all rows: for the paired tests, where a
    pair must not drop out because a method produced nothing. Higher is worse for every
    metric with undefined values (distances, errors); DSC is defined (0) for them."""
    rows = scored(frame)
    values = rows[metric].astype(float)
    undefined = rows["status"].isin(("empty", "failed")) & values.isna()
    worst = values.max()
    return values.where(~undefined, worst)


def counts(frame: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Per method: n_pairs, n_ok, n_empty, n_failed, n_missing."""
    table = (
        frame.groupby("method")["status"].value_counts().unstack(fill_value=0)
        .reindex(index=list(methods), columns=list(STATUSES), fill_value=0)
    )
    table.columns = [f"n_{status}" for status in table.columns]
    table.insert(0, "n_pairs", table.sum(axis=1))
    return table.astype(int)


def label_of(method: str, labels: dict[str, str]) -> str:
    return str(labels.get(method, method))


def notes_for_counts(n: pd.DataFrame, labels: dict[str, str], frame: pd.DataFrame) -> list:
    notes = []
    for method, row in n.iterrows():
        name = label_of(str(method), labels)
        if row["n_missing"]:
            notes.append(
                f"{name}: {row['n_missing']} of {row['n_pairs']} predictions missing; its "
                f"statistics use only the {row['n_pairs'] - row['n_missing']} pairs with a "
                "prediction."
            )
        if row["n_empty"]:
            notes.append(
                f"{name}: {row['n_empty']} empty prediction(s), counted in DSC/FNR/FPR "
                f"(DSC 0); surface distances use the {row['n_ok']} non-empty ones."
            )
        if row["n_failed"]:
            failed = frame[(frame["method"] == method) & (frame["status"] == "failed")]
            reasons = "; ".join(f"{r.pair}: {r.reason}" for r in failed.itertuples())
            notes.append(
                f"{name}: {row['n_failed']} of {row['n_pairs']} pairs failed (in the missing "
                f"column), scored as empty predictions (DSC 0) — {reasons}"
            )
    pair_sets = {m: frozenset(g["pair"]) for m, g in frame.groupby("method")}
    if len(set(pair_sets.values())) > 1:
        notes.append("The methods were not scored on the same set of pairs.")
    return notes
