"""Runtime in one scope for every method: where each case's seconds go, and the speed ratios.

Every runtime record (`liverbench.runtime.RuntimeRecord`) times a case from the original
images as read to the mask written (`seconds_case`), whichever DAG step did each part, with
its stages; `seconds_core` is the network forward passes or the registration alone. This
module turns the metric CSVs' `stages` column into the mean seconds per stage and method
(`table_runtime.*`), and prints how many times faster RegSegNet is than Elastix + CNN on
both scopes, on the pairs both timed (`speed_ratio.csv`, and a note under Table 1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from liverbench.evaluation.render import Block, fmt_seconds

# (fast, slow): the comparisons the paper's runtime claim is about, each where both ran.
SPEED_COMPARISONS = (("regsegnet", "elastix_cnn"), ("regsegnet_cnnmask", "elastix_cnn"))
SCOPE_NOTE = (
    "Case: from the original images as read to the mask written on the original nCECT, "
    "whichever DAG step ran each part (the pair step's reading, pre-alignment and working "
    "grid; the CECT and nCECT segmentations a method needs; its own reading, network or "
    "registration, mapping back and writing). Core: the network forward passes or the "
    "registration alone (Elastix + CNN: elastix and its two nnU-Net forward passes; rigid: "
    "the pre-alignment; identity: none). Model loading and warm-up are one-offs per process, "
    "outside both. Stages are grouped by their first name part (pair = the pair step)."
)


def _timed(frame: pd.DataFrame, method: str) -> pd.DataFrame:
    """The method's rows with a runtime (failed and missing pairs have none)."""
    return frame[(frame["method"] == method) & frame["seconds_case"].notna()]


def _stages(rows: pd.DataFrame) -> list[dict[str, float]]:
    return [json.loads(text) for text in rows["stages"] if isinstance(text, str) and text]


def stage_values(frame: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Long frame: method, stage, group (its first name part), n, mean seconds and share of
    the method's mean case time; stages in the order the records list them."""
    rows = []
    for method in methods:
        per_case = _stages(_timed(frame, method))
        if not per_case:
            continue
        names = list(dict.fromkeys(name for case in per_case for name in case))
        case_mean = float(np.mean([sum(case.values()) for case in per_case]))
        for name in names:
            mean = float(np.mean([case.get(name, 0.0) for case in per_case]))
            rows.append({"method": method, "stage": name, "group": name.split(".")[0],
                         "n": len(per_case), "seconds_mean": mean,
                         "share_of_case": mean / case_mean if case_mean > 0 else np.nan})
    return pd.DataFrame(rows, columns=["method", "stage", "group", "n", "seconds_mean",
                                       "share_of_case"])


def speed_ratios(frame: pd.DataFrame,
                 comparisons: Sequence[tuple[str, str]] = SPEED_COMPARISONS) -> pd.DataFrame:
    """For each (fast, slow) pair of methods that both ran: mean seconds of each on the pairs
    both timed, and slow / fast on the case and the core scope."""
    rows = []
    for fast, slow in comparisons:
        a, b = _timed(frame, fast).set_index("pair"), _timed(frame, slow).set_index("pair")
        shared = a.index.intersection(b.index)
        if shared.empty:
            continue
        row: dict[str, object] = {"fast": fast, "slow": slow, "n_pairs": len(shared)}
        for scope in ("case", "core"):
            fast_s = float(a.loc[shared, f"seconds_{scope}"].mean())
            slow_s = float(b.loc[shared, f"seconds_{scope}"].mean())
            row[f"fast_{scope}_s"] = fast_s
            row[f"slow_{scope}_s"] = slow_s
            row[f"ratio_{scope}"] = slow_s / fast_s if fast_s > 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["fast", "slow", "n_pairs", "fast_case_s", "slow_case_s",
                                       "ratio_case", "fast_core_s", "slow_core_s", "ratio_core"])


def speed_notes(ratios: pd.DataFrame, labels: Mapping[str, str]) -> list[str]:
    """One sentence per comparison, for the notes under Table 1 and the runtime table."""
    return [
        f"Speed: {labels.get(r.slow, r.slow)} took {r.ratio_case:.3g}× the time of "
        f"{labels.get(r.fast, r.fast)} per case ({r.slow_case_s:.3g} s vs {r.fast_case_s:.3g} "
        f"s) and {r.ratio_core:.3g}× on the core ({r.slow_core_s:.3g} s vs "
        f"{r.fast_core_s:.3g} s), on the {r.n_pairs} pairs both timed."
        for r in ratios.itertuples()
    ]


def runtime_block(frame: pd.DataFrame, methods: Sequence[str], stages: pd.DataFrame,
                  ratios: pd.DataFrame, labels: Mapping[str, str]) -> Block:
    """One row per method: core and case (mean ± std) and the case split into stage groups."""
    rows = []
    for method in methods:
        timed = _timed(frame, method)
        if timed.empty:
            continue
        groups = stages[stages["method"] == method].groupby("group", sort=False)["seconds_mean"]
        split = " · ".join(f"{group} {seconds:.3g}" for group, seconds in groups.sum().items())
        rows.append([labels.get(method, method),
                     *(fmt_seconds(timed[f"seconds_{scope}"].mean(),
                                   timed[f"seconds_{scope}"].std(ddof=1))
                       for scope in ("core", "case")), split or "–"])
    table = pd.DataFrame(rows, columns=["Method", "Core (s)", "Case (s)", "Case by stage (s)"])
    return Block("Runtime per case", table, [SCOPE_NOTE, *speed_notes(ratios, labels)])
