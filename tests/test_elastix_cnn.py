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

from baselines.elastix_cnn import mapping, registration
from baselines.elastix_cnn.__main__ import main
from baselines.elastix_cnn.parameters import for_labels, parameter_maps
from baselines.elastix_cnn.settings import Settings
from liverbench.config import load
from liverbench.data.io import same_geometry
from liverbench.data.preprocess import resample_mask
from liverbench.errors import InputError
from liverbench.runtime import RuntimeRecord, Stages

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (48, 48, 48)
FAST = {  # a few short resolutions: seconds per registration at 48³
    "rigid": {"schedule": [[2, 2, 2], [1, 1, 1]], "iterations": 60, "samples": 500},
    "bspline": {"schedule": [[2, 2, 2], [1, 1, 0.5]], "iterations": 40, "samples": 500},
    "grid_spacing_mm": 24.0,
    "threads": 1,
}


def scene(liver_hu: float, seed: int, *, offset_vox=(0.0, 0.0, 0.0), liver_offset=(0, 0, 0),
          wave: float = 0.0, spacing=(4.0, 4.0, 4.0), origin=(-96.0, -96.0, -96.0),
          through: sitk.Transform | None = None):
    """CT (HU) and liver mask; the anatomy is sampled at x - offset - wave * sin(...), x in
    voxels of this grid, or with `through` (this grid's world -> the default grid's world) at
    the default grid's voxel of each mapped point: the same body seen from another frame."""
    image = sitk.Image(SHAPE[::-1], sitk.sitkInt16)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    z, y, x = np.meshgrid(*[np.arange(s, dtype=float) for s in SHAPE], indexing="ij")
    if through is not None:
        mapped = sitk.GetArrayFromImage(sitk.TransformToDisplacementField(
            through, sitk.sitkVectorFloat64, SHAPE[::-1], origin, spacing))
        mapped += np.stack([o + step * i for o, step, i in zip(origin, spacing, (x, y, z))], -1)
        x, y, z = np.moveaxis((mapped + 96.0) / 4.0, -1, 0)  # the default grid's voxels
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
    result = sitk.GetImageFromArray(ct.astype(np.int16))
    result.CopyInformation(image)
    mask = sitk.GetImageFromArray(liver.astype(np.uint8))
    mask.CopyInformation(image)
    return result, mask


def dice(a: sitk.Image, b: sitk.Image) -> float:
    x, y = sitk.GetArrayViewFromImage(a) > 0, sitk.GetArrayViewFromImage(b) > 0
    return 2 * float((x & y).sum()) / float(x.sum() + y.sum())


def write_pair(tmp: Path, pair: str = "P1__P1", *, fixed_mask_name: str = "ncect_liver",
               moving_mask_shift: int = 0, ncect_scene=None) -> dict[str, Path]:
    """A standardized case and phase-1 outputs (masks, runtime records) for one pair; the
    nCECT scene (image, liver) may be given."""
    cect, cect_liver = scene(110.0, 0)
    if moving_mask_shift:  # a phase-1 CECT mask in the wrong place (e.g. on the spleen)
        shifted = np.roll(sitk.GetArrayFromImage(cect_liver), moving_mask_shift, axis=2)
        cect_liver = sitk.GetImageFromArray(shifted)
        cect_liver.CopyInformation(cect)
    ncect, ncect_liver = ncect_scene or scene(60.0, 1, offset_vox=(2.0, -1.5, 2.5), wave=1.5,
                                              spacing=(4.0, 4.2, 4.4),
                                              origin=(-94.0, -98.0, -100.0))
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
    for name, network in (("cect", 1.5), ("ncect", 2.5)):
        RuntimeRecord.from_stages(f"nnunet_{name}", pair, Stages({"read": 0.5,
                                                                   "network": network}),
                                  ["network"]).write(paths[f"{name}_rt"])
    return paths


def run_cli(tmp: Path, paths: dict[str, Path], settings: dict, pair: str = "P1__P1",
            prealign: Path | None = None) -> int:
    """The register command on one pair, outputs under `tmp` (pred/, rt/, map/, transforms/)."""
    return main([
        "register", "--settings", json.dumps(settings), "--threads", "1", "--pairs", pair,
        "--cect", str(paths["cect"]), "--ncect", str(paths["ncect"]),
        "--cect-liver", str(paths["cect_liver"]), "--ncect-liver", str(paths["ncect_liver"]),
        "--cect-runtimes", str(paths["cect_rt"]), "--ncect-runtimes", str(paths["ncect_rt"]),
        *(["--prealign", str(prealign)] if prealign else []),
        "--predictions", str(tmp / "pred" / f"{pair}.nii.gz"),
        "--mappings", str(tmp / "map" / f"{pair}.h5"),
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
    extra, stages = record["extra"], record["stages"]
    # one scope: phase 1's segmentations are part of the case; the core is elastix and the
    # two nnU-Net forward passes
    assert stages["nnunet_cect.network"] == 1.5 and stages["nnunet_ncect.read"] == 0.5
    assert stages["registration"] > 0 and stages["transformix"] > 0
    assert record["seconds_core"] == pytest.approx(1.5 + 2.5 + stages["registration"],
                                                   abs=1e-3)
    assert record["seconds_case"] == pytest.approx(sum(stages.values()), abs=1e-3)
    folder = tmp_path / "transforms" / "P1__P1"
    for name in ("parameters.0.txt", "parameters.1.txt", "TransformParameters.1.txt"):
        assert (folder / name).is_file(), name
    assert '"BSplineTransform"' in (folder / "TransformParameters.1.txt").read_text()
    assert not extra["prealigned"] and extra["seconds_mapping"] > 0
    assert isinstance(sitk.ReadTransform(str(tmp_path / "map" / "P1__P1.h5")), sitk.Transform)


# The nCECT scanner's frame: the body centre at FRAME_CENTRE, turned 70° about z against the
# CECT's (no centre-of-gravity step recovers that), the field of view off-centre.
FRAME_CENTRE = np.array((30.0, -40.0, 250.0))
TRUE_FRAME = sitk.Euler3DTransform(tuple(FRAME_CENTRE), 0.0, 0.0, np.radians(70.0),
                                   tuple(-FRAME_CENTRE))  # nCECT world -> CECT world


def liver_points(mask: sitk.Image, step: int = 5) -> list[tuple[float, ...]]:
    return [mask.TransformIndexToPhysicalPoint([int(i) for i in index[::-1]])
            for index in np.argwhere(sitk.GetArrayViewFromImage(mask))[::step]]


def mean_error_mm(transform: sitk.Transform, truth: sitk.Transform, points) -> float:
    return float(np.mean([np.linalg.norm(np.subtract(transform.TransformPoint(p),
                                                     truth.TransformPoint(p))) for p in points]))


def test_prealignment_is_honoured_and_the_mapping_carries_the_liver(tmp_path: Path) -> None:
    ncect_scene = scene(60.0, 1, origin=tuple(FRAME_CENTRE - 96 + (8, -12, 20)),
                        through=TRUE_FRAME)
    paths = write_pair(tmp_path, ncect_scene=ncect_scene)
    # An approximate pre-alignment (3°, 5 mm off): the Euler stage has work left.
    error = sitk.Euler3DTransform(tuple(FRAME_CENTRE), *np.radians([2.0, -2.0, 3.0]),
                                  (3.0, -4.0, 2.0))
    prealign = tmp_path / "prealign.tfm"
    sitk.WriteTransform(sitk.CompositeTransform([TRUE_FRAME, error]), str(prealign))

    assert run_cli(tmp_path / "alone", paths, FAST) == 0
    assert run_cli(tmp_path / "prealigned", paths, FAST, prealign=prealign) == 0
    scores = {name: dice(sitk.ReadImage(str(tmp_path / name / "pred" / "P1__P1.nii.gz")),
                         paths["truth"]) for name in ("alone", "prealigned")}
    assert scores["alone"] < 0.6 and scores["prealigned"] > 0.9, scores

    out = tmp_path / "prealigned"
    transforms = out / "transforms" / "P1__P1"
    assert '"AffineTransform"' in (transforms / "TransformParameters.0.txt").read_text()
    extra = json.loads((out / "rt" / "P1__P1.json").read_text())["extra"]
    assert extra["prealigned"] and len(extra["liver_centroid_shift_mm"]) == 3
    # The mapping (nCECT world -> CECT world) carries the CECT liver onto the nCECT as
    # transformix does, and lies closer to the true frame change than the pre-alignment.
    final = sitk.ReadTransform(str(out / "map" / "P1__P1.h5"))
    ncect = sitk.ReadImage(str(paths["ncect"]))
    through_mapping = resample_mask(paths["moving_liver"], ncect, final)
    prediction = sitk.ReadImage(str(out / "pred" / "P1__P1.nii.gz"))
    assert dice(through_mapping, prediction) > 0.95
    points = liver_points(paths["truth"])
    start = mean_error_mm(sitk.ReadTransform(str(prealign)), TRUE_FRAME, points)
    assert mean_error_mm(final, TRUE_FRAME, points) < min(2.0, start / 2), start


def test_liver_centroids_start_the_euler_stage() -> None:
    """After an exact body pre-alignment the liver is still 32 mm off (breathing). With stages
    too short to move far (5 iterations), the result shows where elastix started: at the
    pre-alignment, or centred on the phase-1 livers' centroids."""
    moving, moving_liver = scene(110.0, 0)
    fixed, fixed_liver = scene(60.0, 1, origin=tuple(FRAME_CENTRE - 96), through=TRUE_FRAME,
                               liver_offset=(8, 0, 0))
    short = {stage: {**FAST[stage], "iterations": 5} for stage in ("rigid", "bspline")}
    maps = parameter_maps(Settings.from_mapping({**FAST, **short}), fixed.GetSpacing(),
                          moving.GetSpacing(), prealigned=True)
    registration.configure_threads(1)
    scores = {}
    for centre in (False, True):
        initial, shift = mapping.elastix_start(TRUE_FRAME, fixed, fixed_liver, moving_liver,
                                               centre)
        assert (shift is None) != centre
        result = registration.register(fixed, moving, registration.dilate_mm(fixed_liver, 10.0),
                                       registration.dilate_mm(moving_liver, 10.0), maps,
                                       initial=initial)
        warped = registration.transform_mask(moving_liver, result.transform_maps, fixed)
        scores[centre] = dice(warped, fixed_liver)
    assert np.allclose(shift, (0.0, 0.0, -32.0), atol=0.5), shift
    assert scores[True] > 0.9 and scores[False] < 0.6, scores


def test_initial_map_and_field_are_the_itk_transforms() -> None:
    """Without registration, transformix's field of the initial map is the pre-alignment's
    displacement p -> T(p) - p on a rotated grid (elastix's column-major Direction, its
    affine parameter order), and the wrapped field maps points as T does."""
    registration.configure_threads(1)
    fixed, _ = scene(60.0, 1)
    fixed.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    euler = sitk.Euler3DTransform((5.0, -3.0, 10.0), 0.1, -0.2, 0.3, (20.0, -30.0, 250.0))
    grid = mapping.Grid.of(fixed).coarse(6.0)
    assert grid.spacing == (6.0, 6.0, 6.0) and grid.size == (33, 33, 33)  # covers 188 mm
    field = registration.deformation_field([mapping.initial_map(euler, fixed)], fixed, grid)
    expected = sitk.TransformToDisplacementField(euler, sitk.sitkVectorFloat64, grid.size,
                                                 grid.origin, grid.spacing, grid.direction)
    assert np.abs(field - sitk.GetArrayFromImage(expected)).max() < 1e-3
    wrapped = mapping.field_transform(field, grid)
    for point in liver_points(fixed > 0, step=20000):
        assert np.allclose(wrapped.TransformPoint(point), euler.TransformPoint(point), atol=1e-3)


def test_prealign_must_be_a_linear_transform_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="pre-alignment transform not found"):
        mapping.read_prealign(tmp_path / "absent.tfm")
    field = sitk.Image([4, 4, 4], sitk.sitkVectorFloat64, 3) + 0.0
    field[1, 1, 1] = (5.0, 0.0, 0.0)
    deformable = tmp_path / "deformable.h5"
    sitk.WriteTransform(sitk.DisplacementFieldTransform(field), str(deformable))
    with pytest.raises(InputError, match="linear"):
        mapping.read_prealign(deformable)
    identity = tmp_path / "identity.tfm"
    sitk.WriteTransform(sitk.Transform(3, sitk.sitkIdentity), str(identity))
    matrix, offset = mapping.affine_parts(mapping.read_prealign(identity))
    assert np.array_equal(matrix, np.eye(3)) and not offset.any()
    euler = tmp_path / "euler.tfm"  # what the pair rule writes
    sitk.WriteTransform(TRUE_FRAME, str(euler))
    matrix, offset = mapping.affine_parts(mapping.read_prealign(euler))
    point = np.array((12.0, -30.0, 270.0))
    assert np.allclose(matrix @ point + offset, TRUE_FRAME.TransformPoint(tuple(point)))


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


def test_elastix_failure_is_a_recorded_failure_not_a_crash(tmp_path: Path) -> None:
    # The CECT mask lies across the body from the nCECT one: no fixed sample maps into it.
    paths = write_pair(tmp_path, moving_mask_shift=22)
    assert run_cli(tmp_path, paths, FAST) == 0  # the other pairs, and the table, go on
    record = json.loads((tmp_path / "rt" / "P1__P1.json").read_text())
    assert record["status"] == "failed" and record["seconds_core"] is None
    assert record["reason"].startswith("P1__P1: elastix failed")
    prediction = sitk.ReadImage(str(tmp_path / "pred" / "P1__P1.nii.gz"))
    assert not sitk.GetArrayViewFromImage(prediction).any()  # scored as empty: DSC 0
    assert prediction.GetSize() == sitk.ReadImage(str(paths["ncect"])).GetSize()
    assert (tmp_path / "map" / "P1__P1.h5").exists()


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
    prealigned = parameter_maps(Settings(), (2.0, 2.0, 5.0), (0.8, 0.8, 2.0), prealigned=True)[0]
    assert prealigned["AutomaticTransformInitialization"] == ["false"]
    assert "AutomaticTransformInitializationMethod" not in prealigned
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
            "--mappings", "a.h5", "--runtimes", "a.json", "--transforms-dir", str(tmp_path / "t")]
    assert main(argv) == 2
    assert "--pairs: 2, --cect: 1" in capsys.readouterr().err
    assert main([*argv[:1], "--pairs", "P1__P1", *argv[4:], "--cect-runtimes", "a.json"]) == 2
    assert "give both phase-1 lists, or neither" in capsys.readouterr().err
