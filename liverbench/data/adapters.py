"""Adapters from real data layouts to standardized cases (see docs/contracts.md).

Two layouts are read: the Medical Segmentation Decathlon Task03_Liver layout (pretraining),
and an H108-style manifest CSV, one row per patient, whose images may be NIfTI, NRRD, MHA
or DICOM series folders; a mask column may instead name a structure of an RTSTRUCT or a
DICOM-SEG file as `path::label` (liverbench.data.dicom_masks), rasterised onto its CT. Both
layouts are checked thoroughly (geometry, binary masks, empty masks) and written as NIfTI in
the original geometry; the inputs are only ever read.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from liverbench.data.dicom_masks import join_source, read_mask_source, split_source
from liverbench.data.io import (
    ImageError,
    geometry_summary,
    read_displacement,
    read_image,
    same_geometry,
    write_image,
    write_json,
)
from liverbench.data.preprocess import slab_starts
from liverbench.data.splits import PAIR_SEPARATOR, SPLITS
from liverbench.errors import InputError
from liverbench.layout import SAFE_ID_RULE, TRUTH_FILE, image_file, is_safe_id

REQUIRED_COLUMNS = ("patient_id", "cect", "cect_liver", "ncect", "ncect_liver")
# true_motion: a known mapping nCECT world -> CECT world (liverbench.layout.TRUTH_FILE), for
# simulated or otherwise known motion; registration error is scored against it.
OPTIONAL_COLUMNS = ("spect", "ncect_lungs", "true_motion", "split")
IMAGE_COLUMNS = ("cect", "cect_liver", "ncect", "ncect_liver", "spect", "ncect_lungs",
                 "true_motion")
# Each mask column and the CT it lies on. Only these may name a structure of an RTSTRUCT or
# DICOM-SEG file, `path::label` (docs/contracts.md, "Masks from clinical DICOM").
MASK_COLUMNS = {"cect_liver": "cect", "ncect_liver": "ncect", "ncect_lungs": "ncect"}


class ManifestError(InputError):
    """A manifest that cannot be used; the message names the file, row and column."""


@dataclass(frozen=True)
class ManifestRow:
    patient_id: str
    paths: dict[str, Path]  # column -> absolute path of the file, only for columns given
    split: str | None = None
    labels: dict[str, str] = field(default_factory=dict)  # mask column -> ROI or segment

    def sources(self) -> dict[str, str]:
        """column -> the source as a manifest cell writes it (`path::label` where a structure
        is named): what the workflow hands to standardize-h108 and the case record keeps."""
        return {column: join_source(path, self.labels.get(column))
                for column, path in self.paths.items()}


def read_manifest(path: str | Path, check_files: Iterable[str] | None = None) -> list[ManifestRow]:
    """Parse and check a manifest CSV; relative paths are relative to the CSV's folder.

    Every listed file must exist, for all patients or only those in `check_files` (a job
    that standardizes one patient must not depend on the others' files being there yet).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    columns, records = read_table(path, REQUIRED_COLUMNS)
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise ManifestError(
            f"{path}: unknown column(s) {unknown}; allowed: "
            f"{list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
        )
    checked = None if check_files is None else set(check_files)
    rows = [_parse_row(path, line, record, checked) for line, record in records]
    if not rows:
        raise ManifestError(f"{path}: no patients")
    check_unique_ids([row.patient_id for row in rows], str(path))
    return rows


def read_table(path: Path, required: Sequence[str]) -> tuple[list[str], list[tuple[int, dict]]]:
    """A CSV table's columns and its records with their line numbers; a missing required
    column is an error naming the file (the manifest, a derived cohort's source list)."""
    try:
        # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ManifestError(f"{path}: not UTF-8 text (byte {error.start}); save the table as "
                            "UTF-8 CSV") from error
    with io.StringIO(text, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        missing = [c for c in required if c not in columns]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {missing}; has {columns}")
        return columns, list(enumerate(reader, start=2))


def checked_patient_id(record: dict[str, str], where: str) -> str:
    """A row's patient_id, refused when empty or when it would break a path or a pair id."""
    patient = (record.get("patient_id") or "").strip()
    if not patient:
        raise ManifestError(f"{where}: empty patient_id")
    if not is_safe_id(patient):
        raise ManifestError(f"{where}: patient_id {patient!r} is not a safe id: {SAFE_ID_RULE}"
                            f" (ids become file names and pair ids joined by '{PAIR_SEPARATOR}')")
    return patient


def check_unique_ids(ids: Sequence[str], where: str) -> None:
    """Ids must differ in more than letter case: on a case-insensitive file system (macOS,
    Windows) 'p001' and 'P001' are one folder."""
    seen: dict[str, str] = {}
    for patient in ids:
        other = seen.setdefault(patient.lower(), patient)
        if other != patient or ids.count(patient) > 1:
            raise ManifestError(f"{where}: duplicate patient_id {patient!r}"
                                + (f" (same as {other!r} but for letter case)"
                                   if other != patient else ""))


def table_path(table: Path, value: str) -> Path:
    """A path given in a CSV table: absolute, or relative to the table's folder."""
    return Path(value) if Path(value).is_absolute() else table.parent / value


def column_source(column: str, text: str) -> tuple[str, str | None]:
    """A manifest cell (or a `--sources` PATH) as (file, label); a label selects a structure
    in an RTSTRUCT or DICOM-SEG file, so only a mask column takes one."""
    path, label = split_source(text)
    if label is not None and column not in MASK_COLUMNS:
        raise ManifestError(f"{text!r}: '::' names a structure in an RTSTRUCT or DICOM-SEG "
                            f"file, which only the mask columns {list(MASK_COLUMNS)} take")
    return path, label


def _parse_row(
    manifest: Path, line: int, record: dict[str, str], checked: set[str] | None
) -> ManifestRow:
    where = f"{manifest}, line {line}"
    patient = checked_patient_id(record, where)
    paths: dict[str, Path] = {}
    labels: dict[str, str] = {}
    for column in IMAGE_COLUMNS:
        value = (record.get(column) or "").strip()
        if not value:
            if column in REQUIRED_COLUMNS:
                raise ManifestError(f"{where}: column '{column}' is empty")
            continue
        try:
            file, label = column_source(column, value)
        except InputError as error:
            raise ManifestError(f"{where}: column '{column}': {error}") from None
        full = table_path(manifest, file)  # the file alone: `::label` is inside it
        if (checked is None or patient in checked) and not full.exists():
            raise ManifestError(
                f"{where}: column '{column}' points to {full}, which does not exist"
            )
        paths[column] = full
        if label is not None:
            labels[column] = label
    split = (record.get("split") or "").strip() or None
    if split is not None and split not in SPLITS:
        raise ManifestError(f"{where}: split {split!r} is not one of {SPLITS}")
    return ManifestRow(patient, paths, split, labels)


def as_hu(image: sitk.Image) -> sitk.Image:
    """CT as int16 HU (real exports come as int16, uint16 with rescale applied, or float):
    an int16 image as it is, others rounded and clipped slab by slab (no full-size float
    copies of a volume that may hold 600 million voxels)."""
    if image.GetPixelID() == sitk.sitkInt16:
        return image
    source = sitk.GetArrayViewFromImage(image)
    array = np.empty(source.shape, dtype=np.int16)
    starts, step = slab_starts(len(source), source[0].size)
    for z in starts:
        array[z:z + step] = np.clip(np.rint(source[z:z + step]), -32768, 32767)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out


def standardize_h108(row: ManifestRow, out_dir: str | Path) -> dict[str, str]:
    """Check one manifest patient and write its standardized case; returns what was written.

    One CT and its masks are held at a time, each image written as soon as it is checked:
    memory follows the largest scan, not the patient's sum (docs/speed.md, "The data steps
    on a real-size CT"). A mask given as an RTSTRUCT ROI or a DICOM-SEG segment is rasterised
    onto its CT first (liverbench.data.dicom_masks)."""
    out_dir = Path(out_dir)
    written = []

    def write(name: str, image: sitk.Image) -> None:
        write_image(image, image_file(str(out_dir), name))
        written.append(name)

    for phase in ("cect", "ncect"):
        ct = read_image(row.paths[phase])
        write(phase, as_hu(ct))
        for name in (n for n, of in MASK_COLUMNS.items() if of == phase and n in row.paths):
            write(name, read_mask_source(row.paths[name], row.labels.get(name), ct,
                                         row.paths[phase]))
        del ct
    if "spect" in row.paths:
        write("spect", sitk.Cast(read_image(row.paths["spect"]), sitk.sitkFloat32))
    if TRUTH_FILE in row.paths:
        write(TRUTH_FILE, sitk.Cast(read_displacement(row.paths[TRUTH_FILE]),
                                    sitk.sitkVectorFloat32))
    record = {
        "patient_id": row.patient_id,
        "files": sorted(written),
        "sources": row.sources(),
    }
    write_json(record, out_dir / "case.json")
    return record


def msd_cases(root: str | Path) -> list[str]:
    """Case ids (e.g. liver_0) of an MSD Task03_Liver folder, from its dataset.json."""
    root = Path(root)
    dataset = root / "dataset.json"
    if not dataset.is_file():
        raise ManifestError(f"{dataset}: not found; expected the MSD Task03_Liver layout")
    try:
        training = json.loads(dataset.read_text())["training"]
    except (json.JSONDecodeError, KeyError) as error:
        raise ManifestError(f"{dataset}: not an MSD dataset.json ({error})") from error
    cases = sorted(Path(item["image"]).name.split(".nii")[0] for item in training)
    unsafe = [case for case in cases if not is_safe_id(case)]
    if unsafe:
        raise ManifestError(f"{dataset}: case name(s) {unsafe[:5]} are not safe ids: "
                            f"{SAFE_ID_RULE}")
    return cases


def standardize_msd(root: str | Path, case: str, out_dir: str | Path) -> None:
    """MSD image + label (1 liver, 2 tumour) -> cect.nii.gz, cect_liver.nii.gz (label > 0)."""
    root, out_dir = Path(root), Path(out_dir)
    image_path = root / "imagesTr" / f"{case}.nii.gz"
    label_path = root / "labelsTr" / f"{case}.nii.gz"
    image = read_image(image_path)
    label = read_image(label_path)
    values = set(np.unique(sitk.GetArrayViewFromImage(label)).tolist())
    if not values <= {0, 1, 2}:
        raise ImageError(f"{label_path}: MSD liver labels must be 0, 1, 2; found {sorted(values)}")
    if values <= {0}:
        raise ImageError(f"{label_path}: label map is empty")
    liver = label > 0  # uint8 0/1, the label's geometry
    if not same_geometry(liver, image):
        raise ImageError(
            f"{label_path}: label geometry ({geometry_summary(label)}) differs from "
            f"{image_path} ({geometry_summary(image)})"
        )
    write_image(as_hu(image), image_file(str(out_dir), "cect"))
    write_image(liver, image_file(str(out_dir), "cect_liver"))
