"""The per-method evaluation CLI on tiny synthetic cases."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from liverbench.evaluation.evaluate import COLUMNS, main, split_pair
from liverbench.evaluation.metrics import evaluate

SPACING = (1.5, 1.5, 3.0)


def _image(array, dtype=np.uint8, spacing=SPACING):
    image = sitk.GetImageFromArray(array.astype(dtype))
    image.SetSpacing(spacing)
    image.SetOrigin((-10.0, 5.0, 20.0))
    return image


def liver_mask(shift=0):
    mask = np.zeros((12, 24, 24), dtype=np.uint8)
    mask[3:8, 6 + shift : 18 + shift, 4:16] = 1
    return mask


def make_case(cases: Path, patient: str, with_spect: bool = True) -> None:
    folder = cases / patient
    folder.mkdir(parents=True)
    sitk.WriteImage(_image(np.full((12, 24, 24), 40), np.int16), str(folder / "ncect.nii.gz"))
    sitk.WriteImage(_image(liver_mask()), str(folder / "ncect_liver.nii.gz"))
    if with_spect:
        lungs = np.zeros((12, 24, 24), dtype=np.uint8)
        lungs[9:12, 4:20, 4:20] = 1
        sitk.WriteImage(_image(lungs), str(folder / "ncect_lungs.nii.gz"))
        spect = np.where(liver_mask() > 0, 50.0, 0.0) + np.where(lungs > 0, 2.0, 0.0)
        sitk.WriteImage(_image(spect, np.float32), str(folder / "spect.nii.gz"))


def write_runtime(folder: Path, method: str, pair: str, seconds: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "method": method, "pair": pair, "seconds_method": seconds, "seconds_total": seconds + 1,
        "device": "cpu", "threads": 2, "peak_memory_mb": 100.0, "cpu": "x", "extra": {},
    }
    (folder / f"{pair}.json").write_text(json.dumps(record))


@pytest.fixture()
def layout(tmp_path):
    cases, preds, runtimes = tmp_path / "cases", tmp_path / "pred", tmp_path / "rt"
    for patient in ("p1", "p_2", "p3"):
        make_case(cases, patient, with_spect=patient != "p3")
    preds.mkdir()
    sitk.WriteImage(_image(liver_mask(shift=2)), str(preds / "p1__p1.nii.gz"))
    sitk.WriteImage(_image(np.zeros((12, 24, 24))), str(preds / "p3__p3.nii.gz"))
    for pair, seconds in (("p1__p1", 0.5), ("p3__p3", 0.7)):
        write_runtime(runtimes, "m", pair, seconds)
    return tmp_path


def run_cli(root: Path, pairs, out="metrics/m.csv") -> pd.DataFrame:
    argv = ["--method", "m", "--pairs", *pairs, "--predictions", str(root / "pred"),
            "--runtimes", str(root / "rt"), "--cases", str(root / "cases"),
            "--out", str(root / out)]
    assert main(argv) == 0
    return pd.read_csv(root / out)


def test_rows_statuses_and_metrics(layout):
    frame = run_cli(layout, ["p1__p1", "p_2__p_2", "p3__p3"])
    assert list(frame.columns) == list(COLUMNS)
    assert list(frame["pair"]) == ["p1__p1", "p_2__p_2", "p3__p3"]
    assert list(frame["status"]) == ["ok", "missing", "empty"]
    assert list(frame["fixed"]) == ["p1", "p_2", "p3"]
    ok, missing, empty = (frame.iloc[i] for i in range(3))
    expected = evaluate(liver_mask(shift=2), liver_mask(), tuple(reversed(SPACING)))
    for key, value in expected.items():
        assert ok[key] == pytest.approx(value)
    assert ok["seconds_method"] == 0.5 and ok["device"] == "cpu"
    # LSF: SPECT uniform inside the GT liver; the shifted prediction misses a part of it
    assert ok["lsf_gt"] == pytest.approx(100 * 2 * 768 / (2 * 768 + 50 * 720), rel=0.05)
    assert ok["lsf_pred"] > ok["lsf_gt"]
    assert ok["lsf_abs_error"] == pytest.approx(abs(ok["lsf_pred"] - ok["lsf_gt"]))
    assert all(math.isnan(missing[k]) for k in ("dsc", "msd", "lsf_pred", "seconds_method"))
    assert not math.isnan(missing["lsf_gt"])
    assert empty["dsc"] == 0 and math.isnan(empty["msd"]) and math.isnan(empty["lsf_gt"])


def test_wrong_geometry_names_the_file(layout, capsys):
    bad = _image(liver_mask(), spacing=(1.0, 1.0, 3.0))
    sitk.WriteImage(bad, str(layout / "pred" / "p1__p1.nii.gz"))
    with pytest.raises(SystemExit) as error:
        run_cli(layout, ["p1__p1"])
    assert error.value.code == 2
    assert "p1__p1.nii.gz" in capsys.readouterr().err
    assert not (layout / "metrics" / "m.csv").exists()


def test_bad_pair_ids():
    assert split_pair("a_b__c") == ("a_b", "c")
    for bad in ("ab", "a__b__c", "__b"):
        with pytest.raises(ValueError, match="MOVING__FIXED"):
            split_pair(bad)


def test_module_entry_point(layout):
    out = layout / "m.csv"
    result = subprocess.run(
        [sys.executable, "-m", "liverbench.evaluation.evaluate", "--method", "m",
         "--pairs", "p1__p1", "--predictions", str(layout / "pred"), "--runtimes",
         str(layout / "rt"), "--cases", str(layout / "cases"), "--out", str(out)],
        capture_output=True, text=True, check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr
    assert "1 ok" in result.stdout
    assert len(pd.read_csv(out)) == 1
