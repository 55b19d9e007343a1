"""The 2×2 of registration method × CECT mask source (docs/evaluation.md).

A registration method carries a CECT liver to the nCECT; which liver it carries (the
annotation, or a CNN's segmentation of the CECT) is a factor of its own: Elastix measured
DSC 0.86 with nnU-Net's masks and 0.97 with annotations, more than any gap between methods.
Every registration row's mapping is computed once and carries both (`python -m
baselines.carry`); this table puts the two side by side per registration, so a reader sees
how much of a method's error is the CECT segmentation's.

`sources` maps a method id to {"registration": display name of the mapping it uses,
"mask": "annotation" | "nnunet"}; methods without an entry are not in the table.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from liverbench.evaluation.render import Block, fmt_mean_std

MASKS = {"annotation": "annotated CECT liver", "nnunet": "nnU-Net CECT liver"}


def mask_source_values(frame: pd.DataFrame, sources: Mapping[str, Mapping[str, str]],
                       metric: str = "dsc") -> pd.DataFrame:
    """Long frame: registration, mask, method, n, mean and std of `metric` (scored rows: a
    failed or empty prediction counts with its DSC 0)."""
    rows = []
    for method, source in sources.items():
        values = frame.loc[(frame["method"] == method) & (frame["status"] != "missing"), metric]
        values = values.astype(float).dropna()
        rows.append({"registration": source["registration"], "mask": source["mask"],
                     "method": method, "n": int(values.size),
                     f"{metric}_mean": float(values.mean()) if values.size else np.nan,
                     f"{metric}_std": float(values.std(ddof=1)) if values.size > 1 else np.nan})
    return pd.DataFrame(rows, columns=["registration", "mask", "method", "n", f"{metric}_mean",
                                       f"{metric}_std"])


def mask_source_block(values: pd.DataFrame, metric: str = "dsc") -> Block:
    """One row per registration, one column per mask source: mean ± std of `metric`."""
    table = []
    for registration, group in values.groupby("registration", sort=False):
        cells = {row["mask"]: fmt_mean_std(row[f"{metric}_mean"], row[f"{metric}_std"])
                 for _, row in group.iterrows()}
        table.append([registration, *(cells.get(mask, "–") for mask in MASKS)])
    notes = ["Each registration's final mapping is computed once and carries both CECT livers "
             "in one resampling onto the original nCECT; only the carried mask differs "
             "between the columns. The nnU-Net CECT liver is Elastix + CNN's phase 1 "
             "(Luu et al.); its time is added to the rows that carry it."]
    return Block(f"{metric.upper()} by registration and CECT mask source",
                 pd.DataFrame(table, columns=["Registration", *MASKS.values()]), notes)
