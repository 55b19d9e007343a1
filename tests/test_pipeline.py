"""The whole smoke-scale DAG, for real: every configured method is scored, a re-run does
nothing, and predictions are masks in the original nCECT geometry."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml
from conftest import ROOT, SMOKE_CONFIG, run_snakemake

from liverbench.config import load
from liverbench.data.io import read_image, same_geometry
from liverbench.data.splits import parse_pair
from liverbench.layout import image_file
from liverbench.methods import REGISTRATION, registry

SMOKE = load(ROOT / "config.yaml", {"scale": "smoke", "experiment": "smoke"})


def test_every_method_is_scored_on_every_test_pair(smoke_run: Path):
    splits = json.loads((smoke_run / "splits.json").read_text())
    test_pairs = splits["pairs"]["test"]
    assert test_pairs and all(parse_pair(p)[0] == parse_pair(p)[1] for p in test_pairs)
    for method in SMOKE["methods"]:
        metrics = pd.read_csv(smoke_run / "metrics" / f"{method}.csv")
        assert list(metrics["pair"]) == test_pairs, method
        # scanner geometry alone may miss the other scanner's field of view: an empty mask
        allowed = {"ok", "empty"} if method.startswith("identity") else {"ok"}
        assert set(metrics["status"]) <= allowed, method
        assert metrics["dsc"].between(0, 1).all(), method


def test_predictions_are_binary_masks_on_the_original_ncect(smoke_run: Path):
    for method in SMOKE["methods"]:
        for path in sorted((smoke_run / "predictions" / method).glob("*.nii.gz")):
            _, fixed = parse_pair(path.name.removesuffix(".nii.gz"))
            prediction = read_image(path)
            assert prediction.GetPixelID() == sitk.sitkUInt8
            assert set(np.unique(sitk.GetArrayViewFromImage(prediction))) <= {0, 1}
            ncect = read_image(image_file(str(smoke_run / "data" / "h108" / fixed), "ncect"))
            assert same_geometry(prediction, ncect), path


def test_two_scanner_frames_need_the_prealignment(smoke_run: Path):
    """The phantom's problem is real: the two scanners' frames are unrelated, so scanner
    geometry alone misses the liver, and the rigid pre-alignment still leaves it misaligned
    (breathing, deformation) — the registration methods have work to do."""
    identity = pd.read_csv(smoke_run / "metrics" / "identity.csv")
    rigid = pd.read_csv(smoke_run / "metrics" / "rigid.csv")
    assert (rigid["dsc"] > identity["dsc"]).all(), (rigid["dsc"].tolist(), identity["dsc"].tolist())
    assert rigid["dsc"].between(0.4, 0.95).all(), rigid["dsc"].tolist()
    # the true motion is scored: identity's error is the whole motion, rigid's much less
    assert (identity["tre_mean_mm"] > rigid["tre_mean_mm"]).all()


def test_every_registration_method_beats_identity(smoke_run: Path):
    """Each registration row does better than scanner geometry carrying the same CECT liver
    (the annotation, or nnU-Net's segmentation: at smoke scale nnU-Net trains for a few steps,
    and its masks cap every row that carries them near 0.3 DSC)."""
    methods = registry(SMOKE)
    identity = {"annotation": "identity", "nnunet": "identity_cnnmask"}
    registrations = [m for m in SMOKE["methods"] if methods[m].family == REGISTRATION]
    assert "regsegnet" in registrations and "elastix_cnn" in registrations
    for method in registrations:
        baseline = identity[methods[method].cect_mask]
        dsc, floor = (pd.read_csv(smoke_run / "metrics" / f"{m}.csv")["dsc"].mean()
                      for m in (method, baseline))
        assert dsc > floor, (method, dsc, baseline, floor)


def test_every_method_is_timed_in_one_scope_with_its_stages(smoke_run: Path):
    """Each record's stages add up to its case time; the methods that use the pair step count
    it; the tables print the speed ratio on both scopes."""
    for method in SMOKE["methods"]:
        metrics = pd.read_csv(smoke_run / "metrics" / f"{method}.csv")
        for _, row in metrics.iterrows():
            stages = json.loads(row["stages"])
            assert row["seconds_case"] == pytest.approx(sum(stages.values()), abs=2e-3), method
            assert 0 <= row["seconds_core"] <= row["seconds_case"], method
        if method in ("rigid", "regsegnet", "elastix_cnn"):
            assert "pair.prealign" in stages, method
    elastix = json.loads(pd.read_csv(smoke_run / "metrics" / "elastix_cnn.csv")["stages"][0])
    assert {"nnunet_cect.network", "nnunet_ncect.network", "registration"} <= set(elastix)
    ratio = pd.read_csv(smoke_run / "speed_ratio.csv").set_index("fast")
    assert ratio.loc["regsegnet", "ratio_case"] > 0 and ratio.loc["regsegnet", "ratio_core"] > 0
    assert "Case by stage" in (smoke_run / "table_runtime.md").read_text()


def test_rerun_has_nothing_to_do(smoke_run: Path):
    workdir = smoke_run.parent.parent
    result = run_snakemake(workdir, *SMOKE_CONFIG, "-n")
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


def test_splits_follow_the_config(smoke_run: Path):
    splits = json.loads((smoke_run / "splits.json").read_text())
    n = SMOKE["cohort"]["patients"]
    assert sum(len(splits[s]) for s in ("train", "val", "test")) == n
    assert yaml.safe_load((ROOT / "config.yaml").read_text())["scale"] == "demo"


def test_external_cohort_is_scored_with_the_trained_models(smoke_run: Path):
    """The derived test cohort (conftest.SMOKE_CONFIG): all test, intra-patient pairs, every
    method scored with the models trained on the main cohort, Table 1 in every format."""
    external = smoke_run / "external" / "derived"
    splits = json.loads((external / "splits.json").read_text())
    patients = ["liver_0", "liver_1"]
    assert splits["test"] == patients and not splits["train"] and not splits["val"]
    pairs = [f"{p}__{p}" for p in patients]
    assert splits["pairs"]["test"] == pairs
    assert not (external / "models").exists(), "an external cohort must not train"
    for name in ("csv", "md", "tex", "html"):
        assert (external / f"table1.{name}").stat().st_size > 200, name
    labels = SMOKE["evaluation"]["method_labels"]
    table1 = (external / "table1.md").read_text()
    dsc = {}
    for method in SMOKE["methods"]:
        metrics = pd.read_csv(external / "metrics" / f"{method}.csv")
        assert list(metrics["pair"]) == pairs, method
        assert metrics["dsc"].between(0, 1).all(), method
        assert labels[method] in table1, method
        dsc[method] = metrics["dsc"].mean()
    # the derived nCECT is in another scanner's frame: the pre-alignment must find it
    assert dsc["rigid"] > dsc["identity"] + 0.2, dsc
    # the derived cohort has a true motion and a SPECT: registration error and LSF columns
    regsegnet = pd.read_csv(external / "metrics" / "regsegnet.csv")
    assert regsegnet["tre_mean_mm"].notna().all()
    assert regsegnet["lsf_abs_error"].notna().all()
    for pair in pairs:
        assert (external / "figures" / "overlays" / f"{pair}.png").stat().st_size > 1000


def test_a_minimal_manifest_cohort_has_no_lsf_or_registration_error(smoke_run: Path):
    """A test cohort listed with only cect, cect_liver, ncect, ncect_liver: scored by every
    method, with no lung-shunt or true-motion columns filled (it has neither)."""
    external = smoke_run / "external" / "minimal"
    assert json.loads((external / "splits.json").read_text())["pairs"]["test"] == ["M001__M001"]
    for method in SMOKE["methods"]:
        metrics = pd.read_csv(external / "metrics" / f"{method}.csv")
        assert list(metrics["pair"]) == ["M001__M001"], method
        assert metrics["dsc"].between(0, 1).all(), method
        for column in ("lsf_abs_error", "tre_mean_mm"):
            assert column not in metrics or metrics[column].isna().all(), (method, column)
    assert (external / "table1.md").stat().st_size > 200
    assert not Path(image_file(str(external / "data" / "h108" / "M001"), "spect")).exists()
