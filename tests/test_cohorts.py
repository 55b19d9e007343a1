"""Cohorts: where each patient's files come from, and an external test cohort's config."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import run_snakemake

from liverbench.config import ConfigError, deep_merge, load, resolve
from liverbench.data import cohorts
from liverbench.layout import PHANTOM_FILES, Layout

CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"


def with_test_cohorts(entries: list) -> dict:
    raw = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return resolve(deep_merge(raw, {"test_cohorts": entries}))


def test_a_test_cohort_is_a_manifest_or_a_derived_cohort_and_never_both():
    config = with_test_cohorts([
        {"name": "mine", "manifest": "/data/mine.csv"},
        {"name": "ircadb", "derived_from": {"source": "/data/ircadb.csv", "patients": 2}},
    ])
    assert [entry["name"] for entry in config["test_cohorts"]] == ["mine", "ircadb"]
    both = {"name": "x", "manifest": "a.csv", "derived_from": {"source": "b"}}
    with pytest.raises(ConfigError, match="key 'test_cohorts.0'"):
        with_test_cohorts([both])
    with pytest.raises(ConfigError, match="key 'test_cohorts.0'"):
        with_test_cohorts([{"name": "x"}])
    with pytest.raises(ConfigError, match="key 'test_cohorts.0.name'"):
        with_test_cohorts([{"name": "../x", "manifest": "a.csv"}])


def test_test_cohort_names_are_unique():
    config = with_test_cohorts([{"name": "a", "manifest": "x.csv"},
                                {"name": "a", "manifest": "y.csv"}])
    with pytest.raises(ConfigError, match=r"'test_cohorts'.*\['a'\]"):
        cohorts.external_cohorts(config)


def test_external_config_keeps_the_trained_models_settings_and_replaces_the_cohort():
    config = with_test_cohorts([{"name": "mine", "manifest": "/data/mine.csv"}])
    module = cohorts.external_config(config, config["test_cohorts"][0])
    assert module["cohort"]["source"] == "manifest"
    assert module["cohort"]["manifest"] == "/data/mine.csv"
    assert module["external_cohort"] == "mine" and module["test_cohorts"] == []
    for section in ("methods", "regsegnet", "nnunet", "preprocess", "prealign", "seed"):
        assert module[section] == config[section], section
    assert config["cohort"]["source"] == "phantom", "the run's own config must not change"
    derived = cohorts.external_config(config, {"name": "d", "derived_from": {"source": "s"}})
    assert derived["cohort"]["source"] == "derived" and derived["cohort"]["manifest"] is None


def test_an_external_layout_reads_the_experiments_models():
    main = Layout("results/demo")
    external = main.external("mine")
    assert external.root == "results/demo/external/mine"
    assert external.model_file("regsegnet", "model.pt") == main.model_file("regsegnet", "model.pt")
    assert external.prediction("rigid", "A__A").startswith("results/demo/external/mine/")
    assert external.case_dir("A") != main.case_dir("A")


def test_all_test_splits_pair_each_patient_with_itself():
    splits = cohorts.all_test_splits(["B", "A"])
    assert splits["test"] == ["A", "B"] and splits["train"] == splits["val"] == []
    assert splits["pairs"] == {"train": [], "val": [], "test": ["A__A", "B__B"]}


def test_cohort_sources_name_the_missing_key():
    config = load(CONFIG)
    layout = Layout("results/x")
    with pytest.raises(ConfigError, match="key 'cohort.manifest'"):
        cohorts.cohort_sources({**config["cohort"], "source": "manifest"}, layout)
    with pytest.raises(ConfigError, match="key 'cohort.derived_from'"):
        cohorts.cohort_sources({**config["cohort"], "source": "derived"}, layout)
    sources, fixed = cohorts.cohort_sources(config["cohort"], layout)
    assert list(sources) == [f"P{i:03d}" for i in range(1, config["cohort"]["patients"] + 1)]
    assert set(sources["P001"]) == set(PHANTOM_FILES) and fixed == {}


def test_derived_seed_is_its_own_or_the_runs():
    assert cohorts.derived_seed({"derived_from": {"source": "s", "seed": 5}}, 2024) == 5
    assert cohorts.derived_seed({"derived_from": {"source": "s", "seed": None}}, 2024) == 2024


def test_a_derived_cohort_plans_the_whole_benchmark(tmp_path: Path):
    """`cohort.source: derived`: the DAG derives each source case, then trains and scores every
    method on them (a dry run; the smoke run derives and scores a derived test cohort)."""
    source = tmp_path / "Task03_Liver"
    subprocess.run(
        [sys.executable, "-m", "liverbench.data.phantom", "--kind", "msd", "--size", "smoke",
         "--out", str(source), "--patients", "4", "--seed", "3"],
        check=True, capture_output=True,
    )
    configfile = tmp_path / "derived.yaml"
    configfile.write_text(yaml.safe_dump({
        "experiment": "derived", "scale": "smoke",
        "cohort": {"source": "derived", "derived_from": {"source": str(source)}},
    }))
    result = run_snakemake(tmp_path, "--configfile", str(configfile), "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.MULTILINE))
    assert jobs.get("derive_patient") == "4", result.stdout
    for rule in ("regsegnet_train", "nnunet_train", "deepmedic_finetune", "tables"):
        assert rule in jobs, rule
    splits = json.loads((tmp_path / "results" / "derived" / "splits.json").read_text())
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == [
        f"liver_{i}" for i in range(4)
    ]
