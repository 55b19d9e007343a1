"""Provenance record: versions, machine, seeds and the config, as JSON and Markdown."""

from __future__ import annotations

import json

import yaml

from liverbench.evaluation.provenance import find_seeds, main, package_versions


def test_seeds_found_anywhere():
    config = {"seed": 1, "a": {"split_seed": 2, "b": [{"seed": 3}]}, "other": 4}
    assert find_seeds(config) == {"seed": 1, "a.split_seed": 2, "a.b[0].seed": 3}


def test_versions_of_installed_packages():
    versions = package_versions(["numpy", "surely-not-a-package-xyz"])
    assert versions["numpy"] and versions["surely-not-a-package-xyz"] is None


def test_cli_from_yaml(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_results", "/data/nnUNet_results")  # the user's (docs/nnunet.md)
    config = {"experiment": "unit", "seed": 2024, "methods": ["identity"]}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out_json, out_md = tmp_path / "p.json", tmp_path / "p.md"
    assert main(["--config", str(path), "--out-json", str(out_json), "--out-md", str(out_md),
                 "--no-gpu", "--out-html", str(tmp_path / "p.html")]) == 0
    record = json.loads(out_json.read_text())
    assert record["config"] == config and record["seeds"] == {"seed": 2024}
    assert record["packages"]["SimpleITK"] and record["cpu_count"] >= 1
    md = out_md.read_text()
    assert "| snakemake |" in md and '"experiment": "unit"' in md
    assert record["nnunet_folders"] == {"nnUNet_raw": None, "nnUNet_preprocessed": None,
                                        "nnUNet_results": "/data/nnUNet_results"}
    assert "- nnUNet_results: /data/nnUNet_results" in md
    assert "- nnUNet_raw: unset: the pipeline folders" in md
    page = (tmp_path / "p.html").read_text()
    assert "<h2>Packages</h2>" in page and "&quot;experiment&quot;: &quot;unit&quot;" in page


def test_cli_from_resolved_json(tmp_path, capsys):
    """The workflow hands over the resolved config file (Layout.resolved_config)."""
    config = {"experiment": "unit", "seed": 1, "regsegnet": {"seed": 1}}
    path = tmp_path / "config.resolved.json"
    path.write_text(json.dumps(config))
    out_json = tmp_path / "p.json"
    assert main(["--config", str(path), "--out-json", str(out_json),
                 "--out-md", str(tmp_path / "p.md"), "--no-gpu"]) == 0
    assert json.loads(out_json.read_text())["seeds"] == {"seed": 1, "regsegnet.seed": 1}
    path.write_text("{not json")
    assert main(["--config", str(path), "--out-json", str(out_json),
                 "--out-md", str(tmp_path / "p.md"), "--no-gpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m liverbench.evaluation.provenance: ")
    assert "config.resolved.json: not valid JSON" in err
