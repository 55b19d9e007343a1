"""The synthetic SPECT-CT cohort: files and layouts, realism constraints, motion and its
truth, determinism.

Two demo-size patients are simulated in memory (with their organ label maps) for the
content checks; the file and motion checks run at the small "smoke" size (same code,
coarser pixels) to keep the tests fast.
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from liverbench.data.io import read_displacement, read_image, read_mask, same_geometry
from liverbench.data.phantom import (
    H108_FILES,
    LIVER_LABELS,
    PATIENT_FILES,
    TRUTH_RECORD,
    Label,
    index_of,
    patient_ids,
    simulate_patient,
)
from liverbench.data.phantom.motion import (
    BREATHING_MM,
    BREATHING_RANGE_MM,
    FRAME_OFFSET_MM,
    TRUTH_SPACING_MM,
    sample_breathing,
    sample_frame,
)
from liverbench.data.preprocess import mask_centroid as centroid
from liverbench.layout import IMAGE_SUFFIX, TRUTH_FILE, image_file

ROOT = Path(__file__).resolve().parent.parent
SEED = 7
WORKING_BOX_MM = np.array([320.0, 320.0, 256.0])  # x, y, z of the demo working grid
SMOKE = ("--size", "smoke")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "liverbench.data.phantom", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def organ_hu(case, phase: str, labels) -> float:
    """Median HU of an organ away from its boundary (robust to partial volume)."""
    lab = array(case.labels[phase])
    core = ndimage.binary_erosion(np.isin(lab, labels), iterations=1)
    assert core.sum() > 50, (phase, labels)
    return float(np.median(array(case.images[phase])[core]))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def cases():
    return [simulate_patient(i, SEED) for i in range(2)]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("phantom") / "h108"
    result = run_cli("--out", str(out), "--patients", "2", "--seed", str(SEED), *SMOKE)
    assert result.returncode == 0, result.stderr
    return out


# ----------------------------------------------------------------------- files


def test_cohort_writes_the_images_the_truth_and_its_record_per_patient(cohort: Path):
    assert sorted(p.name for p in cohort.iterdir()) == ["P001", "P002"]
    assert PATIENT_FILES == (*H108_FILES, "true_motion")
    for patient in cohort.iterdir():
        assert sorted(p.name for p in patient.iterdir()) == sorted(
            [f"{n}{IMAGE_SUFFIX}" for n in PATIENT_FILES] + [TRUTH_RECORD]
        )
        record = json.loads((patient / TRUTH_RECORD).read_text())
        for key in ("breathing_mm", "frame_offset_mm", "rotation_deg", "translation_mm"):
            assert key in record, key


def test_file_types_and_grids(cohort: Path):
    folder = cohort / "P001"
    images = {name: read_image(image_file(str(folder), name)) for name in H108_FILES}
    assert images["cect"].GetPixelID() == sitk.sitkInt16
    assert images["ncect"].GetPixelID() == sitk.sitkInt16
    assert images["spect"].GetPixelID() == sitk.sitkFloat32
    for mask, ct in (("cect_liver", "cect"), ("ncect_liver", "ncect"), ("ncect_lungs", "ncect")):
        assert images[mask].GetPixelID() == sitk.sitkUInt8
        assert set(np.unique(array(images[mask]))) == {0, 1}
        read_mask(image_file(str(folder), mask), images[ct])  # binary, non-empty, on its grid
    for image in images.values():
        assert np.allclose(image.GetDirection(), np.eye(3).ravel())
    assert not same_geometry(images["cect"], images["ncect"])
    assert abs(images["spect"].GetSpacing()[0] - 4.8) < 0.5
    truth = sitk.ReadImage(image_file(str(folder), TRUTH_FILE))
    assert truth.GetPixelID() == sitk.sitkVectorFloat32 and truth.GetDimension() == 3
    assert truth.GetNumberOfComponentsPerPixel() == 3
    read_displacement(image_file(str(folder), TRUTH_FILE))  # finite 3-vectors
    ncect = images["ncect"]
    assert np.allclose(truth.GetSpacing(), TRUTH_SPACING_MM)
    assert np.allclose(truth.GetOrigin(), ncect.GetOrigin())
    far_corner = np.array(ncect.TransformIndexToPhysicalPoint([n - 1 for n in ncect.GetSize()]))
    truth_corner = truth.TransformIndexToPhysicalPoint([n - 1 for n in truth.GetSize()])
    assert np.all(np.array(truth_corner) >= far_corner)  # covers the nCECT field of view
    assert np.all(np.array(truth_corner) < far_corner + TRUTH_SPACING_MM)


def test_written_files_are_the_simulated_patient(cohort: Path):
    case = simulate_patient(0, SEED, size="smoke")
    assert json.loads((cohort / "P001" / TRUTH_RECORD).read_text()) == case.truth
    for name in PATIENT_FILES:
        written = sitk.ReadImage(image_file(str(cohort / "P001"), name))
        assert same_geometry(written, case.images[name])
        assert np.array_equal(array(written), array(case.images[name])), name


def test_only_is_byte_identical_to_the_cohort_run(cohort: Path, tmp_path: Path):
    args = ("--out", str(tmp_path), "--patients", "2", "--seed", str(SEED), *SMOKE)
    result = run_cli(*args, "--only", "P002")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["P002"]
    assert digest(tmp_path / "P002") == digest(cohort / "P002")


def test_same_seed_same_bytes_other_seed_other_patient(tmp_path: Path):
    from liverbench.data.phantom import generate_h108_patient

    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        generate_h108_patient(0, seed, tmp_path / name, size="smoke")
    a, b, c = (digest(tmp_path / n / "P001") for n in "abc")
    assert a == b
    assert all(a[k] != c[k] for k in a)


def test_manifest_paths_are_relative_to_the_csv(cohort: Path):
    manifest = cohort / "manifest.csv"
    result = run_cli("--manifest", str(manifest), "--patients", "2")
    assert result.returncode == 0, result.stderr
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["patient_id", *PATIENT_FILES]
    assert [r["patient_id"] for r in rows] == patient_ids(2)
    for row in rows:
        for name in PATIENT_FILES:
            assert not Path(row[name]).is_absolute()
            assert (manifest.parent / row[name]).is_file()
    manifest.unlink()


def test_cli_rejects_unknown_cases():
    assert run_cli("--out", "x", "--patients", "2", "--only", "P003").returncode == 2
    assert run_cli("--out", "x", "--patients", "2", "--only", "liver_0").returncode == 2
    assert index_of("P010") == 9 and index_of("liver_3", "msd") == 3


def test_msd_layout(tmp_path: Path):
    out = tmp_path / "Task03_Liver"
    args = ("--kind", "msd", "--patients", "2", "--seed", str(SEED), "--size", "smoke")
    assert run_cli("--out", str(out), *args).returncode == 0
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["name"] == "Liver" and dataset["modality"] == {"0": "CT"}
    assert dataset["labels"] == {"0": "background", "1": "liver", "2": "cancer"}
    assert dataset["numTraining"] == 2 == len(dataset["training"])
    for entry in dataset["training"]:
        image = read_image(out / entry["image"])
        label = read_image(out / entry["label"])
        assert image.GetPixelID() == sitk.sitkInt16 and label.GetPixelID() == sitk.sitkUInt8
        assert same_geometry(image, label)
        values = set(np.unique(array(label)).tolist())
        assert {0, 1} <= values <= {0, 1, 2}
        liver = array(label) > 0
        assert 95 < np.median(array(image)[ndimage.binary_erosion(liver, iterations=2)]) < 135
    alone = tmp_path / "alone"
    assert run_cli("--out", str(alone), *args, "--only", "liver_1").returncode == 0
    assert digest(alone) == {k: v for k, v in digest(out).items() if "liver_1" in k}
    assert run_cli("--out", str(alone), *args, "--dataset-json-only").returncode == 0
    assert json.loads((alone / "dataset.json").read_text()) == dataset


# ------------------------------------------------------------------- realism


def test_cect_liver_enhances_well_above_muscle(cases):
    for case in cases:
        liver = organ_hu(case, "cect", [Label.LIVER])
        assert 100 <= liver <= 130
        assert liver - organ_hu(case, "cect", [Label.MUSCLE]) >= 40
        assert organ_hu(case, "cect", [Label.PORTAL_VEIN]) > liver + 30


def test_ncect_liver_is_nearly_isodense_with_its_neighbours(cases):
    for case in cases:
        liver = organ_hu(case, "ncect", [Label.LIVER])
        assert 45 <= liver <= 65
        for neighbour in ([Label.SPLEEN], [Label.MUSCLE], [Label.AORTA, Label.IVC]):
            assert abs(liver - organ_hu(case, "ncect", neighbour)) <= 15, neighbour


def test_noise_and_slice_thickness(cases):
    for case in cases:
        sd = {}
        for phase in ("cect", "ncect"):
            lab = array(case.labels[phase])
            core = ndimage.binary_erosion(lab == Label.LIVER, iterations=2)
            sd[phase] = float(array(case.images[phase])[core].std())
        assert 7 <= sd["cect"] <= 15
        assert 18 <= sd["ncect"] <= 35
        cect_z, ncect_z = case.images["cect"].GetSpacing()[2], case.images["ncect"].GetSpacing()[2]
        assert ncect_z >= 4.0 and ncect_z > cect_z


def test_liver_volume_and_masks_match_labels(cases):
    for case in cases:
        cect = case.images["cect"]
        liver = array(case.images["cect_liver"]) > 0
        litres = liver.sum() * np.prod(cect.GetSpacing()) / 1e6
        assert 1.0 <= litres <= 2.2
        assert np.array_equal(liver, np.isin(array(case.labels["cect"]), LIVER_LABELS))
        lungs = array(case.images["ncect_lungs"]) > 0
        assert np.array_equal(lungs, array(case.labels["ncect"]) == Label.LUNG)


def test_body_and_liver_fit_the_working_grid(cases):
    """The pipeline centres a 320 x 320 x 256 mm box on the body (HU > -400)."""
    for case in cases:
        for phase in ("cect", "ncect"):
            ct = case.images[phase]
            assert (array(ct) > -400).any(axis=(1, 2)).all(), f"{phase}: slice without body"
            body = np.argwhere(array(ct) > -400)[:, ::-1]  # x, y, z indices
            liver = np.argwhere(array(case.images[f"{phase}_liver"]) > 0)[:, ::-1]
            spacing = np.array(ct.GetSpacing())
            lo, hi = body.min(0) * spacing, body.max(0) * spacing
            assert np.all((hi - lo)[:2] < WORKING_BOX_MM[:2] - 10), phase
            centre = (lo + hi) / 2
            reach = np.abs(liver * spacing - centre).max(axis=0)
            assert np.all(reach < WORKING_BOX_MM / 2 - 5), (phase, reach)


def test_spect_tumours_hot_and_a_few_percent_lung_shunt(cases):
    assert any(case.truth["tumours"] for case in cases)
    for case in cases:
        spect, ncect = case.images["spect"], case.images["ncect"]
        counts = array(spect)
        assert counts.dtype == np.float32 and counts.min() >= 0
        assert np.array_equal(counts, np.round(counts))  # Poisson counts
        assert 0.9e6 < counts.sum() < 3.1e6
        on_ct = array(sitk.Resample(spect, ncect, sitk.Transform(), sitk.sitkLinear, 0.0))
        lab = array(case.labels["ncect"])
        lungs = array(case.images["ncect_lungs"]) > 0
        liver = (array(case.images["ncect_liver"]) > 0) & ~lungs
        lsf = on_ct[lungs].sum() / (on_ct[lungs].sum() + on_ct[liver].sum())
        assert 0.01 <= lsf <= 0.15
        if case.truth["tumours"]:  # the hottest tumour outshines the liver despite the blur
            parenchyma = np.median(on_ct[ndimage.binary_erosion(lab == Label.LIVER, iterations=3)])
            tumours = [np.isin(lab, (Label.TUMOUR + k, Label.RIM + k)) for k in range(3)]
            hottest = max((t for t in tumours if t.any()), key=lambda t: on_ct[t].mean())
            assert on_ct[hottest].mean() > 1.2 * parenchyma
            assert on_ct[hottest].max() > 1.5 * parenchyma


# --------------------------------------------------------------------- motion


def carried(moving: sitk.Image, fixed: sitk.Image, transform: sitk.Transform) -> np.ndarray:
    return array(sitk.Resample(moving, fixed, transform, sitk.sitkNearestNeighbor, 0)) > 0


def truth_transform(case) -> sitk.Transform:
    """The written truth as ITK reads it: nCECT world point p -> CECT world point p + d(p)."""
    field = sitk.Cast(case.images[TRUTH_FILE], sitk.sitkVectorFloat64)
    return sitk.DisplacementFieldTransform(field)


def mean_truth_z(case) -> float:
    """The truth's mean z displacement over the nCECT liver voxels."""
    field = array(sitk.Resample(case.images[TRUTH_FILE], case.images["ncect"]))
    return float(field[array(case.images["ncect_liver"]) > 0][:, 2].mean())


@pytest.fixture(scope="module")
def smoke_cases():
    return [simulate_patient(i, SEED, size="smoke") for i in range(2)]


def test_frames_differ_and_the_truth_aligns_them(smoke_cases):
    far = [c for c in smoke_cases if np.abs(c.truth["frame_offset_mm"]).max() > 100]
    assert far, "seed 7: some patient should have a frame offset over 100 mm"
    for case in smoke_cases:
        cect_liver, ncect_liver = case.images["cect_liver"], case.images["ncect_liver"]
        truth = array(ncect_liver) > 0
        assert dice(carried(cect_liver, ncect_liver, truth_transform(case)), truth) > 0.9
    for case in far:  # scanner geometry alone: the liver is somewhere else entirely
        cect_liver, ncect_liver = case.images["cect_liver"], case.images["ncect_liver"]
        truth = array(ncect_liver) > 0
        assert dice(carried(cect_liver, ncect_liver, sitk.Transform()), truth) < 0.3
        # the CT content agrees through the truth too: bone and air stay bone and air
        cect, ncect = case.images["cect"], case.images["ncect"]
        on_ncect = array(sitk.Resample(cect, ncect, truth_transform(case), sitk.sitkLinear, -1000))
        bone, air = array(ncect) > 400, array(ncect) < -900
        assert np.median(on_ncect[bone]) > 250 and np.median(on_ncect[air]) < -900


def test_breathing_sign_gives_a_liver_displacement_of_that_sign():
    cases = {b: simulate_patient(0, SEED, size="smoke", breathing_mm=b) for b in (0.0, 12, -12)}
    still = cases[0.0]
    assert abs(still.truth["liver_shift_mm"][2]) < 3  # only the random deformation left
    mean_dz = {b: mean_truth_z(c) for b, c in cases.items()}
    for b in (12, -12):
        case = cases[b]
        assert case.truth["breathing_mm"] == b
        for key in ("frame_offset_mm", "rotation_deg", "translation_mm"):
            assert case.truth[key] == still.truth[key]  # only the breathing differs
        shift = case.truth["liver_shift_mm"][2] - still.truth["liver_shift_mm"][2]
        assert np.sign(shift) == np.sign(b) and 0.6 * abs(b) < abs(shift) < 1.2 * abs(b)
        rise = centroid(case.images["ncect_liver"])[2] - centroid(still.images["ncect_liver"])[2]
        assert np.sign(rise) == np.sign(b)  # the nCECT liver itself moved that way
        # the truth maps it back: d_z over the liver moves against the shift
        assert np.sign(mean_dz[b] - mean_dz[0.0]) == -np.sign(b)
        assert abs(mean_dz[b] - mean_dz[0.0] + shift) < 3.0


def test_motion_parameters_follow_their_distributions():
    rng = np.random.default_rng(0)
    breathing = np.array([sample_breathing(rng) for _ in range(4000)])
    mean, sd = BREATHING_MM
    assert abs(breathing.mean() - mean) < 0.5 and abs(breathing.std() - sd) < 0.5
    assert 0.05 < (breathing < 0).mean() < 0.15  # some pairs move caudally
    assert BREATHING_RANGE_MM[0] <= breathing.min() and breathing.max() <= BREATHING_RANGE_MM[1]
    frames = np.array([sample_frame(rng) for _ in range(2000)])
    assert np.all(np.abs(frames) <= FRAME_OFFSET_MM)
    assert np.all(np.abs(frames).max(axis=0) > 0.9 * FRAME_OFFSET_MM)
