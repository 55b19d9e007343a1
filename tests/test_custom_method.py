"""Adding a method is one rule file, one registry entry and one config line: a tiny
threshold segmenter from this test directory is run by the real workflow and scored."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, run_snakemake

RULES = ROOT / "tests" / "data" / "threshold" / "threshold.smk"


@pytest.mark.slow
def test_a_custom_method_is_scored_in_table1(tmp_path: Path):
    configfile = tmp_path / "mine.yaml"
    configfile.write_text(yaml.safe_dump({
        "experiment": "custom",
        "scale": "smoke",
        "methods": ["identity", "threshold"],
        "custom_methods": {
            "threshold": {"label": "HU threshold", "family": "direct segmentation",
                          "rules": str(RULES)},
        },
    }))
    result = run_snakemake(tmp_path, "--configfile", str(configfile))
    assert result.returncode == 0, result.stderr[-4000:]
    results = tmp_path / "results" / "custom"
    metrics = pd.read_csv(results / "metrics" / "threshold.csv")
    assert (metrics["status"] != "missing").all()
    assert metrics["seconds_core"].notna().all()
    table = (results / "table1.md").read_text()
    assert "HU threshold" in table and "Identity" in table


def test_a_misspelt_method_is_named_before_any_job(tmp_path: Path):
    result = run_snakemake(tmp_path, "--config", "experiment=bad", "scale=smoke",
                           "methods=[identity,regsegnett]", "-n")
    assert result.returncode != 0
    assert "unknown method(s) ['regsegnett']; valid ids:" in result.stdout + result.stderr
