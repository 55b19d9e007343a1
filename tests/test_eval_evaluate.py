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

from liverbench.evaluation.evaluate import COLUMNS, main
from liverbench.evaluation.metrics import evaluate
from liverbench.evaluation.registration_error import TRUTH_COLUMNS
from liverbench.runtime import record_failure

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


def make_case(cases: Path, patient: str) -> None:
    folder = cases / patient
    folder.mkdir(parents=True)
    sitk.WriteImage(_image(np.full((12, 24, 24), 40), np.int16), str(folder / "ncect.nii.gz"))
    sitk.WriteImage(_image(liver_mask()), str(folder / "ncect_liver.nii.gz"))
    lungs = np.zeros((12, 24, 24), dtype=np.uint8)
    lungs[9:12, 4:20, 4:20] = 1
    sitk.WriteImage(_image(lungs), str(folder / "ncect_lungs.nii.gz"))
    spect = np.where(liver_mask() > 0, 50.0, 0.0) + np.where(lungs > 0, 2.0, 0.0)
    sitk.WriteImage(_image(spect, np.float32), str(folder / "spect.nii.gz"))


def write_runtime(folder: Path, method: str, pair: str, seconds: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "method": method, "pair": pair, "seconds_core": seconds, "seconds_case": seconds + 1,
        "stages": {"read": 1.0, "network": seconds}, "core_stages": ["network"],
        "device": "cpu", "threads": 2, "peak_memory_mb": 100.0, "cpu": "x", "extra": {},
    }
    (folder / f"{pair}.json").write_text(json.dumps(record))


@pytest.fixture()
def layout(tmp_path):
    cases, preds, runtimes = tmp_path / "cases", tmp_path / "pred", tmp_path / "rt"
    for patient in ("p1", "p_2", "p3"):
        make_case(cases, patient)
    preds.mkdir()
    sitk.WriteImage(_image(liver_mask(shift=2)), str(preds / "p1__p1.nii.gz"))
    sitk.WriteImage(_image(np.zeros((12, 24, 24))), str(preds / "p3__p3.nii.gz"))
    for pair, seconds in (("p1__p1", 0.5), ("p3__p3", 0.7)):
        write_runtime(runtimes, "m", pair, seconds)
    return tmp_path


def arguments(root: Path, pairs, lsf: bool = True, out="metrics/m.csv") -> list[str]:
    """The command line the workflow builds: aligned per-pair file lists."""
    fixed = [pair.split("__")[1] for pair in pairs]
    argv = ["--method", "m", "--pairs", *pairs,
            "--predictions", *(str(root / "pred" / f"{pair}.nii.gz") for pair in pairs),
            "--runtimes", *(str(root / "rt" / f"{pair}.json") for pair in pairs),
            "--references", *(str(root / "cases" / f / "ncect_liver.nii.gz") for f in fixed),
            "--out", str(root / out)]
    if lsf:
        argv += ["--spect", *(str(root / "cases" / f / "spect.nii.gz") for f in fixed),
                 "--lungs", *(str(root / "cases" / f / "ncect_lungs.nii.gz") for f in fixed)]
    return argv


def run_cli(root: Path, pairs, lsf: bool = True, out="metrics/m.csv") -> pd.DataFrame:
    assert main(arguments(root, pairs, lsf, out)) == 0
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
    assert ok["seconds_core"] == 0.5 and ok["device"] == "cpu"
    assert json.loads(ok["stages"]) == {"read": 1.0, "network": 0.5}  # adding up to the case
    # LSF: SPECT uniform inside the GT liver; the shifted prediction misses a part of it
    assert ok["lsf_gt"] == pytest.approx(100 * 2 * 768 / (2 * 768 + 50 * 720), rel=0.05)
    assert ok["lsf_pred"] > ok["lsf_gt"]
    assert ok["lsf_abs_error"] == pytest.approx(abs(ok["lsf_pred"] - ok["lsf_gt"]))
    assert all(math.isnan(missing[k]) for k in ("dsc", "msd", "lsf_pred", "seconds_core"))
    assert not math.isnan(missing["lsf_gt"])
    assert empty["dsc"] == 0 and math.isnan(empty["msd"]) and math.isnan(empty["lsf_pred"])
    assert empty["lsf_gt"] == pytest.approx(ok["lsf_gt"])


def test_a_recorded_failure_is_scored_as_failed_with_its_reason(layout):
    """`record_failure` leaves an empty mask and a runtime record: the row is `failed`, DSC 0,
    the reason kept, no runtime (a failure has none to compare)."""
    reference = sitk.ReadImage(str(layout / "cases" / "p_2" / "ncect.nii.gz"))
    record_failure("m", "p_2__p_2", "elastix did not\nconverge", reference,
                   layout / "pred" / "p_2__p_2.nii.gz", layout / "rt" / "p_2__p_2.json",
                   seconds_case=3.0)
    frame = run_cli(layout, ["p1__p1", "p_2__p_2"])
    failed = frame.iloc[1]
    assert failed["status"] == "failed" and failed["reason"] == "elastix did not converge"
    assert failed["dsc"] == 0 and failed["fnr"] == 1 and math.isnan(failed["msd"])
    # a failure has no comparable runtime: its 3 s to give up stay in the record only
    assert math.isnan(failed["seconds_core"]) and math.isnan(failed["seconds_case"])
    assert pd.isna(frame.iloc[0]["reason"])  # an ok row has no reason


def test_without_spect_no_lsf(layout):
    frame = run_cli(layout, ["p1__p1", "p3__p3"], lsf=False)
    assert list(frame["status"]) == ["ok", "empty"]
    assert frame[["lsf_gt", "lsf_pred", "lsf_abs_error"]].isna().all().all()


def test_wrong_geometry_names_the_file(layout, capsys):
    bad = _image(liver_mask(), spacing=(1.0, 1.0, 3.0))
    sitk.WriteImage(bad, str(layout / "pred" / "p1__p1.nii.gz"))
    assert main(arguments(layout, ["p1__p1"])) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m liverbench.evaluation.evaluate: ")
    assert "p1__p1.nii.gz" in err and len(err.strip().splitlines()) == 1
    assert not (layout / "metrics" / "m.csv").exists()


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"method": "m", "pair": "p1__p1"}', "lacks seconds_core"),
    (None, "unknown status 'crashed'"),
])
def test_bad_runtime_record_names_the_file(layout, capsys, text, message):
    record = layout / "rt" / "p1__p1.json"
    if text is None:  # a valid record with a status no method writes
        text = json.dumps({**json.loads(record.read_text()), "status": "crashed"})
    record.write_text(text)
    assert main(arguments(layout, ["p1__p1"])) == 2
    err = capsys.readouterr().err
    assert str(record) in err and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("change, message", [
    (lambda argv: argv[:argv.index("--runtimes") - 1] + argv[argv.index("--runtimes"):],
     "differ in length"),
    (lambda argv: argv[:argv.index("--lungs")], "--spect and --lungs"),
    (lambda argv: [a.replace("p1__p1", "p1_p1") if a == "p1__p1" else a for a in argv],
     "MOVING__FIXED"),
])
def test_bad_command_lines_exit_2(layout, capsys, change, message):
    assert main(change(arguments(layout, ["p1__p1", "p3__p3"]))) == 2
    assert message in capsys.readouterr().err


def test_duplicate_pairs_exit_2(layout, capsys):
    assert main(arguments(layout, ["p1__p1", "p1__p1"])) == 2
    assert "duplicate pair ids" in capsys.readouterr().err


def test_module_entry_point(layout):
    out = layout / "m.csv"
    result = subprocess.run(
        [sys.executable, "-m", "liverbench.evaluation.evaluate",
         *arguments(layout, ["p1__p1"], out=str(out))],
        capture_output=True, text=True, check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr
    assert "1 ok" in result.stdout
    assert len(pd.read_csv(out)) == 1


def test_package_entry_point(layout, capsys):
    """`python -m liverbench.evaluation evaluate ...` is the same command."""
    from liverbench.evaluation.__main__ import main as package_main

    assert package_main(["evaluate", *arguments(layout, ["p1__p1"], out="m2.csv")]) == 0
    assert len(pd.read_csv(layout / "m2.csv")) == 1
    argv = ["evaluate", *arguments(layout, ["p1__p1"])]
    argv[argv.index("--references") + 1] = str(layout / "absent.nii.gz")
    assert package_main(argv) == 2
    assert capsys.readouterr().err.startswith("python -m liverbench.evaluation evaluate: ")


def write_truth(cases: Path, patient: str, shift_mm=(0.0, 0.0, 12.0)) -> Path:
    """A constant true motion over the nCECT field of view, float32 as the phantom writes it."""
    field = sitk.TransformToDisplacementField(
        sitk.TranslationTransform(3, shift_mm), sitk.sitkVectorFloat64, (12, 14, 8),
        (-20.0, -5.0, 10.0), (4.0, 4.0, 6.0))
    path = cases / patient / "true_motion.nii.gz"
    sitk.WriteImage(sitk.Cast(field, sitk.sitkVectorFloat32), str(path))
    return path


def test_registration_error_columns(layout):
    """--truths adds the registration-error columns; --mappings the TRE, per pair."""
    pairs = ["p1__p1", "p_2__p_2", "p3__p3"]
    truths = [write_truth(layout / "cases", pair.split("__")[1]) for pair in pairs]
    mappings = layout / "mappings"
    mappings.mkdir()
    sitk.WriteTransform(sitk.Transform(3, sitk.sitkIdentity), str(mappings / "p1__p1.h5"))
    sitk.WriteTransform(sitk.TranslationTransform(3, (0.0, 0.0, 12.0)),
                        str(mappings / "p_2__p_2.h5"))  # the true motion, prediction missing
    # p3__p3 has no mapping file: its TRE is NaN
    argv = arguments(layout, pairs) + ["--truths", *map(str, truths), "--mappings",
                                       *(str(mappings / f"{pair}.h5") for pair in pairs)]
    assert main(argv) == 0
    frame = pd.read_csv(layout / "metrics" / "m.csv")
    assert list(frame.columns) == list(COLUMNS) + list(TRUTH_COLUMNS)
    ok, missing, empty = (frame.iloc[i] for i in range(3))
    assert ok["tre_mean_mm"] == pytest.approx(12.0, abs=1e-4)  # identity against 12 mm
    assert ok["tre_p95_mm"] == pytest.approx(12.0, abs=1e-4)
    assert missing["tre_mean_mm"] == pytest.approx(0.0, abs=1e-4)
    assert math.isnan(empty["tre_mean_mm"])
    # the prediction is the GT liver moved by 2 voxels along y (1.5 mm spacing): 3 mm
    assert ok["centroid_error_mm"] == pytest.approx(3.0)
    assert ok["pred_centroid_z_mm"] == pytest.approx(ok["gt_centroid_z_mm"])
    assert math.isnan(missing["centroid_error_mm"]) and math.isnan(empty["centroid_error_mm"])
    assert frame["gt_centroid_z_mm"].notna().all()


def test_without_truth_the_columns_are_absent(layout, capsys):
    frame = run_cli(layout, ["p1__p1"], lsf=False)
    assert not set(TRUTH_COLUMNS) & set(frame.columns)
    argv = arguments(layout, ["p1__p1"]) + ["--mappings", str(layout / "x.h5")]
    assert main(argv) == 2
    assert "--mappings: needs --truths" in capsys.readouterr().err


def test_inter_patient_pair_has_no_tre(layout):
    truth = write_truth(layout / "cases", "p1")
    sitk.WriteImage(_image(liver_mask()), str(layout / "pred" / "p3__p1.nii.gz"))
    mapping = layout / "p3__p1.h5"
    sitk.WriteTransform(sitk.Transform(3, sitk.sitkIdentity), str(mapping))
    frame = run_cli(layout, ["p3__p1"], lsf=False, out="inter.csv")  # no truths: no columns
    assert "tre_mean_mm" not in frame.columns
    argv = arguments(layout, ["p3__p1"], lsf=False, out="inter.csv")
    assert main(argv + ["--truths", str(truth), "--mappings", str(mapping)]) == 0
    row = pd.read_csv(layout / "inter.csv").iloc[0]
    assert math.isnan(row["tre_mean_mm"]) and row["centroid_error_mm"] == pytest.approx(0.0)


def test_missing_truth_exits_2(layout, capsys):
    argv = arguments(layout, ["p1__p1"]) + ["--truths", str(layout / "absent.nii.gz")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "p1__p1: " in err and "absent.nii.gz: file not found" in err
    assert len(err.strip().splitlines()) == 1
