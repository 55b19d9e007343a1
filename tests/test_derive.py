"""The derived cohort: real CECTs (here the phantom's MSD-like CECTs, which come with organ
label maps to measure against) with simulated nCECT, masks, SPECT and true motion.

One demo-size case is derived in memory for the content checks (its organ labels are pulled
onto the nCECT through the written true motion); the file, CLI and source checks run on
smoke-size MSD folders and on a CSV whose CECT is a DICOM series.
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
from conftest import write_dicom_series
from scipy import ndimage

from liverbench.data.adapters import as_hu, read_manifest
from liverbench.data.derive import derive_cohort, derive_patient, source_cases, source_files
from liverbench.data.derive.motion import breathing_weight
from liverbench.data.derive.tissues import find_tissues
from liverbench.data.io import read_image, same_geometry
from liverbench.data.phantom import Label, generate_cohort, simulate_msd_case
from liverbench.data.phantom.shapes import Grid
from liverbench.evaluation.lsf import lung_shunt_fraction, organ_counts
from liverbench.layout import PHANTOM_FILES, TRUTH_FILE, image_file

ROOT = Path(__file__).resolve().parent.parent
SEED = 11


def _mask(image: sitk.Image, values) -> sitk.Image:
    array = np.isin(sitk.GetArrayViewFromImage(image), values).astype(np.uint8)
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(image)
    return mask


@pytest.fixture(scope="module")
def derived():
    """A demo-size MSD-like CECT (with its organ labels) and the patient derived from it."""
    source = simulate_msd_case(0, SEED, "demo")
    label = source.images["label"]
    case = derive_patient("liver_0", source.images["image"], _mask(label, (1, 2)), SEED,
                          _mask(label, (2,)))
    return source, case


def _truth(case) -> sitk.Transform:
    field = sitk.Cast(case.images[TRUTH_FILE], sitk.sitkVectorFloat64)
    return sitk.DisplacementFieldTransform(field)


def _on_ncect(case, image: sitk.Image, transform: sitk.Transform | None = None) -> np.ndarray:
    """A CECT-grid image pulled onto the nCECT grid (nearest neighbour; 0 outside)."""
    resampled = sitk.Resample(image, case.images["ncect"], transform or sitk.Transform(),
                              sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(resampled)


def _core(mask: np.ndarray, image: sitk.Image, mm: float = 4.0) -> np.ndarray:
    return ndimage.distance_transform_edt(mask, sampling=image.GetSpacing()[::-1]) > mm


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------ sources


def test_source_cases_lists_without_reading_images(tmp_path: Path):
    rows = [{"patient_id": p, "cect": f"{p}/ct", "cect_liver": f"{p}/liver.nii.gz",
             "note": "ignored"} for p in ("b", "a", "c10", "c2")]
    table = _write_csv(tmp_path / "cases.csv", rows)  # none of these images exists
    assert source_cases(table) == ["a", "b", "c10", "c2"]
    assert source_cases(table, patients=2) == ["a", "b"]

    msd = tmp_path / "Task03_Liver"
    (msd / "imagesTr").mkdir(parents=True)
    (msd / "labelsTr").mkdir()
    training = [{"image": f"./imagesTr/liver_{i}.nii.gz", "label": f"./labelsTr/liver_{i}.nii.gz"}
                for i in (3, 0, 12)]
    (msd / "dataset.json").write_text(json.dumps({"training": training}))
    assert source_cases(msd) == ["liver_0", "liver_12", "liver_3"]
    assert source_cases(msd, 1) == ["liver_0"]
    # a workflow's inputs per derived patient: the listing and the case's own files
    assert source_files(msd, "liver_3") == [
        str(msd / "dataset.json"), str(msd / "imagesTr" / "liver_3.nii.gz"),
        str(msd / "labelsTr" / "liver_3.nii.gz"),
    ]
    assert source_files(table, "a") == [
        str(table), str(tmp_path / "a" / "ct"), str(tmp_path / "a" / "liver.nii.gz"),
    ]


def test_source_errors_name_the_file_and_problem(tmp_path: Path):
    one = {"patient_id": "a", "cect": "x", "cect_liver": "y"}
    cases = {
        _write_csv(tmp_path / "bad.csv", [{"patient_id": "a", "cect": "x"}]):
            r"bad\.csv: missing column\(s\) \['cect_liver'\]",
        _write_csv(tmp_path / "twice.csv", [one, one]):
            r"twice\.csv, line 3: duplicate patient_id 'a'",
        _write_csv(tmp_path / "empty.csv", [{**one, "cect_liver": ""}]):
            r"empty\.csv, line 2: column 'cect_liver' is empty",
        tmp_path / "missing": r"missing: not found",
        tmp_path: r"dataset\.json: not found",
    }
    for source, message in cases.items():
        with pytest.raises(ValueError, match=message):
            source_cases(source)
    with pytest.raises(ValueError, match=r"one\.csv: 5 patients asked for, 1 available"):
        source_cases(_write_csv(tmp_path / "one.csv", [one]), patients=5)
    (tmp_path / "header.csv").write_text("patient_id,cect,cect_liver\n")
    with pytest.raises(ValueError, match=r"header\.csv: no cases"):
        source_cases(tmp_path / "header.csv")


# ------------------------------------------------------------------------------ content


def test_derived_patient_has_the_phantoms_files_and_scanner(derived):
    source, case = derived
    assert set(PHANTOM_FILES) <= set(case.images)
    cect, ncect = case.images["cect"], case.images["ncect"]
    assert cect.GetPixelID() == ncect.GetPixelID() == sitk.sitkInt16
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(cect),
                                  sitk.GetArrayViewFromImage(source.images["image"]))
    for name in ("ncect_liver", "ncect_lungs"):
        assert same_geometry(case.images[name], ncect)
        assert case.images[name].GetPixelID() == sitk.sitkUInt8
    assert sitk.GetArrayViewFromImage(case.images["ncect_lungs"]).sum() > 0
    assert ncect.GetDirection() == tuple(np.eye(3).ravel())
    spacing, size = np.array(ncect.GetSpacing()), np.array(ncect.GetSize())
    assert spacing[2] in (4.0, 5.0) and case.truth["ncect_slice_mm"] == spacing[2]
    assert 1.4 < spacing[0] < 2.0
    fov = size[:2] * spacing[:2]
    assert (fov < np.array(cect.GetSize()[:2]) * np.array(cect.GetSpacing()[:2])).all()
    assert case.truth["ncect_coverage_mm"] <= case.truth["ncect_coverage_drawn_mm"]


def test_nct_is_non_contrast_and_noisy(derived):
    """Liver near its drawn non-contrast value and within 15 HU of its neighbours, which the
    CECT had 45 HU below it; vessels down to blood; fat and marrow unchanged; noise SD."""
    source, case = derived
    truth = case.truth
    cect_labels = source.labels["cect"]
    labels = _on_ncect(case, cect_labels, _truth(case))
    ncect = sitk.GetArrayFromImage(case.images["ncect"]).astype(float)
    cect = sitk.GetArrayFromImage(source.images["image"]).astype(float)
    cect_label_array = sitk.GetArrayFromImage(cect_labels)

    def mean(label, phase="ncect"):
        if phase == "ncect":
            return ncect[_core(labels == label, case.images["ncect"])].mean()
        return cect[_core(cect_label_array == label, cect_labels)].mean()

    liver = mean(Label.LIVER)
    assert 45.0 <= liver <= 65.0
    assert abs(liver - truth["ncect_liver_hu"]) < 5.0
    for neighbour in (Label.MUSCLE, Label.SPLEEN):
        assert mean(Label.LIVER, "cect") - mean(neighbour, "cect") >= 0.0
        assert abs(liver - mean(neighbour)) < 15.0
    assert mean(Label.LIVER, "cect") - mean(Label.MUSCLE, "cect") >= 45.0
    for vessel in (Label.PORTAL_VEIN, Label.AORTA, Label.IVC):
        assert mean(vessel, "cect") - mean(vessel) > 80.0
        assert 35.0 < mean(vessel) < 65.0
    assert abs(mean(Label.FAT) - mean(Label.FAT, "cect")) < 10.0
    assert abs(mean(Label.BONE_MARROW) - mean(Label.BONE_MARROW, "cect")) < 25.0
    noise = ncect[_core(labels == Label.LIVER, case.images["ncect"])].std()
    assert 20.0 <= truth["ncect_noise_sd_hu"] <= 30.0
    assert 0.9 < noise / truth["ncect_noise_sd_hu"] < 1.15


def test_no_air_where_the_cect_has_no_slices(derived):
    """Every nCECT voxel in the body maps, through the true motion, inside the CECT."""
    source, case = derived
    ones = sitk.Image(source.images["image"].GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(source.images["image"])
    inside = _on_ncect(case, ones, _truth(case)) > 0
    body = ndimage.median_filter(sitk.GetArrayFromImage(case.images["ncect"]), 3) > -500
    assert body.sum() > 0.2 * body.size
    assert (body & ~inside).sum() < 1e-3 * body.sum()
    per_slice = body.sum(axis=(1, 2))
    assert per_slice.min() > 0.3 * np.median(per_slice)


def test_truth_maps_the_ncect_liver_onto_the_cect_liver(derived):
    source, case = derived
    ncect_liver = sitk.GetArrayFromImage(case.images["ncect_liver"]) > 0
    cect_liver = case.images["cect_liver"]
    assert _dice(_on_ncect(case, cect_liver, _truth(case)) > 0, ncect_liver) > 0.9
    assert _dice(_on_ncect(case, cect_liver) > 0, ncect_liver) < 0.5  # scanner geometry alone
    breathing = case.truth["breathing_mm"]
    shift = case.truth["liver_shift_mm"][2]  # relative to the skeleton
    assert abs(breathing) > 3.0 and 0.6 * abs(breathing) < np.sign(breathing) * shift


def test_breathing_weight_follows_the_image(derived):
    """1 deep in the abdomen at the liver, 0 at the spine and well outside the body."""
    source, _ = derived
    label = source.images["label"]
    tissues = find_tissues(source.images["image"], _mask(label, (1, 2)))
    liver = np.array(tissues.centroid(tissues.liver))
    lo, hi = tissues.world_box()
    grid = Grid.covering(lo - 30, hi + [30, 30, 300], 8.0)  # and up the chest
    moves, body = breathing_weight(tissues, grid, 10.0)

    def at(point) -> tuple[float, float]:
        index = tuple(int(round((p - o) / 8.0)) for p, o in zip(point[::-1], grid.origin[::-1]))
        return float(moves[index]), float(body[index])

    labels = sitk.GetArrayFromImage(source.labels["cect"])
    spine = tissues.world(np.argwhere(labels == Label.BONE_MARROW).mean(axis=0))
    spine[2] = liver[2]
    assert at(liver + [0, 0, 10.0])[0] > 0.8
    assert at(spine)[0] < 0.05
    assert at(np.array([lo[0] - 25.0, liver[1], liver[2]])) == (0.0, 0.0)
    assert at(liver + [0, 0, 250.0])[0] < 0.1  # far up the chest


def test_spect_counts_in_the_liver_and_lung_shunt(derived):
    _, case = derived
    images = case.images
    counts = organ_counts(images["spect"], images["ncect_liver"], images["ncect_lungs"])
    total = float(sitk.GetArrayViewFromImage(images["spect"]).sum())
    assert counts["liver"] > 0.5 * total
    assert abs(total - case.truth["spect_total_counts"]) < 0.01 * total
    lsf = lung_shunt_fraction(images["spect"], images["ncect_liver"], images["ncect_lungs"])
    assert abs(lsf - 100 * case.truth["lung_shunt_fraction"]) < 3.0


def test_source_direction_does_not_matter(derived):
    """The same CECT stored flipped in x and y (direction diag(-1, -1, 1)) gives the same
    patient: world coordinates, not array order, drive every step."""
    source, case = derived
    image, label = source.images["image"], source.images["label"]

    def flipped(im: sitk.Image) -> sitk.Image:
        out = sitk.GetImageFromArray(sitk.GetArrayFromImage(im)[:, ::-1, ::-1].copy())
        out.SetSpacing(im.GetSpacing())
        out.SetDirection((-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))
        size = im.GetSize()
        out.SetOrigin(im.TransformIndexToPhysicalPoint((size[0] - 1, size[1] - 1, 0)))
        return out

    other = derive_patient("liver_0", flipped(image), _mask(flipped(label), (1, 2)), SEED,
                           _mask(flipped(label), (2,)))
    a, b = (c.images["ncect"] for c in (case, other))
    assert np.allclose(a.GetOrigin(), b.GetOrigin(), atol=0.5) and a.GetSize() == b.GetSize()
    liver_a, liver_b = (sitk.GetArrayFromImage(c.images["ncect_liver"]) > 0 for c in (case, other))
    assert _dice(liver_a, liver_b) > 0.97


# ------------------------------------------------------------------------ files and CLI


@pytest.fixture(scope="module")
def msd_source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("msd") / "Task03_Liver"
    generate_cohort(root, 2, SEED, kind="msd", size="smoke")
    return root


def test_cli_cohort_manifest_and_only_are_byte_identical(msd_source: Path, tmp_path: Path):
    before = _hashes(msd_source)
    full, one = tmp_path / "full", tmp_path / "one"
    command = [sys.executable, "-m", "liverbench.data.derive", "--source", str(msd_source),
               "--seed", "5"]
    result = subprocess.run([*command, "--out", str(full)], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = read_manifest(full / "manifest.csv")
    assert [r.patient_id for r in rows] == ["liver_0", "liver_1"]
    assert {"spect", "ncect_lungs", TRUTH_FILE} <= set(rows[0].paths)
    truth = json.loads((full / "liver_1" / "truth.json").read_text())
    assert truth["seed"] == 5 and truth["source"]["label"].endswith("labelsTr/liver_1.nii.gz")

    derive_cohort(msd_source, one, 5, only=["liver_1"])
    assert sorted(p.name for p in one.iterdir()) == ["liver_1"]  # no manifest, no liver_0
    assert _hashes(one / "liver_1") == _hashes(full / "liver_1")
    assert _hashes(full / "liver_0") != _hashes(full / "liver_1")
    assert _hashes(msd_source) == before  # inputs untouched

    result = subprocess.run([*command, "--out", str(one), "--patients", "1", "--only",
                             "liver_1"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 2
    assert "--only: ['liver_1'] not among the 1 cases" in result.stderr


def test_csv_source_with_a_dicom_series(msd_source: Path, tmp_path: Path):
    image = read_image(msd_source / "imagesTr" / "liver_0.nii.gz")
    label = read_image(msd_source / "labelsTr" / "liver_0.nii.gz")
    raw = tmp_path / "raw"
    write_dicom_series(image, raw / "ct_dicom")
    sitk.WriteImage(_mask(label, (1, 2)), str(raw / "liver.nii.gz"))
    table = _write_csv(tmp_path / "cases.csv", [
        {"patient_id": "ct1", "cect": "raw/ct_dicom", "cect_liver": "raw/liver.nii.gz"},
        {"patient_id": "ct2", "cect": "raw/none", "cect_liver": "raw/none.nii.gz"},
    ])
    before = _hashes(raw)
    (folder,) = derive_cohort(table, tmp_path / "out", 3, only=["ct1"])
    cect = read_image(image_file(str(folder), "cect"))
    dicom = as_hu(read_image(raw / "ct_dicom"))
    assert same_geometry(cect, dicom)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(cect),
                                  sitk.GetArrayViewFromImage(dicom))
    assert all(Path(image_file(str(folder), name)).is_file() for name in PHANTOM_FILES)
    truth = json.loads((folder / "truth.json").read_text())
    assert truth["source"]["cect"] == str(raw / "ct_dicom")
    assert _hashes(raw) == before
    with pytest.raises(ValueError, match=r"none: file not found"):
        derive_cohort(table, tmp_path / "out", 3, only=["ct2"])
