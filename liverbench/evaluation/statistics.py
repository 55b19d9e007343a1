"""Summary statistics, bootstrap confidence intervals, paired tests and Holm correction.

Thin wrappers around numpy/scipy that fix the conventions of the tables in one place:
- std is the sample standard deviation (ddof = 1), as in a paper's "mean ± std";
- the IQR is numpy's linear-interpolation 25th and 75th percentiles;
- the bootstrap CI of the mean is the percentile interval (robust to constant samples,
  where BCa is undefined), seeded per (method, metric) so that adding a method never changes
  another method's interval;
- the paired test is scipy's two-sided Wilcoxon signed-rank test (zero differences dropped,
  exact distribution for small samples), on the pairs both methods have;
- Holm's step-down correction controls the family-wise error over the comparisons given
  (the tables use one family per metric: every method against the reference).
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence

import numpy as np
from scipy import stats

NAN = float("nan")


def finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The finite values as a float array (NaN marks 'not defined for this pair')."""
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def summarize(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """n, mean, std (ddof 1), median, q1, q3 over the finite values (NaN when there are none)."""
    x = finite(values)
    if x.size == 0:
        return {"n": 0, "mean": NAN, "std": NAN, "median": NAN, "q1": NAN, "q3": NAN}
    q1, median, q3 = np.percentile(x, [25, 50, 75])
    return {
        "n": int(x.size),
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if x.size > 1 else NAN,
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
    }


def stable_seed(seed: int, *names: str) -> int:
    """A seed derived from `seed` and names, independent of the order things are computed in."""
    return (int(seed) * 1_000_003 + zlib.crc32("/".join(names).encode())) % 2**32


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    seed: int,
    n_resamples: int = 2000,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of the finite values; NaNs for fewer than 2."""
    x = finite(values)
    if x.size < 2:
        return NAN, NAN
    result = stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=int(n_resamples),
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_wilcoxon(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """Two-sided Wilcoxon signed-rank test of x − y on the entries where both are finite.

    Returns n (pairs used), statistic and p; p is NaN when no pair or when every difference
    is zero (the test is undefined then, not 'significant').
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size == 0 or np.all(a == b):
        return {"n": int(a.size), "statistic": NAN, "p": NAN}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # ties / small n: scipy picks the method
        result = stats.wilcoxon(a, b, alternative="two-sided")
    return {"n": int(a.size), "statistic": float(result.statistic), "p": float(result.pvalue)}


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, same order as given; NaNs stay NaN and do not count
    towards the family size."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, NAN)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    if m == 0:
        return adjusted
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


__all__ = ["bootstrap_ci", "finite", "holm", "paired_wilcoxon", "stable_seed", "summarize"]
