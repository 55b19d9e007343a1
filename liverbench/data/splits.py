"""Patient-level splits and registration pairs.

Splits are by patient (never by pair) so that no test patient's anatomy is seen in training.
Training pairs mix intra- and inter-patient pairs (paper section 3); validation and test
pairs are intra-patient only. Inter-patient pairs are drawn `inter_per_patient` per training
patient, so the pair count (and the cost) grows linearly with the cohort, not quadratically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from liverbench.errors import InputError
from liverbench.layout import PAIR_SEPARATOR, pair_id, parse_pair

__all__ = [
    "PAIR_SEPARATOR", "make_pairs", "make_splits", "pair_id", "parse_pair", "plan_splits",
    "split_counts",
]

SPLITS = ("train", "val", "test")


class SplitError(InputError):
    """A cohort that cannot be split into train, val and test."""


def split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder rounding of n * fractions, each split getting at least one patient."""
    if n < len(fractions):
        raise ValueError(f"need at least {len(fractions)} patients to split, got {n}")
    weights = np.asarray(fractions, dtype=float)
    if (weights <= 0).any():
        raise ValueError(f"split fractions must be positive, got {list(fractions)}")
    exact = n * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    for index in np.argsort(-np.round(exact - counts, 9), kind="stable")[: n - counts.sum()]:
        counts[index] += 1
    while (counts == 0).any():
        counts[np.argmax(counts)] -= 1
        counts[np.argmin(counts)] += 1
    return counts.tolist()


def make_splits(
    patients: Sequence[str],
    fractions: Sequence[float],
    seed: int,
    fixed: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """Seeded split of patients into train/val/test.

    `fixed` maps patient -> split for patients whose split is given (e.g. a manifest column);
    those are kept, and only the others are shuffled into the remaining places.
    """
    fixed = dict(fixed or {})
    unknown = set(fixed.values()) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split name(s) {sorted(unknown)}; use {SPLITS}")
    if len(set(patients)) != len(patients):
        raise ValueError("patient ids are not unique")
    splits: dict[str, list[str]] = {name: [] for name in SPLITS}
    for patient in patients:
        if patient in fixed:
            splits[fixed[patient]].append(patient)
    free = sorted(p for p in patients if p not in fixed)
    if free:
        targets = split_counts(len(patients), fractions)
        rng = np.random.default_rng(seed)
        order = [free[i] for i in rng.permutation(len(free))]
        for name, target in zip(SPLITS, targets):
            take = max(0, target - len(splits[name]))
            splits[name].extend(order[:take])
            order = order[take:]
        splits["train"].extend(order)
    return {name: sorted(members) for name, members in splits.items()}


def make_pairs(
    splits: Mapping[str, Sequence[str]], inter_per_patient: int, seed: int
) -> dict[str, list[str]]:
    """Pair ids per split: intra-patient for all, plus inter-patient pairs for training."""
    train = sorted(splits["train"])
    pairs = {name: [pair_id(p, p) for p in sorted(splits[name])] for name in SPLITS}
    rng = np.random.default_rng(seed + 1)
    k = min(inter_per_patient, len(train) - 1)
    for fixed in train:
        others = [p for p in train if p != fixed]
        for moving in rng.choice(others, size=k, replace=False) if k > 0 else []:
            pairs["train"].append(pair_id(str(moving), fixed))
    return pairs


def plan_splits(
    patients: Sequence[str],
    fractions: Sequence[float],
    seed: int,
    inter_per_patient: int,
    fixed: Mapping[str, str] | None = None,
) -> dict:
    """The one computation of a cohort's splits and pairs (what splits.json records). Every
    split must hold a patient: training needs train and val, scoring needs test."""
    splits: dict = make_splits(patients, fractions, seed, fixed)
    empty = [name for name in SPLITS if not splits[name]]
    if empty:
        given = sorted(set((fixed or {}).values()))
        raise SplitError(
            f"no {' and no '.join(empty)} patients among {len(patients)}: "
            + (f"the manifest's split column gives only {given}" if fixed and
               len(fixed) == len(patients) else f"split fractions {list(fractions)}")
            + "; training needs train and val patients, scoring needs test patients")
    splits["pairs"] = make_pairs(splits, inter_per_patient, seed)
    return splits
