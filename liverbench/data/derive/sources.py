"""Where derived patients come from: contrast CTs with liver masks, in one of two layouts.

- an MSD Task03_Liver folder (`dataset.json`, `imagesTr/`, `labelsTr/`; label 1 liver,
  2 tumour), as MSD and LiTS are published;
- a CSV with at least `patient_id,cect,cect_liver` (optional `cect_tumour`, a tumour mask;
  other columns ignored), paths relative to the CSV's folder; images in any format
  `liverbench.data.io.read_image` reads (NIfTI, NRRD, MHA, a DICOM series folder).

Listing a source (`source_cases`) reads only dataset.json or the CSV, never an image: a
workflow can build its job list from it cheaply. A derived patient's id is the source's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from liverbench.data.adapters import (
    ManifestError,
    check_unique_ids,
    checked_patient_id,
    msd_cases,
    read_table,
    table_path,
)
from liverbench.data.io import (
    ImageError,
    geometry_summary,
    read_image,
    read_mask,
    same_geometry,
)

CSV_COLUMNS = ("patient_id", "cect", "cect_liver")
CSV_OPTIONAL = ("cect_tumour",)


@dataclass(frozen=True)
class SourceCase:
    """One source CT in memory: the CECT as read, its liver mask (uint8 0/1) and, where the
    source has one, a tumour mask; `paths` names the files, for the truth record."""

    case_id: str
    cect: sitk.Image
    liver: sitk.Image
    tumour: sitk.Image | None = None
    paths: dict[str, str] = field(default_factory=dict)


def source_cases(source: str | os.PathLike, patients: int | None = None) -> list[str]:
    """The derived patient ids of `source`, sorted; the first `patients` if given."""
    source = Path(source)
    ids = sorted(_csv_rows(source)) if _is_csv(source) else _msd_ids(source)
    if not ids:
        raise ManifestError(f"{_listing(source)}: no cases")
    if patients is not None:
        if patients < 1:
            raise ManifestError(f"patients must be at least 1, got {patients}")
        if patients > len(ids):
            raise ManifestError(
                f"{_listing(source)}: {patients} patients asked for, {len(ids)} available"
            )
        ids = ids[:patients]
    return ids


def source_files(source: str | os.PathLike, case_id: str) -> list[str]:
    """The files (or DICOM folders) a derived patient is made from, without reading them: a
    workflow's inputs, so that a changed source image re-derives its patient."""
    source = Path(source)
    if _is_csv(source):
        rows = _csv_rows(source)
        if case_id not in rows:
            raise ManifestError(f"{source}: no patient_id {case_id!r}")
        return [str(source)] + [str(path) for path in rows[case_id].values()]
    return [str(source / "dataset.json")] + [
        str(source / folder / f"{case_id}.nii.gz") for folder in ("imagesTr", "labelsTr")
    ]


def read_case(source: str | os.PathLike, case_id: str) -> SourceCase:
    """Read and check one source case (masks binary, on the CECT's grid)."""
    source = Path(source)
    if _is_csv(source):
        rows = _csv_rows(source)
        if case_id not in rows:
            raise ManifestError(f"{source}: no patient_id {case_id!r}")
        return _read_csv_case(case_id, rows[case_id])
    if case_id not in _msd_ids(source):
        raise ManifestError(f"{source / 'dataset.json'}: no case {case_id!r}")
    return _read_msd_case(source, case_id)


# ------------------------------------------------------------------------------ listing


def _is_csv(source: Path) -> bool:
    if not source.exists():
        raise ManifestError(f"{source}: not found; expected an MSD folder or a CSV file")
    if source.is_dir():
        return False
    if source.suffix.lower() != ".csv":
        raise ManifestError(f"{source}: expected an MSD folder (with dataset.json) or a .csv")
    return True


def _listing(source: Path) -> Path:
    return source if source.is_file() else source / "dataset.json"


def _msd_ids(root: Path) -> list[str]:
    ids = msd_cases(root)  # names a missing or malformed dataset.json
    for folder in ("imagesTr", "labelsTr"):
        if not (root / folder).is_dir():
            raise ManifestError(f"{root / folder}: not found; expected the MSD layout")
    return ids


def _csv_rows(path: Path) -> dict[str, dict[str, Path]]:
    """patient_id -> {column: absolute path} for the image columns given."""
    _, records = read_table(path, CSV_COLUMNS)
    rows: dict[str, dict[str, Path]] = {}
    for line, record in records:
        where = f"{path}, line {line}"
        case = checked_patient_id(record, where)
        check_unique_ids([*rows, case], where)
        rows[case] = {}
        for column in CSV_COLUMNS[1:] + CSV_OPTIONAL:
            value = (record.get(column) or "").strip()
            if not value and column in CSV_COLUMNS:
                raise ManifestError(f"{where}: column '{column}' is empty")
            if value:
                rows[case][column] = table_path(path, value)
    return rows


# ------------------------------------------------------------------------------ reading


def _read_csv_case(case_id: str, paths: dict[str, Path]) -> SourceCase:
    cect = read_image(paths["cect"])
    liver = read_mask(paths["cect_liver"], cect, paths["cect"])
    tumour = None
    if "cect_tumour" in paths:
        tumour = read_mask(paths["cect_tumour"], cect, paths["cect"], allow_empty=True)
    return SourceCase(case_id, cect, liver, tumour, {k: str(v) for k, v in paths.items()})


def _read_msd_case(root: Path, case_id: str) -> SourceCase:
    image_path = root / "imagesTr" / f"{case_id}.nii.gz"
    label_path = root / "labelsTr" / f"{case_id}.nii.gz"
    cect = read_image(image_path)
    label = read_image(label_path)
    array = sitk.GetArrayFromImage(label)
    values = set(np.unique(array).tolist())
    if not values <= {0, 1, 2} or values <= {0}:
        raise ImageError(f"{label_path}: expected MSD liver labels 0, 1, 2 with a liver; "
                         f"found {sorted(values)}")
    if not same_geometry(label, cect):
        raise ImageError(f"{label_path}: label geometry ({geometry_summary(label)}) differs "
                         f"from {image_path} ({geometry_summary(cect)})")
    liver, tumour = _binary(array > 0, label), None
    if 2 in values:
        tumour = _binary(array == 2, label)
    paths = {"cect": str(image_path), "label": str(label_path)}
    return SourceCase(case_id, cect, liver, tumour, paths)


def _binary(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    mask = sitk.GetImageFromArray(array.astype(np.uint8))
    mask.CopyInformation(reference)
    return mask
