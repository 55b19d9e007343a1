"""The extended table: every metric per method, robust summaries, bootstrap confidence
intervals and paired tests against the reference method, Holm-corrected over the tested
methods (`evaluation.tested_methods`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from liverbench.evaluation.metric_frame import (
    CONVENTION_NOTE,
    TRE_NOTE,
    counts,
    label_of,
    notes_for_counts,
    penalised,
    present,
    scored,
)
from liverbench.evaluation.render import DASH, Block, fmt_mean_std, fmt_p, fmt_seconds
from liverbench.evaluation.statistics import (
    bootstrap_ci,
    holm,
    paired_wilcoxon,
    stable_seed,
    summarize,
)

EXTENDED_METRICS = (
    "dsc", "fnr", "fpr", "msd", "assd", "hd95", "rvd", "lsf_abs_error", "tre_mean_mm",
    "centroid_error_mm", "seconds_core", "seconds_case",
)
METRIC_NAMES = {
    "dsc": "DSC",
    "fnr": "FNR (paper)",
    "fpr": "FPR (paper)",
    "msd": "MSD (max, mm)",
    "assd": "ASSD (mm)",
    "hd95": "HD95 (mm)",
    "rvd": "RVD",
    "lsf_abs_error": "LSF abs. error (pp)",
    "tre_mean_mm": "TRE, mean over the liver (mm)",
    "centroid_error_mm": "Liver centroid error (mm)",
    "seconds_core": "Runtime, core (s)",
    "seconds_case": "Runtime, case (s)",
}
DIGITS = {"dsc": 3, "fnr": 3, "fpr": 3, "rvd": 3}


def extended_values(
    frame: pd.DataFrame,
    methods: Sequence[str],
    reference: str | None,
    seed: int,
    n_boot: int,
    tested: Sequence[str] = (),
) -> pd.DataFrame:
    """Long table, one row per (method, metric): summary, bootstrap CI, Wilcoxon vs reference
    for the `tested` methods (on every pair both were scored on, `penalised`), Holm-adjusted
    within each metric over those tests."""
    n = counts(frame, methods)
    rows = []
    for metric in present(EXTENDED_METRICS, frame):
        ok = scored(frame)[["method", "pair"]].assign(**{metric: penalised(frame, metric)})
        for method in methods:
            values = scored(frame[frame["method"] == method])[metric]
            row: dict[str, Any] = {"metric": metric, "method": method, **summarize(values)}
            row["ci_low"], row["ci_high"] = bootstrap_ci(
                values, stable_seed(seed, method, metric), n_boot
            )
            row.update(reference=reference or "", n_paired=np.nan, statistic=np.nan,
                       p_value=np.nan)
            if reference and method != reference and method in tested:
                both = pd.merge(
                    ok.loc[ok["method"] == method, ["pair", metric]],
                    ok.loc[ok["method"] == reference, ["pair", metric]],
                    on="pair", suffixes=("", "_ref"),
                )
                test = paired_wilcoxon(both[metric], both[f"{metric}_ref"])
                row.update(n_paired=test["n"], statistic=test["statistic"], p_value=test["p"])
            row.update(n.loc[method].to_dict())
            rows.append(row)
    table = pd.DataFrame(rows)
    table["p_holm"] = np.nan
    for _, group in table.groupby("metric", sort=False):
        table.loc[group.index, "p_holm"] = holm(group["p_value"].to_numpy())
    return table


def extended_blocks(
    table: pd.DataFrame, methods: Sequence[str], config: dict[str, Any], frame: pd.DataFrame,
    reference: str | None,
) -> list[Block]:
    """Counts, then one block per metric: n, mean ± std, median [IQR], CI, p, p (Holm)."""
    labels = config["method_labels"]
    n = counts(frame, methods)
    count_frame = pd.DataFrame(
        [[label_of(m, labels), *n.loc[m].tolist()] for m in methods],
        columns=["Method", "pairs", "ok", "empty", "failed", "missing"],
    )
    notes = [CONVENTION_NOTE, *notes_for_counts(n, labels, frame),
             *([TRE_NOTE] if "tre_mean_mm" in frame.columns else []),
             "95% CI: percentile bootstrap of the mean "
             f"({config['bootstrap_samples']} resamples, seeded)."]
    if reference:
        notes.append(
            f"p: two-sided paired Wilcoxon signed-rank test against {label_of(reference, labels)}"
            " on every pair both were scored on (n paired); an empty or failed prediction keeps"
            " DSC 0 and takes the worst observed value of a distance, so it ranks last; "
            "Holm-corrected within each metric over the methods tested."
        )
        tested = [label_of(m, labels) for m in methods
                  if m in config["tested_methods"] and m != reference]
        untested = [label_of(m, labels) for m in methods
                    if m not in config["tested_methods"] and m != reference]
        notes.append("Tested (the Holm family, evaluation.tested_methods): "
                     f"{', '.join(tested) or 'none'}."
                     + (f" Shown without a test (bounds, ablations): {', '.join(untested)}."
                        if untested else ""))
    else:
        wanted = config["reference_method"]
        notes.append(f"Paired tests skipped: the reference method {wanted!r} is not among the "
                     f"methods scored ({', '.join(methods)}).")
    blocks = [Block("Predictions per method", count_frame, notes)]
    for metric in present(EXTENDED_METRICS, frame):
        digits = DIGITS.get(metric, 2)
        rows = []
        for _, r in table[table["metric"] == metric].iterrows():
            is_ref = r["method"] == reference
            rows.append([
                label_of(r["method"], labels),
                int(r["n"]),
                fmt_seconds(r["mean"], r["std"]) if metric.startswith("seconds_")
                else fmt_mean_std(r["mean"], r["std"], digits),
                DASH if not np.isfinite(r["median"]) else
                f"{r['median']:.{digits}f} [{r['q1']:.{digits}f}, {r['q3']:.{digits}f}]",
                DASH if not np.isfinite(r["ci_low"]) else
                f"[{r['ci_low']:.{digits}f}, {r['ci_high']:.{digits}f}]",
                "reference" if is_ref else ("not tested" if not np.isfinite(r["n_paired"])
                                            else int(r["n_paired"])),
                "" if is_ref else fmt_p(r["p_value"]),
                "" if is_ref else fmt_p(r["p_holm"]),
            ])
        columns = ["Method", "n", "mean ± std", "median [IQR]", "95% CI of mean",
                   "n paired", "p (Wilcoxon)", "p (Holm)"]
        blocks.append(Block(METRIC_NAMES[metric], pd.DataFrame(rows, columns=columns)))
    return blocks
