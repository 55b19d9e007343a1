"""The project is citable and licensed as it says: CITATION.cff, LICENSE and pyproject agree."""

from __future__ import annotations

import tomllib

import yaml
from conftest import ROOT


def test_citation_file_names_the_project_and_the_paper() -> None:
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert citation["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors", "type"):
        assert citation[key], key
    assert citation["version"] == project["version"]
    assert citation["license"] == project["license"] == "MIT"
    titles = [reference["title"] for reference in citation["references"]]
    assert any(title.startswith("RegSegNet: A Joint Registration Segmentation Network")
               for title in titles)
    paper = next(r for r in citation["references"] if r["title"].startswith("RegSegNet"))
    assert [a["family-names"] for a in paper["authors"]][:2] == ["Pham", "Luu"]
    assert paper["year"] == 2024


def test_license_is_the_mit_text_pyproject_names() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert "Permission is hereby granted, free of charge" in text
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## How to cite" in readme and "CITATION.cff" in readme
