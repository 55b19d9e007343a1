"""Agreement of the clinical end point: Bland–Altman plots of the lung shunt fraction.

The lung shunt fraction (LSF) decides the 90Y activity; a method is clinically useful when
the LSF computed with its liver agrees with the LSF computed with the true liver. A
Bland–Altman plot (Bland & Altman, Lancet 1986;327:307) shows that agreement per test pair:
the difference (method − truth) against the mean of the two, with the bias and the 95 %
limits of agreement (bias ± 1.96 SD of the differences). One small panel per method, on a
shared x axis; each panel's y axis fits its own differences, and its bias is in its legend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def limits_of_agreement(differences: Sequence[float]) -> tuple[float, float, float]:
    """(bias, lower, upper): the mean difference and bias ∓ 1.96 SD (ddof 1); NaN below 2."""
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return (float(d.mean()) if d.size else np.nan), np.nan, np.nan
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    return bias, bias - 1.96 * sd, bias + 1.96 * sd


def lsf_bland_altman(frame: pd.DataFrame, methods: Sequence[str],
                     labels: Mapping[str, str] | None = None,
                     colours: Mapping[str, tuple] | None = None) -> Figure:
    """One panel per method: LSF(method) − LSF(truth) against their mean, in percentage
    points, with bias and limits of agreement; pairs without an LSF are left out."""
    labels = labels or {}
    columns = max(1, len(methods))
    # each panel its own y range: on a shared one, a bound that misses the liver (tens of
    # points off) flattened every other method's differences onto the zero line
    figure, axes = plt.subplots(1, columns, figsize=(2.6 * columns + 0.6, 3.2), sharex=True,
                                squeeze=False)
    has_any = False
    for ax, method in zip(axes[0], methods):
        rows = frame[(frame["method"] == method)].dropna(subset=["lsf_pred", "lsf_gt"])
        ax.set_title(str(labels.get(method, method)), fontsize="small")
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.grid(alpha=0.3)
        if rows.empty:
            ax.text(0.5, 0.5, "no LSF", transform=ax.transAxes, ha="center", color="0.4")
            continue
        has_any = True
        mean = (rows["lsf_pred"] + rows["lsf_gt"]) / 2
        difference = rows["lsf_pred"] - rows["lsf_gt"]
        colour = (colours or {}).get(method, "C0")
        ax.scatter(mean, difference, s=18, color=colour)
        bias, low, high = limits_of_agreement(difference)
        ax.axhline(bias, color=colour, lw=1.2, label=f"bias {bias:+.2f}")
        for limit in (low, high):
            if np.isfinite(limit):
                ax.axhline(limit, color=colour, lw=1.0, ls="--")
        ax.legend(fontsize="x-small", loc="upper right")
    axes[0][0].set_ylabel("LSF method − truth (pp)")
    for ax in axes[0]:
        ax.set_xlabel("mean LSF (%)", fontsize="small")
    figure.suptitle("Lung shunt fraction: agreement with the true liver (Bland–Altman)"
                    if has_any else "No lung shunt fraction in this cohort (no SPECT)")
    figure.tight_layout()
    return figure
