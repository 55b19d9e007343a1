"""Real-data adapters: MSD layout and H108 manifests with NIfTI, NRRD, MHA and DICOM inputs."""

import csv
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import PHI, ROOT, tiny_ct, write_case, write_dicom_series

from liverbench.data.__main__ import make_pair, preprocess_case
from liverbench.data.adapters import (
    ManifestError,
    msd_cases,
    read_manifest,
    standardize_h108,
    standardize_msd,
)
from liverbench.data.io import ImageError, read_image, same_geometry
from liverbench.data.prealign import Settings as PrealignSettings
from liverbench.data.preprocess import WorkingGrid
from liverbench.layout import CASE_FILES, image_file


def write_manifest(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def mixed_formats(tmp_path: Path) -> Path:
    """A manifest whose CECT is a DICOM series, nCECT NRRD, masks MHA/NIfTI, relative paths."""
    src = write_case(tmp_path / "src")
    raw = tmp_path / "raw"
    raw.mkdir()
    write_dicom_series(read_image(image_file(str(src), "cect")), raw / "cect_dicom")
    sitk.WriteImage(sitk.ReadImage(image_file(str(src), "ncect")), str(raw / "ncect.nrrd"))
    liver = sitk.ReadImage(image_file(str(src), "ncect_liver"))
    sitk.WriteImage(liver, str(raw / "ncect_liver.mha"))
    row = {
        "patient_id": "H001",
        "cect": "raw/cect_dicom",
        "cect_liver": "src/cect_liver.nii",
        "ncect": "raw/ncect.nrrd",
        "ncect_liver": "raw/ncect_liver.mha",
        "spect": "src/spect.nii",
        "ncect_lungs": "src/ncect_lungs.nii",
        "split": "test",
    }
    write_manifest(tmp_path / "manifest.csv", [row])
    return tmp_path / "manifest.csv"


def test_manifest_with_dicom_nrrd_mha(mixed_formats: Path, tmp_path: Path):
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    (row,) = read_manifest(mixed_formats)
    assert row.split == "test"
    record = standardize_h108(row, tmp_path / "out" / "H001")
    assert set(record["files"]) == {
        "cect", "cect_liver", "ncect", "ncect_liver", "spect", "ncect_lungs"
    }
    out = tmp_path / "out" / "H001"
    cect = read_image(image_file(str(out), "cect"))
    source = read_image(image_file(str(tmp_path / "src"), "cect"))
    assert same_geometry(cect, source)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(cect), sitk.GetArrayFromImage(source))
    assert cect.GetPixelID() == sitk.sitkInt16
    # inputs are never modified
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())


def test_manifest_errors_name_file_line_and_column(tmp_path: Path):
    write_case(tmp_path / "c")
    base = {
        "patient_id": "A", "cect": "c/cect.nii", "cect_liver": "c/cect_liver.nii",
        "ncect": "c/ncect.nii", "ncect_liver": "c/ncect_liver.nii",
    }
    manifest = tmp_path / "m.csv"
    write_manifest(manifest, [base, {**base, "patient_id": "B", "ncect": "c/missing.nii.gz"}])
    with pytest.raises(ManifestError, match=r"m\.csv, line 3: column 'ncect' points to .*missing"):
        read_manifest(manifest)
    # one patient's job does not depend on another patient's files
    assert [r.patient_id for r in read_manifest(manifest, check_files=["A"])] == ["A", "B"]
    write_manifest(manifest, [base, base])
    with pytest.raises(ManifestError, match="duplicate patient_id"):
        read_manifest(manifest)
    write_manifest(manifest, [{**base, "patient_id": "A__B"}])
    with pytest.raises(ManifestError, match="'A__B' is not a safe id"):
        read_manifest(manifest)
    write_manifest(manifest, [{**base, "colour": "red"}])
    with pytest.raises(ManifestError, match="unknown column"):
        read_manifest(manifest)


@pytest.mark.parametrize("patient", ["H001$(touch PWNED)", "A_", "A b", ".hidden", "a;b", "ü1"])
def test_unsafe_patient_ids_are_refused_at_ingest(tmp_path: Path, patient: str):
    """Ids become file names, pair ids and words of shell commands: only safe ones pass, and
    nothing runs (issue #15: an id with $(...) ran its command; one ending in '_' broke the
    '__' pair separator)."""
    write_case(tmp_path / "c")
    row = {"patient_id": patient, "cect": "c/cect.nii", "cect_liver": "c/cect_liver.nii",
           "ncect": "c/ncect.nii", "ncect_liver": "c/ncect_liver.nii"}
    write_manifest(tmp_path / "m.csv", [row])
    with pytest.raises(ManifestError, match=r"m\.csv, line 2: patient_id .* is not a safe id"):
        read_manifest(tmp_path / "m.csv")
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


def test_manifest_encodings_and_ids_differing_in_case(tmp_path: Path):
    """A spreadsheet's UTF-8 with BOM reads; Latin-1 is a named error; ids differing only by
    letter case collide on macOS and Windows and are refused."""
    write_case(tmp_path / "c")
    row = {"patient_id": "A", "cect": "c/cect.nii", "cect_liver": "c/cect_liver.nii",
           "ncect": "c/ncect.nii", "ncect_liver": "c/ncect_liver.nii"}
    manifest = tmp_path / "m.csv"
    write_manifest(manifest, [row])
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())
    assert [r.patient_id for r in read_manifest(manifest)] == ["A"]
    manifest.write_bytes(manifest.read_bytes()[3:].replace(b"c/cect.nii", b"c/c\xe9ct.nii"))
    with pytest.raises(ManifestError, match=r"m\.csv: not UTF-8 text .*save the table as UTF-8"):
        read_manifest(manifest)
    write_manifest(manifest, [row, {**row, "patient_id": "a"}])
    with pytest.raises(ManifestError, match="duplicate patient_id 'a' .same as 'A' but for letter"):
        read_manifest(manifest)


def test_mask_on_other_grid_is_refused(tmp_path: Path):
    case = write_case(tmp_path / "c")
    _, other = tiny_ct(shape=(10, 20, 20))
    sitk.WriteImage(other, str(case / "ncect_liver.nii"))
    write_manifest(tmp_path / "m.csv", [{
        "patient_id": "A", "cect": "c/cect.nii", "cect_liver": "c/cect_liver.nii",
        "ncect": "c/ncect.nii", "ncect_liver": "c/ncect_liver.nii",
    }])
    (row,) = read_manifest(tmp_path / "m.csv")
    with pytest.raises(ImageError, match=r"ncect_liver\.nii: mask geometry"):
        standardize_h108(row, tmp_path / "out")


def write_msd(root: Path, n: int = 2) -> None:
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i in range(n):
        image, liver = tiny_ct(seed=i)
        label = sitk.GetArrayFromImage(liver)
        label[label.shape[0] // 2, 15:18, 14:17] = 2  # a tumour inside
        label_image = sitk.GetImageFromArray(label)
        label_image.CopyInformation(image)
        sitk.WriteImage(image, str(root / "imagesTr" / f"liver_{i}.nii.gz"))
        sitk.WriteImage(label_image, str(root / "labelsTr" / f"liver_{i}.nii.gz"))
        training.append({"image": f"./imagesTr/liver_{i}.nii.gz",
                         "label": f"./labelsTr/liver_{i}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({"name": "Liver", "training": training}))


def test_msd_layout(tmp_path: Path):
    root = tmp_path / "Task03_Liver"
    write_msd(root)
    assert msd_cases(root) == ["liver_0", "liver_1"]
    standardize_msd(root, "liver_1", tmp_path / "out")
    liver = sitk.GetArrayFromImage(read_image(image_file(str(tmp_path / "out"), "cect_liver")))
    label = sitk.GetArrayFromImage(read_image(root / "labelsTr" / "liver_1.nii.gz"))
    np.testing.assert_array_equal(liver, (label > 0).astype(np.uint8))

    label_path = root / "labelsTr" / "liver_0.nii.gz"
    bad = sitk.ReadImage(str(label_path)) * 3
    sitk.WriteImage(bad, str(label_path))
    with pytest.raises(ImageError, match=r"liver_0\.nii\.gz: MSD liver labels must be 0, 1, 2"):
        standardize_msd(root, "liver_0", tmp_path / "out0")


def test_cli_reports_errors_without_traceback(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "liverbench.data", "standardize-h108", "--patient", "A",
         "--sources", f"cect={tmp_path / 'none.nii.gz'}", "cect_liver=a", "ncect=b",
         "ncect_liver=c", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("python -m liverbench.data standardize-h108: ")
    assert "none.nii.gz" in result.stderr
    assert "Traceback" not in result.stderr


def test_dicom_series_with_a_missing_slice_is_refused(tmp_path: Path):
    """ITK stacked a series with one slice missing at an averaged spacing (19 slices at
    10.56 mm instead of 20 at 10 mm) and only warned; the error surfaced later, blaming the
    mask (issue #15)."""
    image, _ = tiny_ct(shape=(20, 24, 24), spacing_xyz=(8.0, 8.0, 10.0))
    write_dicom_series(image, tmp_path / "series")
    assert read_image(tmp_path / "series").GetSize() == (24, 24, 20)
    (tmp_path / "series" / "slice007.dcm").unlink()
    with pytest.raises(ImageError, match=r"series: DICOM slices are not evenly spaced: 20\.00 mm "
                                         r"between slice006\.dcm and slice008\.dcm, 10\.00 mm"):
        read_image(tmp_path / "series")



def test_no_patient_identifier_from_dicom_reaches_an_output(mixed_formats: Path, tmp_path: Path):
    """A DICOM series carrying the patient's name, ID, birth date and accession number: none
    of them reaches the standardized case, its record, the working grids or a pair (issue #15)."""
    series = tmp_path / "raw" / "cect_dicom"
    image = read_image(series)
    shutil.rmtree(series)
    write_dicom_series(image, series, extra=PHI)
    assert PHI["0010|0010"].encode() in next(series.iterdir()).read_bytes()
    (row,) = read_manifest(mixed_formats)
    out = tmp_path / "out"
    standardize_h108(row, out / "H001")
    grid = WorkingGrid((16, 24, 24), (12.0, 12.0, 12.0), (-160.0, 240.0))
    preprocess_case(out / "H001", out / "prep", grid)
    make_pair(*(Path(image_file(str(out / "H001"), n)) for n in CASE_FILES), out / "pair", grid,
              PrealignSettings(mode="centroid"), out / "pair" / "prealign.tfm")
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) > 10
    for path in written:
        content = path.read_bytes()
        if path.suffix == ".gz":
            content = gzip.decompress(content)
        for value in PHI.values():
            assert value.encode() not in content, f"{value} in {path}"
