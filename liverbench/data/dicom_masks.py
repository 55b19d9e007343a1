"""Masks from clinical DICOM: an RTSTRUCT ROI or a DICOM-SEG segment, on its CT's grid.

A treatment-planning system or a PACS exports liver and lung contours as DICOM RTSTRUCT or
DICOM-SEG, not as label images. A manifest mask column names one structure of such a file as
`path::label` (a file with one structure may omit `::label`); the structure is rasterised onto
the geometry of the row's CT and then checked like any mask (`liverbench.data.io.check_mask`).

RTSTRUCT is read with pydicom and filled with scikit-image (rt-utils would pull OpenCV, which
needs libGL, absent on a bare server); DICOM-SEG is read with highdicom. Both refer to the scan
they were drawn on: where the CT is a DICOM series, its frame of reference and series must be
the ones the file refers to, so contours of another scan fail here, not as a wrong mask later.

pydicom, highdicom and scikit-image are imported where they are used: the workflow imports
this module to parse the DAG (`source_file`) and every data job through the adapters; only a
DICOM mask pays their import time (half a second for highdicom).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from liverbench.data.io import ImageError, check_mask, geometry_summary, read_mask
from liverbench.data.preprocess import grid_of

LABEL_SEPARATOR = "::"
STRUCTURE_MODALITIES = ("RTSTRUCT", "SEG")


def split_source(text: str) -> tuple[str, str | None]:
    """'rt.dcm::Liver' -> ('rt.dcm', 'Liver'); a plain path -> (path, None). The file is what
    Snakemake tracks and the manifest checks; the label selects a structure inside it."""
    path, separator, label = str(text).partition(LABEL_SEPARATOR)
    if not separator:
        return path, None
    if not path or not label.strip():
        raise ImageError(f"{text!r}: expected PATH{LABEL_SEPARATOR}LABEL (an ROI or segment "
                         "name after the file)")
    return path, label.strip()


def source_file(text: str) -> str:
    """The file of a source (`path::label` -> `path`): a rule's input, a header to size."""
    return split_source(text)[0]


def join_source(path: str | Path, label: str | None) -> str:
    """The inverse of `split_source`: how a source is written in a manifest or `--sources`."""
    return str(path) if label is None else f"{path}{LABEL_SEPARATOR}{label}"


def dicom_modality(path: Path) -> str | None:
    """The Modality of a DICOM file (e.g. 'RTSTRUCT', 'SEG', 'CT'); None when `path` is not a
    DICOM file (a NIfTI, a series folder). Reads the header only."""
    if not path.is_file():
        return None
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
    except (InvalidDicomError, OSError, EOFError):
        return None
    return str(header.get("Modality", "")) or "without a Modality"


def read_mask_source(
    path: Path, label: str | None, ct: sitk.Image, ct_path: Path
) -> sitk.Image:
    """A mask column's file as a checked uint8 0/1 mask in the geometry of `ct`: an RTSTRUCT
    ROI or DICOM-SEG segment rasterised onto it, any other file read as a mask image."""
    path = Path(path)
    modality = dicom_modality(path)
    if modality not in STRUCTURE_MODALITIES:
        if label is None:
            return read_mask(path, ct, ct_path)
        kind = f"a DICOM {modality} object" if modality else "not DICOM"
        raise ImageError(f"{path}: '{LABEL_SEPARATOR}{label}' names an ROI or segment, but the "
                         f"file is {kind}; only an RTSTRUCT or a DICOM-SEG holds them (an image "
                         f"mask takes no '{LABEL_SEPARATOR}' suffix)")
    reference = _ct_references(ct_path)
    if modality == "RTSTRUCT":
        mask = _rtstruct_mask(path, label, ct, reference)
    else:
        mask = _seg_mask(path, label, ct, reference)
    return check_mask(mask, join_source(path, label), ct, ct_path)


def _ct_references(ct_path: Path) -> tuple[str | None, str | None]:
    """(frame of reference UID, series instance UID) of a CT given as a DICOM series folder;
    (None, None) for an image file, which keeps neither: then only geometry links the two."""
    if not ct_path.is_dir():
        return None, None
    import pydicom
    from pydicom.errors import InvalidDicomError

    for file in sorted(p for p in ct_path.iterdir() if p.is_file()):
        try:
            header = pydicom.dcmread(file, stop_before_pixels=True, specific_tags=[
                "FrameOfReferenceUID", "SeriesInstanceUID"])
        except (InvalidDicomError, OSError, EOFError):
            continue
        if "SeriesInstanceUID" in header:  # a slice, not a DICOMDIR or other file beside them
            return header.get("FrameOfReferenceUID"), str(header.SeriesInstanceUID)
    return None, None


def _check_references(
    path: Path, kind: str, frames: set[str], series: set[str],
    reference: tuple[str | None, str | None],
) -> None:
    """The file must refer to the CT it is paired with, where both say which scan that is."""
    frame, ct_series = reference
    if frame and frames and frame not in frames:
        raise ImageError(f"{path}: the {kind} refers to frame of reference {sorted(frames)}, "
                         f"but its CT is in {frame} (contours of another scan?)")
    if ct_series and series and ct_series not in series:
        raise ImageError(f"{path}: the {kind} refers to series {sorted(series)}, but its CT is "
                         f"series {ct_series} (contours of another scan?)")


def _pick(path: Path, kind: str, what: str, names: dict[str, int], label: str | None) -> int:
    """The number of the structure `label` names (or of the only one); errors list the names."""
    if label is None:
        if len(names) == 1:
            return next(iter(names.values()))
        raise ImageError(f"{path}: the {kind} holds {len(names)} {what}s; name one as "
                         f"{path.name}{LABEL_SEPARATOR}NAME (present: {sorted(names)})")
    if label not in names:
        raise ImageError(f"{path}: no {what} named {label!r} in the {kind} (present: "
                         f"{sorted(names)})")
    return names[label]


def _rtstruct_mask(
    path: Path, label: str | None, ct: sitk.Image, reference: tuple[str | None, str | None]
) -> sitk.Image:
    """Fill each closed planar contour of the ROI on its CT slice; contours of one ROI on one
    slice combine by XOR, so an inner contour is a hole. Contour points (patient mm) go to CT
    indices through the CT's own geometry; in-plane, what lies outside the CT is clipped."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from skimage.draw import polygon

    try:
        data = pydicom.dcmread(path)
        rois = {str(item.ROIName).strip(): int(item.ROINumber)
                for item in data.StructureSetROISequence}
        number = _pick(path, "RTSTRUCT", "ROI", rois, label)
        roi = next(i for i in data.StructureSetROISequence if int(i.ROINumber) == number)
        frames = {str(roi.ReferencedFrameOfReferenceUID)} if "ReferencedFrameOfReferenceUID" \
            in roi else set()
        series = {str(s.SeriesInstanceUID)
                  for f in data.get("ReferencedFrameOfReferenceSequence", [])
                  for study in f.get("RTReferencedStudySequence", [])
                  for s in study.get("RTReferencedSeriesSequence", [])}
        contours = [c for item in data.get("ROIContourSequence", [])
                    if int(item.ReferencedROINumber) == number
                    for c in item.get("ContourSequence", [])
                    if c.get("ContourGeometricType") == "CLOSED_PLANAR"]
        points = [np.asarray(c.ContourData, dtype=float).reshape(-1, 3) for c in contours]
    except ImageError:
        raise
    except (AttributeError, KeyError, ValueError, InvalidDicomError) as error:
        raise ImageError(f"{path}: not a usable RTSTRUCT ({error})") from error
    _check_references(path, "RTSTRUCT", frames, series, reference)
    width, height, depth = ct.GetSize()
    array = np.zeros((depth, height, width), dtype=np.uint8)
    for contour in points:
        index = np.array([ct.TransformPhysicalPointToContinuousIndex(p) for p in contour.tolist()])
        z = int(np.rint(index[:, 2].mean()))
        if np.abs(index[:, 2] - z).max() > 0.25 or not 0 <= z < depth:
            raise ImageError(f"{path}: a contour of {label or 'the ROI'} at z = "
                             f"{contour[0, 2]:.1f} mm is not on a slice of its CT (another scan, "
                             "or a slab beyond the CT?)")
        rows, columns = polygon(index[:, 1], index[:, 0], shape=(height, width))
        array[z, rows, columns] ^= 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(ct)
    return mask


def _seg_mask(
    path: Path, label: str | None, ct: sitk.Image, reference: tuple[str | None, str | None]
) -> sitk.Image:
    """The segment as a volume placed voxel for voxel on the CT's grid (axes permuted, flipped,
    padded: no resampling); a SEG on other voxels, or reaching beyond the CT, is an error.
    A FRACTIONAL segment counts where it is at least half its maximum."""
    import highdicom

    try:
        seg = highdicom.seg.segread(path)
        names = {str(seg.get_segment_description(n).segment_label).strip(): n
                 for n in seg.segment_numbers}
        series = {str(s.SeriesInstanceUID) for s in seg.get("ReferencedSeriesSequence", [])}
        frames = {str(seg.FrameOfReferenceUID)} if "FrameOfReferenceUID" in seg else set()
    except (AttributeError, KeyError, ValueError, RuntimeError) as error:
        raise ImageError(f"{path}: not a usable DICOM-SEG ({error})") from error
    number = _pick(path, "DICOM-SEG", "segment", names, label)
    _check_references(path, "DICOM-SEG", frames, series, reference)
    try:
        volume = seg.get_volume(segment_numbers=[number], rescale_fractional=False,
                                dtype=np.uint8).squeeze_channel()
    except (AttributeError, KeyError, ValueError, RuntimeError) as error:
        raise ImageError(f"{path}: segment {label or number} is not a volume ({error})"
                         ) from error
    fractional = seg.segmentation_type == highdicom.seg.SegmentationTypeValues.FRACTIONAL
    threshold = (int(seg.MaximumFractionalValue) + 1) // 2 if fractional else 1
    volume = volume.with_array((volume.array >= threshold).astype(np.uint8))
    try:
        if not np.allclose(sorted(volume.spacing), sorted(ct.GetSpacing()), atol=1e-3):
            # match_geometry would subsample a finer SEG by whole steps
            raise RuntimeError(f"spacing {tuple(round(s, 3) for s in volume.spacing)} mm")
        placed = volume.match_geometry(highdicom.Volume.from_simpleitk(grid_of(ct)), tol=1e-3)
    except RuntimeError as error:
        raise ImageError(f"{path}: the segment's voxels are not the CT's ({error}; CT: "
                         f"{geometry_summary(ct)})") from error
    total, kept = int(volume.array.sum()), int(placed.array.sum())
    if kept != total:
        raise ImageError(f"{path}: segment {label or number} reaches beyond its CT "
                         f"({total - kept} of its {total} voxels outside)")
    mask = placed.to_simpleitk()
    mask.CopyInformation(ct)  # the same grid, matched within tolerance: the CT's exact numbers
    return mask
