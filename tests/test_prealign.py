"""The shared pre-alignment, the pair step that uses it, the rigid baseline and the mapping
contract (nCECT world -> CECT world; a method's own transform composed after it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import tiny_ct

from baselines.identity.__main__ import main as identity_main
from baselines.rigid.__main__ import main as rigid_main
from liverbench.data.__main__ import main as data_main
from liverbench.data.io import read_transform, write_transform
from liverbench.data.prealign import (
    PrealignError,
    Settings,
    compose,
    lung_base_z,
    prealign,
)
from liverbench.data.preprocess import resample_mask
from liverbench.layout import image_file
from liverbench.runtime import read_stages
from liverbench.settings import SettingsError

WORKING_VOXEL_MM = 8.0  # the tiny pairs' working grid spacing (PREPROCESS below)
PREPROCESS = json.dumps({"shape": [24, 32, 32], "spacing": [8.0, 8.0, 8.0],
                         "window": [-160, 240]})


def _inside(points: np.ndarray, centre, radii) -> np.ndarray:
    """Points (N, 3) inside an axis-aligned ellipsoid (None radius: unbounded along that axis)."""
    total = np.zeros(len(points))
    for axis, (c, r) in enumerate(zip(centre, radii)):
        if r is not None:
            total += ((points[:, axis] - c) / r) ** 2
    return total <= 1.0


def render(size, spacing, origin, to_patient: sitk.Euler3DTransform, liver_hu: float,
           seed: int):
    """A CT of one analytic patient on a grid (x, y, z): each voxel's world point is carried by
    `to_patient` into the patient frame. The body runs through every slice, as in a real scan,
    so only the lungs, liver, kidneys and spine tell where along z a field of view lies."""
    grid = sitk.Image([int(s) for s in size], sitk.sitkInt16)
    grid.SetSpacing(spacing)
    grid.SetOrigin(origin)
    index = np.stack(np.meshgrid(*[np.arange(s) for s in size], indexing="ij"), -1).reshape(-1, 3)
    world = np.array(origin) + index * np.array(spacing)
    patient = _apply(to_patient, world)
    hu = np.full(len(patient), -1000.0)
    hu[_inside(patient, (0, 0, 0), (130, 95, None))] = 40.0
    for side in (-1, 1):
        hu[_inside(patient, (side * 55, -5, 130), (45, 55, 85))] = -850.0  # lungs
        hu[_inside(patient, (side * 60, 45, -60), (22, 25, 40))] = 180.0  # kidneys
    liver = _inside(patient, (-45, 0, 40), (65, 55, 55))
    hu[liver] = liver_hu
    hu[_inside(patient, (0, 60, 0), (14, 14, None))] = 600.0  # spine
    hu += np.random.default_rng(seed).normal(0, 15, len(hu))
    image = sitk.GetImageFromArray(_to_zyx(hu, size).astype(np.int16))
    image.CopyInformation(grid)
    mask = sitk.GetImageFromArray(_to_zyx(liver, size).astype(np.uint8))
    mask.CopyInformation(grid)
    return image, mask


def _apply(transform: sitk.Euler3DTransform, points: np.ndarray) -> np.ndarray:
    """A rigid transform of points (N, 3), vectorised."""
    matrix = np.array(transform.GetMatrix()).reshape(3, 3)
    centre = np.array(transform.GetCenter())
    return (points - centre) @ matrix.T + centre + np.array(transform.GetTranslation())


def _to_zyx(values: np.ndarray, size) -> np.ndarray:
    """Values in (x, y, z) 'ij' meshgrid order -> a (z, y, x) array."""
    return values.reshape(tuple(size)).transpose(2, 1, 0)


def _motion(rotation_deg, translation, centre=(0.0, 0.0, 0.0)) -> sitk.Euler3DTransform:
    transform = sitk.Euler3DTransform()
    transform.SetCenter(centre)
    transform.SetRotation(*np.deg2rad(rotation_deg))
    transform.SetTranslation(translation)
    return transform


@pytest.fixture(scope="module")
def scanners():
    """A CECT in the patient frame and an nCECT of another scanner: frame offset 200 mm in z,
    the patient moved 40 mm and rotated 4 degrees, another field of view and spacing."""
    cect, cect_liver = render((48, 40, 32), (6.0, 6.0, 6.0), (-144.0, -120.0, -100.0),
                              sitk.Euler3DTransform(), 110.0, seed=1)
    truth = _motion((4.0, -2.0, 3.0), (40.0, -10.0, 20.0 - 200.0), centre=(0.0, 0.0, 240.0))
    ncect, ncect_liver = render((40, 34, 30), (7.5, 7.5, 8.0), (-150.0, -127.0, 110.0), truth,
                                55.0, seed=2)
    return cect, cect_liver, ncect, ncect_liver, truth


def _errors_at_liver(estimate: sitk.Transform, truth: sitk.Transform,
                     liver: sitk.Image) -> np.ndarray:
    """|estimate(p) - truth(p)| (mm) at the nCECT liver voxels p."""
    indices = np.argwhere(sitk.GetArrayFromImage(liver))[:, ::-1]
    points = [liver.TransformIndexToPhysicalPoint([int(i) for i in index]) for index in indices]
    return np.array([np.linalg.norm(np.subtract(estimate.TransformPoint(p),
                                                truth.TransformPoint(p))) for p in points])


def _dice(a: sitk.Image, b: sitk.Image) -> float:
    x, y = sitk.GetArrayFromImage(a) > 0, sitk.GetArrayFromImage(b) > 0
    return 2.0 * float((x & y).sum()) / float(x.sum() + y.sum())


def test_rigid_recovers_a_rigid_offset_across_scanner_frames(scanners):
    cect, _, ncect, ncect_liver, truth = scanners
    assert _errors_at_liver(sitk.Euler3DTransform(), truth, ncect_liver).min() > 150.0
    estimate = prealign(ncect, cect, Settings())
    assert _errors_at_liver(estimate, truth, ncect_liver).max() < WORKING_VOXEL_MM


def test_centroid_recovers_a_pure_translation():
    moving, _ = tiny_ct(seed=3)
    fixed, _ = tiny_ct(seed=4)  # the same anatomy, other noise, in a frame moved by `offset`
    offset = np.array([40.0, -30.0, 250.0])
    fixed.SetOrigin((np.array(moving.GetOrigin()) + offset).tolist())
    transform = prealign(fixed, moving, Settings(mode="centroid"))
    point = np.array([10.0, 20.0, 300.0])
    assert np.allclose(transform.TransformPoint(point.tolist()), point - offset, atol=1.0)
    assert np.allclose(transform.GetMatrix(), np.eye(3).ravel())


def test_mode_none_is_the_identity(scanners):
    cect, _, ncect, _, _ = scanners
    transform = prealign(ncect, cect, Settings(mode="none"))
    assert transform.TransformPoint((1.0, -2.0, 3.0)) == (1.0, -2.0, 3.0)


def test_images_without_overlap_are_refused():
    moving, _ = tiny_ct(seed=3)  # 200 mm along z: a search over +-300 mm leaves it
    with pytest.raises(PrealignError, match="without overlap"):
        prealign(tiny_ct(seed=4)[0], moving, Settings(z_search_mm=300.0, z_step_mm=100.0))


def test_settings_are_checked():
    with pytest.raises(SettingsError, match="prealign.mode"):
        Settings.from_mapping({"mode": "affine"}, section="prealign")
    with pytest.raises(SettingsError, match="prealign.spacing_mm"):
        Settings.from_mapping({"spacing_mm": 0}, section="prealign")


def _write(images: dict[str, sitk.Image], folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, image in images.items():
        paths[name] = image_file(str(folder), name)
        sitk.WriteImage(image, paths[name])
    return paths


def test_pair_and_rigid_baseline_carry_the_liver_through_the_prealignment(scanners, tmp_path):
    cect, cect_liver, ncect, ncect_liver, _ = scanners
    case = _write(dict(cect=cect, cect_liver=cect_liver, ncect=ncect, ncect_liver=ncect_liver),
                  tmp_path / "P001")
    pair_dir, tfm = tmp_path / "pair", tmp_path / "pair" / "prealign.tfm"
    assert data_main([
        "pair", "--moving", case["cect"], "--moving-liver", case["cect_liver"],
        "--fixed", case["ncect"], "--fixed-liver", case["ncect_liver"], "--out", str(pair_dir),
        "--settings", PREPROCESS, "--prealign-settings", '{"mode": "rigid"}',
        "--prealign-out", str(tfm), "--timing-out", str(pair_dir / "timing.json"),
    ]) == 0
    pair_step = read_stages(pair_dir / "timing.json")
    assert set(pair_step) == {"read", "prealign", "working_grid"}
    assert all(seconds > 0 for seconds in pair_step.values())
    moving_liver, fixed_liver = (sitk.ReadImage(image_file(str(pair_dir), name))
                                 for name in ("moving_liver", "fixed_liver"))
    assert _dice(moving_liver, fixed_liver) > 0.8  # the working grid is pre-aligned

    outputs = {}
    for name, main, extra in (("rigid", rigid_main, ["--prealign", str(tfm), "--pair-timings",
                                                      str(pair_dir / "timing.json")]),
                              ("identity", identity_main, [])):
        outputs[name] = {kind: str(tmp_path / name / f"P001__P001.{suffix}") for kind, suffix in
                         (("predictions", "nii.gz"), ("runtimes", "json"), ("mappings", "h5"))}
        assert main(["--pairs", "P001__P001", "--cect", case["cect"],
                     "--cect-liver", case["cect_liver"], "--ncect", case["ncect"], *extra,
                     *[arg for kind, path in outputs[name].items() for arg in (f"--{kind}", path)]
                     ]) == 0
    dice = {name: _dice(sitk.ReadImage(out["predictions"]), ncect_liver)
            for name, out in outputs.items()}
    assert dice["rigid"] > 0.8 > 0.2 > dice["identity"]
    point = (5.0, -7.0, 150.0)
    rigid_mapping = read_transform(outputs["rigid"]["mappings"])
    assert np.allclose(rigid_mapping.TransformPoint(point),
                       read_transform(tfm).TransformPoint(point))
    assert read_transform(outputs["identity"]["mappings"]).TransformPoint(point) == point
    # one timing scope: rigid inherits the pair step, and its core is the pre-alignment
    rigid = json.loads(Path(outputs["rigid"]["runtimes"]).read_text())
    assert rigid["seconds_core"] == pytest.approx(pair_step["prealign"], abs=1e-3)
    assert rigid["seconds_case"] == pytest.approx(sum(rigid["stages"].values()), abs=1e-3)
    assert {"pair.read", "pair.prealign"} <= set(rigid["stages"])
    assert "pair.working_grid" not in rigid["stages"]  # rigid does not use the working grid
    identity = json.loads(Path(outputs["identity"]["runtimes"]).read_text())
    assert identity["seconds_core"] == 0 and set(identity["stages"]) == {"read", "map_back",
                                                                          "write"}


def test_pair_refuses_a_bad_prealign_setting(case_dir, tmp_path, capsys):
    assert data_main([
        "pair", "--moving", str(case_dir / "cect.nii.gz"),
        "--moving-liver", str(case_dir / "cect_liver.nii.gz"),
        "--fixed", str(case_dir / "ncect.nii.gz"),
        "--fixed-liver", str(case_dir / "ncect_liver.nii.gz"), "--out", str(tmp_path / "pair"),
        "--settings", PREPROCESS, "--prealign-settings", '{"mode": "affine"}',
        "--prealign-out", str(tmp_path / "pair" / "prealign.tfm"),
        "--timing-out", str(tmp_path / "pair" / "timing.json"),
    ]) == 2
    assert "prealign.mode" in capsys.readouterr().err


def _breathing_field(reference: sitk.Image) -> sitk.Image:
    """A smooth cranio-caudal displacement (mm) on `reference`'s grid, up to 16 mm."""
    size = reference.GetSize()
    zyx = np.stack(np.meshgrid(*[np.arange(s) for s in size[::-1]], indexing="ij"), -1)
    centre = (np.array(size[::-1]) - 1) / 2
    bump = np.exp(-(((zyx - centre) / (np.array(size[::-1]) / 3)) ** 2).sum(-1))
    vectors = np.zeros((*bump.shape, 3))
    vectors[..., 2] = 16.0 * bump  # the z component of (x, y, z)
    vectors[..., 0] = -4.0 * bump
    field = sitk.GetImageFromArray(vectors, isVector=True)
    field.CopyInformation(reference)
    return field


def test_composed_mapping_equals_resampling_in_two_steps(scanners, tmp_path):
    """prealign ∘ field, written as one .h5, carries the CECT liver like the two steps a
    registration method takes (pre-aligned working grid, then its field on that grid)."""
    _, cect_liver, _, _, truth = scanners
    working = sitk.Image([32, 32, 24], sitk.sitkUInt8)
    working.SetSpacing([WORKING_VOXEL_MM] * 3)
    working.SetOrigin((-120.0, -110.0, 120.0))
    field = _breathing_field(working)
    path = tmp_path / "mapping.h5"
    write_transform(compose(truth, sitk.DisplacementFieldTransform(sitk.Cast(
        field, sitk.sitkVectorFloat64))), path)
    mapping = read_transform(path)

    point = working.TransformIndexToPhysicalPoint((15, 15, 11))  # a voxel centre
    displacement = np.array(field.GetPixel(15, 15, 11))
    assert np.linalg.norm(displacement) > 5.0
    assert np.allclose(mapping.TransformPoint(point),  # the field first, then the pre-alignment
                       truth.TransformPoint((np.array(point) + displacement).tolist()))

    one_step = resample_mask(cect_liver, working, mapping)
    pre_aligned = sitk.Resample(sitk.Cast(cect_liver, sitk.sitkFloat32), working, truth,
                                sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    warped = sitk.Resample(pre_aligned, working, sitk.DisplacementFieldTransform(
        sitk.Cast(field, sitk.sitkVectorFloat64)), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    two_steps = sitk.Cast(warped >= 0.5, sitk.sitkUInt8)
    assert _dice(one_step, two_steps) > 0.95
    assert _dice(one_step, resample_mask(cect_liver, working, truth)) < 0.97  # the field matters


def _trunk(lungs: bool, gas_ml: float = 0.0, origin_z: float = 0.0) -> sitk.Image:
    """A 6 mm trunk (body 40 HU in air) with two lungs whose bases sit at z = 100 mm, and a
    gas bubble of `gas_ml` 60 mm below them."""
    z, y, x = np.meshgrid(np.arange(50) * 6.0, np.arange(40) * 6.0 - 120, np.arange(50) * 6.0 - 150,
                          indexing="ij")
    hu = np.where((x / 130) ** 2 + (y / 95) ** 2 <= 1, 40.0, -1000.0)
    if lungs:
        for side in (-1, 1):
            hu[(((x - side * 55) / 45) ** 2 + (y / 55) ** 2 <= 1) & (z >= 100)] = -850.0
    if gas_ml:
        radius = (3 * gas_ml * 1000 / (4 * np.pi)) ** (1 / 3)
        hu[(x - 30) ** 2 + y**2 + (z - 40) ** 2 <= radius**2] = -1000.0
    image = sitk.GetImageFromArray(hu.astype(np.float32))
    image.SetSpacing((6.0, 6.0, 6.0))
    image.SetOrigin((-150.0, -120.0, origin_z))
    return image


def test_lung_base_follows_the_lungs_and_ignores_bowel_gas():
    base = lung_base_z(_trunk(lungs=True), 50.0)
    # two 45 x 55 mm elliptic cylinders: 50 mL of lung lie within 50e3 / (2 pi 45 55) mm
    assert base == pytest.approx(100.0 + 50e3 / (2 * np.pi * 45 * 55), abs=1.5)
    assert lung_base_z(_trunk(lungs=True, origin_z=-237.0), 50.0) == pytest.approx(base - 237.0)
    assert lung_base_z(_trunk(lungs=True, gas_ml=150.0), 50.0) == pytest.approx(base, abs=0.1)
    assert lung_base_z(_trunk(lungs=False, gas_ml=150.0), 50.0) is None
