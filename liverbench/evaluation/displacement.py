"""Does a registration method follow the true motion, or a fixed shift? The displacement figure.

    python -m liverbench.evaluation.figures displacement --metrics metrics/regsegnet.csv ... \\
        --baseline metrics/rigid.csv --out figures/displacement.png \\
        --csv figures/displacement.csv [--labels-json J]

Per test pair, from the liver centroids of `metrics/{method}.csv` (columns of
`registration_error`, present where the cohort has a true motion): the cranio-caudal (world z)
displacement a method adds beyond the shared pre-alignment, pred_z(method) − pred_z(rigid),
against the same quantity for the ground truth, gt_z − pred_z(rigid). A method that registers
lies on the identity line; one that learned the cohort's mean breathing shift lies on a
horizontal line (correlation near 0). The CSV holds, per method, the Pearson correlation, the
least-squares slope and the mean absolute difference, for the closing note of a run.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from liverbench.errors import InputError

NEEDED = ("pred_centroid_z_mm", "gt_centroid_z_mm")
CSV_COLUMNS = ("method", "label", "n", "pearson_r", "slope", "mean_true_mm", "mean_added_mm",
               "mean_abs_difference_mm")
MIN_PAIRS = 3  # a correlation of two points is ±1 whatever the method does


def displacements(frame: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Per method and pair: `true_mm` (gt_z − baseline pred_z) and `added_mm` (pred_z −
    baseline pred_z); pairs where either prediction is missing or empty are left out."""
    for name, data in (("--metrics", frame), ("--baseline", baseline)):
        absent = [column for column in NEEDED if column not in data.columns]
        if absent:
            raise InputError(f"{name}: no liver-centroid columns ({', '.join(absent)}): the "
                             "cohort has no true motion, so the evaluation did not write them")
    base = baseline[["pair", "pred_centroid_z_mm"]].rename(
        columns={"pred_centroid_z_mm": "baseline_z"})
    data = frame[["method", "pair", *NEEDED]].merge(base, on="pair", how="inner")
    data = data.assign(true_mm=data["gt_centroid_z_mm"] - data["baseline_z"],
                       added_mm=data["pred_centroid_z_mm"] - data["baseline_z"])
    return data.dropna(subset=["true_mm", "added_mm"])[["method", "pair", "true_mm", "added_mm"]]


def agreement(data: pd.DataFrame, methods: Sequence[str],
              labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per method: n pairs, Pearson r and slope of added on true (NaN under MIN_PAIRS or for a
    constant quantity), means, and the mean |added − true| in mm."""
    labels = labels or {}
    rows = []
    for method in methods:
        rows_m = data[data["method"] == method]
        true, added = rows_m["true_mm"].to_numpy(), rows_m["added_mm"].to_numpy()
        defined = len(true) >= MIN_PAIRS and true.std() > 0 and added.std() > 0
        rows.append({
            "method": method, "label": str(labels.get(method, method)), "n": len(true),
            "pearson_r": float(np.corrcoef(true, added)[0, 1]) if defined else np.nan,
            "slope": float(np.polyfit(true, added, 1)[0]) if defined else np.nan,
            "mean_true_mm": float(true.mean()) if len(true) else np.nan,
            "mean_added_mm": float(added.mean()) if len(true) else np.nan,
            "mean_abs_difference_mm": float(np.abs(added - true).mean()) if len(true) else np.nan,
        })
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS))


def displacement_figure(data: pd.DataFrame, summary: pd.DataFrame,
                        baseline_label: str = "rigid") -> Figure:
    """One point per test pair and method, the identity line, r and slope per method in the
    legend."""
    import matplotlib.pyplot as plt

    from liverbench.evaluation.figures import legend_outside, palette

    methods = list(summary["method"])
    colours = palette(methods)
    figure, ax = plt.subplots(figsize=(9.5, 5.2))  # the legend beside it
    values = data[["true_mm", "added_mm"]].to_numpy()
    low, high = (values.min(), values.max()) if values.size else (-1.0, 1.0)
    margin = 0.08 * max(high - low, 1.0)
    ax.plot([low - margin, high + margin], [low - margin, high + margin], color="0.4", lw=1,
            ls="--", label="identity (registers the true motion)")
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axvline(0, color="0.8", lw=0.8)
    for row in summary.itertuples(index=False):
        rows_m = data[data["method"] == row.method]
        # the slope shows what r cannot: a method adding a near-constant shift has slope ~0
        r = ("r undefined" if np.isnan(row.pearson_r)
             else f"r = {row.pearson_r:.2f}, slope {row.slope:.2f}")
        ax.scatter(rows_m["true_mm"], rows_m["added_mm"], s=36, color=colours[row.method],
                   edgecolor="black", linewidth=0.4, label=f"{row.label} ({r}, n = {row.n})")
    ax.set_xlim(low - margin, high + margin)
    ax.set_ylim(low - margin, high + margin)
    ax.set_aspect("equal")
    ax.set_xlabel(f"true cranio-caudal liver displacement beyond {baseline_label} (mm)")
    ax.set_ylabel(f"displacement the method adds beyond {baseline_label} (mm)")
    ax.set_title("Cranio-caudal liver displacement (centroid z, + cranial)")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    figure.tight_layout()
    return figure


def write_displacement(metric_paths: Sequence[str | os.PathLike],
                       baseline_path: str | os.PathLike, out: str | os.PathLike,
                       csv: str | os.PathLike,
                       labels: Mapping[str, str] | None = None) -> list[Path]:
    """The figure (PNG) and the per-method agreement (CSV)."""
    from liverbench.evaluation.evaluate import write_csv
    from liverbench.evaluation.figures import save_figure
    from liverbench.evaluation.metric_frame import load_metrics

    frame, methods = load_metrics(metric_paths)
    baseline, (baseline_method,) = load_metrics([baseline_path])
    methods = [method for method in methods if method != baseline_method]
    if not methods:
        raise InputError("--metrics: no method besides the baseline to plot")
    data = displacements(frame[frame["method"].isin(methods)], baseline)
    summary = agreement(data, methods, labels)
    write_csv(summary, csv)
    figure = displacement_figure(data, summary, str((labels or {}).get(baseline_method,
                                                                        baseline_method)))
    return [save_figure(figure, out), Path(csv)]


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of `figures displacement` (its handler is set by the figures CLI)."""
    parser.add_argument("--metrics", nargs="+", required=True,
                        help="metrics/{method}.csv of the registration methods to plot")
    parser.add_argument("--baseline", required=True,
                        help="metrics CSV of the pre-alignment alone (the rigid method)")
    parser.add_argument("--out", required=True, help="output PNG")
    parser.add_argument("--csv", required=True, help="output CSV: correlation per method")
    parser.add_argument("--labels-json", default="{}", help='{"method": "display name"}')
    return parser
