"""Where a run's time goes (liverbench/evaluation/dag_time.py): jobs, families and the
critical path read from Snakemake's metadata records, and the figure that shows them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from liverbench.errors import InputError
from liverbench.evaluation.dag_time import main, read_jobs

EXP = "results/x"


def record(metadata: Path, output: str, rule: str, inputs: list[str], start: float,
           end: float, name_max: int = 255) -> None:
    """A record as Snakemake writes it (persistence/file.py: URL-safe base64 of the path,
    split into '@' folders when longer than a file name)."""
    b64 = base64.urlsafe_b64encode(output.encode()).decode()
    pieces = [b64[i: i + name_max - 1] for i in range(0, len(b64), name_max - 1)]
    path = metadata.joinpath(*["@" + p for p in pieces[:-1]], pieces[-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rule": rule, "input": inputs, "starttime": start,
                                "endtime": end, "job_hash": hash((rule, start, end))}))


@pytest.fixture
def metadata(tmp_path: Path) -> Path:
    """Two chains into a report: data (10 s) -> train (100 s) -> predict (5 s) -> report, and
    data -> baseline (30 s) -> report; a test cohort's job; another experiment's job."""
    folder = tmp_path / "metadata"
    record(folder, f"{EXP}/data/a.nii", "standardize", [], 1000, 1010)
    record(folder, f"{EXP}/data/b.nii", "standardize", [], 1000, 1012)
    record(folder, f"{EXP}/models/m.pt", "train", [f"{EXP}/data/a.nii"], 1012, 1112)
    record(folder, f"{EXP}/models/losses.csv", "train", [f"{EXP}/data/a.nii"], 1012, 1112)
    record(folder, f"{EXP}/pred/p.nii.gz", "predict", [f"{EXP}/models/m.pt"], 1112, 1117)
    record(folder, f"{EXP}/pred/q.nii.gz", "baseline", [f"{EXP}/data/b.nii"], 1012, 1042)
    record(folder, f"{EXP}/external/c/pred/p.nii.gz", "external_c_predict",
           [f"{EXP}/models/m.pt"], 1113, 1115)
    record(folder, f"{EXP}/" + "deep/" * 80 + "table.csv", "tables",
           [f"{EXP}/pred/p.nii.gz", f"{EXP}/pred/q.nii.gz"], 1117, 1118, name_max=64)
    record(folder, "results/other/x.csv", "tables", [], 0, 5000)
    return folder


def test_jobs_families_and_critical_path(metadata: Path):
    jobs = read_jobs(EXP, metadata, cohorts={"c"})
    assert len(jobs) == 7  # two outputs of one training job are one job; other experiment out
    assert jobs["start"].min() == 0 and jobs["end"].max() == pytest.approx(118)
    assert set(jobs["family"]) == {"standardize", "train", "predict", "baseline", "tables",
                                   "external: c"}
    chain = jobs[jobs["critical"]].sort_values("start")
    assert list(chain["rule"]) == ["standardize", "train", "predict", "tables"]
    assert chain["seconds"].sum() == pytest.approx(10 + 100 + 5 + 1)


def test_figure_and_csv(metadata: Path, tmp_path: Path):
    figure, csv = tmp_path / "dag.png", tmp_path / "dag.csv"
    assert main(["--experiment", EXP, "--metadata", str(metadata), "--figure", str(figure),
                 "--csv", str(csv)]) == 0
    pixels = imread(figure)[..., :3]
    assert pixels.shape[0] > 200 and np.unique(pixels.reshape(-1, 3), axis=0).shape[0] > 20
    assert "train" in csv.read_text()


def test_no_records_is_a_named_error(tmp_path: Path):
    (tmp_path / "metadata").mkdir()
    with pytest.raises(InputError, match="no record of a job writing under results/x/"):
        read_jobs(EXP, tmp_path / "metadata")
