"""Masks from clinical DICOM (liverbench.data.dicom_masks): an RTSTRUCT ROI or a DICOM-SEG
segment named in a manifest mask column as `path::label`, rasterised onto its CT's grid.

Every file is written here: a tiny CT as a DICOM series, an RTSTRUCT written with pydicom
(ROIs Liver, with a hole, and Lungs) and a DICOM-SEG written with highdicom from the series.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import yaml
from conftest import run_snakemake, tiny_ct, write_dicom_series
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from liverbench.data import memory
from liverbench.data.__main__ import main as data_main
from liverbench.data.adapters import ManifestError, read_manifest, standardize_h108
from liverbench.data.dicom_masks import read_mask_source, source_file, split_source
from liverbench.data.io import ImageError, read_image, write_image
from liverbench.layout import image_file

FRAME_UID = "1.2.826.0.1.3680043.2.1125.1.2"
SERIES_UID = "1.2.826.0.1.3680043.2.1125.1.1"  # what conftest.write_dicom_series writes
RTSTRUCT_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
SHAPE = (12, 32, 32)  # z, y, x; spacing 8 x 8 x 10 mm, origin (-160, -160, -100)
LIVER_CENTRE, LIVER_RADII, HOLE_RADIUS = (-40.0, -30.0), (70.0, 50.0), 22.0
LIVER_SLICES, HOLE_SLICES, LUNG_SLICES = range(3, 9), (5, 6), range(0, 3)


def write_ct_series(folder: Path, frame_uid: str = FRAME_UID, **geometry) -> sitk.Image:
    """The tiny CT as a DICOM series with a frame of reference (what highdicom needs)."""
    image, _ = tiny_ct(shape=SHAPE, **geometry)
    write_dicom_series(image, folder, {"0020|0052": frame_uid, "0010|0020": "T1",
                                       "0020|0011": "1"})
    # GDCM writes Spacing Between Slices '1' into every series after the first one a process
    # writes, and highdicom takes a SEG's slice spacing from its source images: set it right
    for file in folder.iterdir():
        data = pydicom.dcmread(file)
        data.SpacingBetweenSlices = image.GetSpacing()[2]
        data.save_as(file)
    return read_image(folder)


def ring(centre, radii, z: float, points: int = 72) -> np.ndarray:
    """A closed planar contour (patient mm, x y z per point) around an ellipse."""
    angle = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return np.stack([centre[0] + radii[0] * np.cos(angle), centre[1] + radii[1] * np.sin(angle),
                     np.full(points, z)], axis=1)


def slice_z(k: int) -> float:
    return -100.0 + 10.0 * k


def liver_contours() -> list[np.ndarray]:
    """The liver: an ellipse on six slices, with a round hole on two of them."""
    outer = [ring(LIVER_CENTRE, LIVER_RADII, slice_z(k)) for k in LIVER_SLICES]
    holes = [ring(LIVER_CENTRE, (HOLE_RADIUS, HOLE_RADIUS), slice_z(k)) for k in HOLE_SLICES]
    return outer + holes


def liver_truth(ct: sitk.Image) -> np.ndarray:
    """The liver voxelised: voxel centres inside the ellipse and outside the hole."""
    z, y, x = np.indices(SHAPE)
    px, py = -160.0 + 8.0 * x - LIVER_CENTRE[0], -160.0 + 8.0 * y - LIVER_CENTRE[1]
    inside = (px / LIVER_RADII[0]) ** 2 + (py / LIVER_RADII[1]) ** 2 <= 1
    hole = np.isin(z, HOLE_SLICES) & (px**2 + py**2 < HOLE_RADIUS**2)
    return (inside & np.isin(z, LIVER_SLICES) & ~hole).astype(np.uint8)


def lung_contours() -> list[np.ndarray]:
    return [ring((-100.0, -60.0), (30.0, 30.0), slice_z(k), 8) for k in LUNG_SLICES]


def write_rtstruct(path: Path, rois: dict[str, list[np.ndarray]], frame_uid: str = FRAME_UID,
                   series_uid: str = SERIES_UID) -> Path:
    """A minimal RTSTRUCT: one closed planar contour per array, per ROI."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    data = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    data.SOPClassUID, data.SOPInstanceUID = RTSTRUCT_CLASS, meta.MediaStorageSOPInstanceUID
    data.Modality, data.StructureSetLabel = "RTSTRUCT", "test"
    series, study, frame = Dataset(), Dataset(), Dataset()
    series.SeriesInstanceUID = series_uid
    study.RTReferencedSeriesSequence = [series]
    frame.FrameOfReferenceUID, frame.RTReferencedStudySequence = frame_uid, [study]
    data.ReferencedFrameOfReferenceSequence = [frame]
    data.StructureSetROISequence, data.ROIContourSequence = [], []
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi, item = Dataset(), Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, frame_uid
        item.ReferencedROINumber, item.ContourSequence = number, []
        for points in contours:
            contour = Dataset()
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(points)
            contour.ContourData = [f"{v:.3f}" for v in points.ravel()]
            item.ContourSequence.append(contour)
        data.StructureSetROISequence.append(roi)
        data.ROIContourSequence.append(item)
    data.save_as(path, enforce_file_format=True)
    return path


def write_seg(path: Path, series: Path, segments: dict[str, np.ndarray]) -> Path:
    """A BINARY DICOM-SEG of the series' CT, one segment per (z, y, x) array."""
    sources = [pydicom.dcmread(f) for f in sorted(series.iterdir())]
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number, segment_label=name,
            segmented_property_category=codes.SCT.Organ,
            segmented_property_type=codes.SCT.Liver if name == "Liver" else codes.SCT.Lung,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for number, name in enumerate(segments, start=1)]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=np.stack(list(segments.values()), axis=-1),
        segmentation_type="BINARY", segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=2, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="test", manufacturer_model_name="test",
        software_versions="0", device_serial_number="0")
    seg.save_as(path)
    return path


def seg_truth() -> dict[str, np.ndarray]:
    """The segments: tiny_ct's liver with an empty slice inside it (SEG omits empty frames),
    and a lung block."""
    liver = sitk.GetArrayFromImage(tiny_ct(shape=SHAPE)[1])
    liver[6] = 0
    lungs = np.zeros(SHAPE, np.uint8)
    lungs[1:3, 4:10, 5:12] = 1
    return {"Liver": liver, "Lungs": lungs}


@pytest.fixture
def ct(tmp_path: Path) -> tuple[Path, sitk.Image]:
    return tmp_path / "ct", write_ct_series(tmp_path / "ct")


@pytest.fixture
def rtstruct(tmp_path: Path) -> Path:
    return write_rtstruct(tmp_path / "rt.dcm", {"Liver": liver_contours(),
                                                "Lungs": lung_contours()})


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_source_syntax_splits_the_file_from_the_label():
    assert split_source("a/rt.dcm::Liver") == ("a/rt.dcm", "Liver")
    assert split_source("a/ct.nii.gz") == ("a/ct.nii.gz", None)
    assert source_file("seg.dcm::Lung left") == "seg.dcm"
    with pytest.raises(ImageError, match=r"'rt\.dcm::': expected PATH::LABEL"):
        split_source("rt.dcm::")


def test_rtstruct_liver_matches_the_voxelised_truth_and_keeps_its_hole(ct, rtstruct):
    folder, image = ct
    mask = read_mask_source(rtstruct, "Liver", image, folder)
    array = sitk.GetArrayFromImage(mask)
    truth = liver_truth(image)
    assert mask.GetPixelID() == sitk.sitkUInt8 and set(np.unique(array)) == {0, 1}
    assert mask.GetSize() == image.GetSize() and mask.GetOrigin() == image.GetOrigin()
    assert dice(array.astype(bool), truth.astype(bool)) > 0.9
    # voxels well inside the hole: empty where the hole is, filled on a slice without one
    near = np.hypot(-160.0 + 8.0 * np.arange(32)[None, :] - LIVER_CENTRE[0],
                    -160.0 + 8.0 * np.arange(32)[:, None] - LIVER_CENTRE[1]) < HOLE_RADIUS - 6
    assert near.sum() >= 4
    assert not array[list(HOLE_SLICES)][:, near].any()
    assert array[4][near].all()
    outside = [k for k in range(SHAPE[0]) if k not in LIVER_SLICES]
    assert not array[outside].any()


def test_rtstruct_lungs_lie_on_their_slices(ct, rtstruct):
    folder, image = ct
    array = sitk.GetArrayFromImage(read_mask_source(rtstruct, "Lungs", image, folder))
    assert all(array[k].sum() > 10 for k in LUNG_SLICES)
    assert not array[len(LUNG_SLICES):].any()


def test_rtstruct_on_a_nifti_ct_goes_by_geometry_alone(tmp_path: Path, ct, rtstruct):
    """A CT converted to NIfTI keeps no UIDs: the contours are placed by patient mm."""
    _, image = ct
    write_image(image, tmp_path / "ct.nii")
    mask = read_mask_source(rtstruct, "Liver", read_image(tmp_path / "ct.nii"),
                            tmp_path / "ct.nii")
    assert dice(sitk.GetArrayFromImage(mask).astype(bool), liver_truth(image).astype(bool)) > 0.9


def test_seg_round_trips_exactly(tmp_path: Path, ct):
    folder, image = ct
    truth = seg_truth()
    seg = write_seg(tmp_path / "seg.dcm", folder, truth)
    for name, expected in truth.items():
        mask = read_mask_source(seg, name, image, folder)
        assert np.array_equal(sitk.GetArrayFromImage(mask), expected), name
        assert mask.GetOrigin() == image.GetOrigin()
    single = write_seg(tmp_path / "liver_seg.dcm", folder, {"Liver": truth["Liver"]})
    mask = read_mask_source(single, None, image, folder)  # one segment: no label needed
    assert np.array_equal(sitk.GetArrayFromImage(mask), truth["Liver"])


def test_a_missing_structure_lists_the_names_present(tmp_path: Path, ct, rtstruct):
    folder, image = ct
    with pytest.raises(ImageError, match=r"rt\.dcm: no ROI named 'Spleen' in the RTSTRUCT "
                                         r"\(present: \['Liver', 'Lungs'\]\)"):
        read_mask_source(rtstruct, "Spleen", image, folder)
    with pytest.raises(ImageError, match=r"holds 2 ROIs; name one as rt\.dcm::NAME"):
        read_mask_source(rtstruct, None, image, folder)
    seg = write_seg(tmp_path / "seg.dcm", folder, seg_truth())
    with pytest.raises(ImageError, match=r"seg\.dcm: no segment named 'liver' in the DICOM-SEG "
                                         r"\(present: \['Liver', 'Lungs'\]\)"):
        read_mask_source(seg, "liver", image, folder)


def test_a_label_needs_an_rtstruct_or_seg(tmp_path: Path, ct):
    folder, image = ct
    write_image(sitk.GetImageFromArray(liver_truth(image)), tmp_path / "liver.nii")
    with pytest.raises(ImageError, match=r"liver\.nii: '::Liver' names an ROI or segment, but "
                                         r"the file is not DICOM; only an RTSTRUCT or a "
                                         r"DICOM-SEG holds them"):
        read_mask_source(tmp_path / "liver.nii", "Liver", image, folder)
    a_slice = sorted(folder.iterdir())[0]
    with pytest.raises(ImageError, match=r"slice000\.dcm: .* the file is a DICOM CT object; only"
                                         r" an RTSTRUCT or a DICOM-SEG holds them"):
        read_mask_source(a_slice, "Liver", image, folder)


def test_contours_of_another_scan_are_refused(tmp_path: Path, ct):
    folder, image = ct
    other_frame = write_rtstruct(tmp_path / "a.dcm", {"Liver": liver_contours()},
                                 frame_uid="1.2.3.4")
    with pytest.raises(ImageError, match=r"a\.dcm: the RTSTRUCT refers to frame of reference "
                                         r"\['1\.2\.3\.4'\], but its CT is in 1\.2\.826"):
        read_mask_source(other_frame, "Liver", image, folder)
    other_series = write_rtstruct(tmp_path / "b.dcm", {"Liver": liver_contours()},
                                  series_uid="1.2.3.5")
    with pytest.raises(ImageError, match=r"b\.dcm: the RTSTRUCT refers to series \['1\.2\.3\.5'"
                                         r"\], but its CT is series 1\.2\.826"):
        read_mask_source(other_series, "Liver", image, folder)
    between = write_rtstruct(tmp_path / "c.dcm", {"Liver": [ring(LIVER_CENTRE, LIVER_RADII,
                                                                 -95.0)]})
    with pytest.raises(ImageError, match=r"c\.dcm: a contour of Liver at z = -95\.0 mm is not "
                                         r"on a slice of its CT"):
        read_mask_source(between, "Liver", image, folder)
    seg = write_seg(tmp_path / "seg.dcm", folder, seg_truth())
    other = write_ct_series(tmp_path / "other", frame_uid="1.2.3.6")
    with pytest.raises(ImageError, match=r"seg\.dcm: the DICOM-SEG refers to frame of reference"):
        read_mask_source(seg, "Liver", other, tmp_path / "other")


def test_a_seg_on_other_voxels_is_refused(tmp_path: Path, ct):
    folder, _ = ct
    seg = write_seg(tmp_path / "seg.dcm", folder, seg_truth())
    finer = write_ct_series(tmp_path / "finer", spacing_xyz=(4.0, 4.0, 10.0))
    with pytest.raises(ImageError, match=r"seg\.dcm: the segment's voxels are not the CT's "
                                         r"\(spacing \(10\.0, 8\.0, 8\.0\) mm"):
        read_mask_source(seg, "Liver", finer, tmp_path / "finer")
    shifted = write_ct_series(tmp_path / "shifted", origin_xyz=(-160.0, -160.0, -40.0))
    with pytest.raises(ImageError, match=r"seg\.dcm: segment Liver reaches beyond its CT"):
        read_mask_source(seg, "Liver", shifted, tmp_path / "shifted")


def write_manifest(folder: Path, ct_folder: Path, rows: int = 1) -> Path:
    """A manifest whose CECT liver is an RTSTRUCT ROI of its DICOM CECT, and whose nCECT lungs
    are an RTSTRUCT ROI drawn on a NIfTI nCECT."""
    ncect, ncect_liver = tiny_ct(shape=SHAPE, seed=1)
    write_image(ncect, folder / "ncect.nii")
    write_image(ncect_liver, folder / "ncect_liver.nii")
    write_rtstruct(folder / "rt.dcm", {"Liver": liver_contours(), "Lungs": lung_contours()})
    write_rtstruct(folder / "rt_ncect.dcm", {"Lungs": lung_contours()})
    path = folder / "manifest.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient_id", "cect", "cect_liver", "ncect", "ncect_liver",
                         "ncect_lungs"])
        for index in range(1, rows + 1):
            writer.writerow([f"M{index:03d}", ct_folder.name, "rt.dcm::Liver", "ncect.nii",
                             "ncect_liver.nii", "rt_ncect.dcm::Lungs"])
    return path


def test_a_manifest_row_with_an_rtstruct_standardizes(tmp_path: Path, ct):
    folder, image = ct
    (row,) = read_manifest(write_manifest(tmp_path, folder))
    assert row.paths["cect_liver"] == tmp_path / "rt.dcm"
    assert row.labels == {"cect_liver": "Liver", "ncect_lungs": "Lungs"}
    record = standardize_h108(row, tmp_path / "out")
    assert record["sources"]["cect_liver"] == f"{tmp_path / 'rt.dcm'}::Liver"
    assert {"cect_liver", "ncect_lungs"} <= set(record["files"])
    written = read_image(image_file(str(tmp_path / "out"), "cect_liver"))
    expected = read_mask_source(tmp_path / "rt.dcm", "Liver", image, folder)
    assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(expected))
    assert dice(sitk.GetArrayFromImage(written).astype(bool),
                liver_truth(image).astype(bool)) > 0.9
    lungs = read_image(image_file(str(tmp_path / "out"), "ncect_lungs"))
    assert lungs.GetOrigin() == read_image(tmp_path / "ncect.nii").GetOrigin()
    assert sitk.GetArrayFromImage(lungs)[list(LUNG_SLICES)].sum() > 30


def test_the_manifest_checks_the_file_before_the_label(tmp_path: Path, ct):
    folder, _ = ct
    path = write_manifest(tmp_path, folder)
    path.write_text(path.read_text().replace("rt.dcm::Liver", "missing.dcm::Liver"))
    with pytest.raises(ManifestError, match=r"line 2: column 'cect_liver' points to "
                                            r".*missing\.dcm, which does not exist"):
        read_manifest(path)
    path.write_text(path.read_text().replace(",ncect.nii,", ",ncect.nii::CT,"))
    with pytest.raises(ManifestError, match=r"line 2: column 'ncect': 'ncect\.nii::CT': '::' "
                                            r"names a structure"):
        read_manifest(path, check_files=())


def test_the_cli_takes_path_and_label(tmp_path: Path, ct, capsys):
    folder, image = ct
    (row,) = read_manifest(write_manifest(tmp_path, folder))
    sources = [f"{name}={text}" for name, text in row.sources().items()]
    assert data_main(["standardize-h108", "--patient", "M001", "--sources", *sources,
                      "--out", str(tmp_path / "out")]) == 0
    written = read_image(image_file(str(tmp_path / "out"), "cect_liver"))
    assert dice(sitk.GetArrayFromImage(written).astype(bool),
                liver_truth(image).astype(bool)) > 0.9
    assert data_main(["standardize-h108", "--patient", "M001", "--sources",
                      *[s.replace("::Liver", "::Spleen") for s in sources],
                      "--out", str(tmp_path / "bad")]) == 2
    assert "no ROI named 'Spleen'" in capsys.readouterr().err


def test_memory_counts_a_structure_file_as_no_voxels(rtstruct):
    assert memory.header_of(rtstruct)[0] == 0


def test_the_workflow_standardizes_a_manifest_with_rtstruct_masks(tmp_path: Path, ct):
    """The rule's input is the file alone, `path::label` reaches the CLI quoted."""
    folder, _ = ct
    manifest = write_manifest(tmp_path, folder, rows=6)
    configfile = tmp_path / "dicom.yaml"
    configfile.write_text(yaml.safe_dump({"experiment": "dicom", "scale": "smoke",
                                          "cohort": {"source": "manifest",
                                                     "manifest": str(manifest)}}))
    target = "results/dicom/data/h108/M001/case.json"
    result = run_snakemake(tmp_path, target, "--configfile", str(configfile), timeout=600)
    logs = "\n".join(p.read_text() for p in tmp_path.rglob("logs/**/*.log"))
    assert result.returncode == 0, result.stderr[-3000:] + logs[-3000:]
    case = json.loads((tmp_path / target).read_text())
    assert case["sources"]["cect_liver"].endswith("rt.dcm::Liver")
    assert re.search(r"standardize_h108\s+1", result.stdout + result.stderr)
