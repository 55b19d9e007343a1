"""Patient-level splits and pairs."""

import pytest

from liverbench.data.splits import (
    SplitError,
    make_pairs,
    make_splits,
    pair_id,
    parse_pair,
    plan_splits,
    split_counts,
)


def test_paper_proportions():
    assert split_counts(60, [35, 5, 20]) == [35, 5, 20]
    assert split_counts(20, [35, 5, 20]) == [12, 2, 6]
    assert min(split_counts(3, [35, 5, 20])) == 1


def test_splits_are_seeded_disjoint_and_complete():
    patients = [f"P{i:03d}" for i in range(20)]
    a = make_splits(patients, [35, 5, 20], seed=1)
    assert a == make_splits(patients, [35, 5, 20], seed=1)
    assert a != make_splits(patients, [35, 5, 20], seed=2)
    members = a["train"] + a["val"] + a["test"]
    assert sorted(members) == patients


def test_fixed_splits_are_kept():
    patients = [f"P{i}" for i in range(10)]
    splits = make_splits(patients, [35, 5, 20], seed=0, fixed={"P0": "test", "P1": "val"})
    assert "P0" in splits["test"] and "P1" in splits["val"]
    with pytest.raises(ValueError, match="unknown split"):
        make_splits(patients, [1, 1, 1], 0, fixed={"P0": "testing"})


def test_pairs_intra_for_eval_inter_linear_for_training():
    patients = [f"P{i:02d}" for i in range(20)]
    splits = make_splits(patients, [35, 5, 20], seed=0)
    pairs = make_pairs(splits, inter_per_patient=2, seed=0)
    for name in ("val", "test"):
        assert all(parse_pair(p)[0] == parse_pair(p)[1] for p in pairs[name])
    n_train = len(splits["train"])
    assert len(pairs["train"]) == n_train * 3
    inter = [p for p in pairs["train"] if parse_pair(p)[0] != parse_pair(p)[1]]
    assert all(set(parse_pair(p)) <= set(splits["train"]) for p in inter)


def test_pair_ids_round_trip():
    assert parse_pair(pair_id("A", "B")) == ("A", "B")
    with pytest.raises(ValueError):
        parse_pair("AB")


def test_a_split_left_empty_is_a_named_error():
    """A manifest split column without test (or val) patients ended in an IndexError or a
    late argparse failure (issue #15); now the split step names what is missing."""
    patients = ["A", "B", "C", "D"]
    fixed = {"A": "train", "B": "train", "C": "val", "D": "val"}
    with pytest.raises(SplitError, match=r"no test patients among 4: the manifest's split "
                                         r"column gives only \['train', 'val'\]"):
        plan_splits(patients, [35, 5, 20], 0, 1, fixed)
    with pytest.raises(SplitError, match="no val and no test patients"):
        plan_splits(patients, [35, 5, 20], 0, 1, {p: "train" for p in patients})
