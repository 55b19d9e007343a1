"""Elastix + CNN phases 2-4 with the real itk-elastix, on small generated volumes.

The volumes are 48³ (4 mm) scenes: a body, a liver and a spleen-like blob. The fixed (nCECT)
scene is the moving (CECT) one under a known rigid offset plus a smooth sinusoidal
deformation, on another grid, with a weaker liver contrast. elastix loads once per test
session (several seconds); each registration runs a few short resolutions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from baselines.elastix_cnn import registration
from baselines.elastix_cnn.__main__ import main
from baselines.elastix_cnn.parameters import for_labels, parameter_maps
from baselines.elastix_cnn.settings import Settings
from liverbench.config import load
from liverbench.data.io import same_geometry
from liverbench.data.preprocess import resample_mask
from liverbench.runtime import RuntimeRecord

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (48, 48, 48)
FAST = {  # a few short resolutions: seconds per registration at 48³
    "rigid": {"schedule": [[2, 2, 2], [1, 1, 1]], "iterations": 60, "samples": 500},
    "bspline": {"schedule": [[2, 2, 2], [1, 1, 0.5]], "iterations": 40, "samples": 500},
    "grid_spacing_mm": 24.0,
    "threads": 1,
}


def scene(liver_hu: float, seed: int, *, offset_vox=(0.0, 0.0, 0.0), liver_offset=(0, 0, 0),
          wave: float = 0.0, spacing=(4.0, 4.0, 4.0), origin=(-96.0, -96.0, -96.0)):
    """CT (HU) and liver mask; the anatomy is sampled at x - offset - wave * sin(...)."""
    z, y, x = np.meshgrid(*[np.arange(s, dtype=float) for s in SHAPE], indexing="ij")
    z = z - offset_vox[0] - wave * np.sin(2 * np.pi * y / SHAPE[1])
    y = y - offset_vox[1] - wave * np.sin(2 * np.pi * x / SHAPE[2])
    x = x - offset_vox[2] - wave * np.sin(2 * np.pi * z / SHAPE[0])

    def ellipsoid(centre, radii):
        return sum(((c - m) / r) ** 2 for c, m, r in zip((z, y, x), centre, radii)) <= 1

    body = ellipsoid((24, 24, 24), (30, 20, 21))
    centre = np.add((24, 22, 17), liver_offset)
    liver = ellipsoid(centre, (9, 8, 9)) & body
    spleen = ellipsoid((24, 24, 34), (6, 5, 4)) & body
    ct = np.full(SHAPE, -1000.0)
    ct[body], ct[spleen], ct[liver] = 40.0, 50.0, liver_hu
    ct += np.random.default_rng(seed).normal(0, 5, SHAPE)
    image = sitk.GetImageFromArray(ct.astype(np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    mask = sitk.GetImageFromArray(liver.astype(np.uint8))
    mask.CopyInformation(image)
    return image, mask


def dice(a: sitk.Image, b: sitk.Image) -> float:
    x, y = sitk.GetArrayViewFromImage(a) > 0, sitk.GetArrayViewFromImage(b) > 0
    return 2 * float((x & y).sum()) / float(x.sum() + y.sum())


def write_pair(tmp: Path, pair: str = "P1__P1", *, fixed_mask_name: str = "ncect_liver",
               moving_mask_shift: int = 0) -> dict[str, Path]:
    """A standardized case and phase-1 outputs (masks, runtime records) for one pair."""
    cect, cect_liver = scene(110.0, 0)
    if moving_mask_shift:  # a phase-1 CECT mask in the wrong place (e.g. on the spleen)
        shifted = np.roll(sitk.GetArrayFromImage(cect_liver), moving_mask_shift, axis=2)
        cect_liver = sitk.GetImageFromArray(shifted)
        cect_liver.CopyInformation(cect)
    ncect, ncect_liver = scene(60.0, 1, offset_vox=(2.0, -1.5, 2.5), wave=1.5,
                               spacing=(4.0, 4.2, 4.4), origin=(-94.0, -98.0, -100.0))
    case = tmp / "cases" / "P1"
    case.mkdir(parents=True)
    paths = {"case": case, "truth": ncect_liver, "moving_liver": cect_liver,
             "cect": case / "cect.nii.gz", "ncect": case / "ncect.nii.gz"}
    sitk.WriteImage(cect, str(paths["cect"]))
    sitk.WriteImage(ncect, str(paths["ncect"]))
    for name in ("cect_liver", "ncect_liver", "cect_rt", "ncect_rt"):
        (tmp / name).mkdir()
    paths.update({name: tmp / name / f"{pair}.nii.gz" for name in ("cect_liver", "ncect_liver")})
    paths.update({name: tmp / name / f"{pair}.json" for name in ("cect_rt", "ncect_rt")})
    sitk.WriteImage(cect_liver, str(paths["cect_liver"]))
    if fixed_mask_name:
        sitk.WriteImage(ncect_liver, str(paths["ncect_liver"]))
    RuntimeRecord("nnunet_cect", pair, 1.5, 2.0).write(paths["cect_rt"])
    RuntimeRecord("nnunet_ncect", pair, 2.5, 3.0).write(paths["ncect_rt"])
    return paths


def run_cli(tmp: Path, paths: dict[str, Path], settings: dict, pair: str = "P1__P1") -> int:
    return main([
        "register", "--settings", json.dumps(settings), "--threads", "1", "--pairs", pair,
        "--cect", str(paths["cect"]), "--ncect", str(paths["ncect"]),
        "--cect-liver", str(paths["cect_liver"]), "--ncect-liver", str(paths["ncect_liver"]),
        "--cect-runtimes", str(paths["cect_rt"]), "--ncect-runtimes", str(paths["ncect_rt"]),
        "--predictions", str(tmp / "pred" / f"{pair}.nii.gz"),
        "--runtimes", str(tmp / "rt" / f"{pair}.json"),
        "--transforms-dir", str(tmp / "transforms"),
    ])


def test_registration_recovers_offset_and_deformation(tmp_path: Path) -> None:
    paths = write_pair(tmp_path)
    assert run_cli(tmp_path, paths, FAST) == 0

    prediction = sitk.ReadImage(str(tmp_path / "pred" / "P1__P1.nii.gz"))
    ncect = sitk.ReadImage(str(paths["case"] / "ncect.nii.gz"))
    assert same_geometry(prediction, ncect)  # the fixed image's grid, not the CECT's
    assert prediction.GetPixelID() == sitk.sitkUInt8
    before = dice(resample_mask(paths["moving_liver"], ncect), paths["truth"])
    after = dice(prediction, paths["truth"])
    assert after > 0.85 and after > before + 0.15, (before, after)

    record = json.loads((tmp_path / "rt" / "P1__P1.json").read_text())
    extra = record["extra"]
    assert extra["seconds_nnunet"] == pytest.approx(1.5 + 2.5)
    assert extra["seconds_elastix"] > 0
    assert record["seconds_method"] == pytest.approx(extra["seconds_nnunet"]
                                                     + extra["seconds_elastix"], abs=1e-3)
    assert record["seconds_total"] >= record["seconds_method"]
    folder = tmp_path / "transforms" / "P1__P1"
    for name in ("parameters.0.txt", "parameters.1.txt", "TransformParameters.1.txt"):
        assert (folder / name).is_file(), name
    assert '"BSplineTransform"' in (folder / "TransformParameters.1.txt").read_text()


def test_masks_restrict_the_metric() -> None:
    """The liver moved inside a static body: with liver masks elastix follows the liver,
    without them the body outline dominates and the liver stays misaligned."""
    moving, moving_liver = scene(110.0, 0)
    fixed, fixed_liver = scene(60.0, 1, liver_offset=(0, 3, 4))
    settings = Settings.from_mapping({**FAST, "bspline": {**FAST["bspline"], "iterations": 10}})
    maps = parameter_maps(settings, fixed.GetSpacing(), moving.GetSpacing())
    registration.configure_threads(1)
    everywhere = sitk.Image(fixed.GetSize(), sitk.sitkUInt8) + 1
    everywhere.CopyInformation(fixed)
    scores = {}
    for name, fixed_mask, moving_mask in (
        ("masked", registration.dilate_mm(fixed_liver, 8.0),
         registration.dilate_mm(moving_liver, 8.0)),
        ("unmasked", everywhere, everywhere),
    ):
        result = registration.register(fixed, moving, fixed_mask, moving_mask, maps, name=name)
        warped = registration.transform_mask(moving_liver, result.transform_maps, fixed)
        scores[name] = dice(warped, fixed_liver)
    assert scores["masked"] > 0.9 and scores["masked"] > scores["unmasked"] + 0.2, scores


def test_elastix_failure_is_an_error_not_an_empty_mask(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    # The CECT mask lies across the body from the nCECT one: no fixed sample maps into it.
    paths = write_pair(tmp_path, moving_mask_shift=22)
    assert run_cli(tmp_path, paths, FAST) == 2
    error = capsys.readouterr().err
    assert error.startswith("python -m baselines.elastix_cnn register: P1__P1: elastix failed")
    assert len(error.strip().splitlines()) == 1, error
    assert not (tmp_path / "pred" / "P1__P1.nii.gz").exists()


def test_missing_fixed_mask_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    paths = write_pair(tmp_path, fixed_mask_name="")
    assert run_cli(tmp_path, paths, FAST) == 2
    error = capsys.readouterr().err
    assert str(paths["ncect_liver"]) in error and "not found" in error
    assert not (tmp_path / "pred" / "P1__P1.nii.gz").exists()


def test_implausible_warped_volume_is_refused() -> None:
    image, mask = scene(110.0, 0)
    shrunk = sitk.BinaryErode(mask, [3, 3, 3])
    with pytest.raises(registration.RegistrationError, match="did not converge"):
        registration.check_warped(shrunk, mask, 0.5, "P1__P1")
    empty = mask * 0
    with pytest.raises(registration.RegistrationError, match="empty"):
        registration.check_warped(empty, mask, 0.5, "P1__P1")
    registration.check_warped(mask, mask, 0.5, "P1__P1")


def test_paper_scale_has_the_published_parameters() -> None:
    config = load(ROOT / "config.yaml", {"scale": "paper"})
    rigid, bspline = parameter_maps(Settings.from_mapping(config["elastix_cnn"]),
                                    (2.0, 2.0, 5.0), (0.8, 0.8, 2.0))
    assert rigid["Transform"] == ["EulerTransform"]
    assert rigid["Metric"] == ["AdvancedMattesMutualInformation"]
    assert rigid["AutomaticTransformInitializationMethod"] == ["CenterOfGravity"]
    assert rigid["ImagePyramidSchedule"] == "32 32 16 16 16 8 4 4 2 2 2 1 1 1 1".split()
    assert bspline["Metric"] == ["AdvancedMattesMutualInformation",
                                 "TransformBendingEnergyPenalty"]
    assert bspline["Metric1Weight"] == ["200"] and bspline["Metric0Weight"] == ["1"]
    assert bspline["FinalGridSpacingInPhysicalUnits"] == ["10"]
    assert bspline["ImageSampler"] == ["RandomCoordinate"]
    assert rigid["ImageSampler"] == ["RandomSparseMask"]
    assert bspline["ASGDParameterEstimationMethod"] == ["DisplacementDistribution"]
    assert "ASGDParameterEstimationMethod" not in rigid  # elastix's default for the rigid stage
    for stage in (rigid, bspline):
        assert stage["NumberOfResolutions"] == ["5"]
        assert stage["MaximumNumberOfIterations"] == ["500"]
        assert stage["NumberOfSpatialSamples"] == ["2048"]
        assert stage["NumberOfHistogramBins"] == ["32"]
    # smoothing factor 0.5 on a 5 mm axis: sigma 0.5 x 0.5 x 5 mm
    assert bspline["FixedImagePyramidSmoothingSchedule"][-1] == "1.25"
    labels = for_labels([bspline])[0]
    assert labels["FinalBSplineInterpolationOrder"] == ["0"]
    assert bspline["FinalBSplineInterpolationOrder"] == ["3"]  # the input is not modified


def test_settings_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="grid_spacing: unknown setting"):
        Settings.from_mapping({"bins": 32, "grid_spacing": 10})
    with pytest.raises(ValueError, match="rigid.schedule: shrink factors must be whole"):
        Settings.from_mapping({"rigid": {"schedule": [[1.5, 1, 1]]}})
    with pytest.raises(ValueError, match="elastix_cnn.bspline.schedule: .*3 positive"):
        Settings.from_mapping({"bspline": {"schedule": [[1, 1]]}}, section="elastix_cnn")


def test_partial_stage_keeps_its_own_default_schedule() -> None:
    settings = Settings.from_mapping({"rigid": {"iterations": 7}, "bspline": {"samples": 9}})
    assert settings.rigid.schedule == Settings().rigid.schedule
    assert settings.bspline.schedule == Settings().bspline.schedule != settings.rigid.schedule
    assert (settings.rigid.iterations, settings.bspline.samples) == (7, 9)
    assert Settings.from_mapping(settings.to_dict()) == settings


def test_per_pair_lists_must_align(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    paths = write_pair(tmp_path)
    argv = ["register", "--pairs", "P1__P1", "P2__P2", "--cect", str(paths["cect"]),
            "--ncect", str(paths["ncect"]), "--cect-liver", str(paths["cect_liver"]),
            "--ncect-liver", str(paths["ncect_liver"]), "--predictions", "a.nii.gz",
            "--runtimes", "a.json", "--transforms-dir", str(tmp_path / "t")]
    assert main(argv) == 2
    assert "--pairs: 2, --cect: 1" in capsys.readouterr().err
