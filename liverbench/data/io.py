"""Image IO with clear errors and atomic writes.

Every image in the project passes through here so that bad input fails early, with the
file and the problem named, and so that an interrupted run never leaves a half-written
output that a rerun would trust.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from liverbench.data.preprocess import grid_of, slab_starts
from liverbench.errors import InputError

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")

# SimpleITK uses every core by default; a Snakemake job (or Slurm task) sets OMP_NUM_THREADS
# to the threads it was given, and filters must keep to that budget too.
if os.environ.get("OMP_NUM_THREADS", "").isdigit():
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(os.environ["OMP_NUM_THREADS"])))


class ImageError(InputError):
    """An input image or mask that cannot be used; the message names the file."""


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix


def read_image(path: str | os.PathLike, *, allow_nan: bool = False) -> sitk.Image:
    """Read a 3-D image file or a DICOM series folder, refusing what is not a usable volume."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: file not found")
    if _suffix(path) in (".nii", ".nii.gz") and path.is_file():
        check_nifti_length(path)  # before ITK allocates what a (damaged) header declares
    try:
        if path.is_dir():
            image = _read_dicom_series(path)
        else:
            image = sitk.ReadImage(str(path))
    except ImageError:
        raise
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown"
        raise ImageError(f"{path}: cannot be read as an image ({first_line})") from error
    if image.GetDimension() != 3:
        raise ImageError(f"{path}: expected a 3-D volume, got {image.GetDimension()}-D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageError(f"{path}: expected a scalar image, got a vector image")
    if min(image.GetSize()) < 2:
        raise ImageError(f"{path}: expected a 3-D volume, got size {image.GetSize()}")
    if not allow_nan and image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        if not np.isfinite(sitk.GetArrayViewFromImage(image)).all():
            raise ImageError(f"{path}: contains NaN or infinite values")
    return image


def read_grid(path: str | os.PathLike) -> sitk.Image:
    """An empty (uint8) image with the geometry of an image file, from its header alone: what
    a mask is resampled onto without reading the voxels. A DICOM folder is read in full."""
    path = Path(path)
    if path.is_dir() or not path.exists():
        return grid_of(read_image(path))
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise ImageError(f"{path}: cannot be read as an image ({error})") from error
    if reader.GetDimension() != 3 or min(reader.GetSize()) < 2:
        raise ImageError(f"{path}: expected a 3-D volume, got size {reader.GetSize()}")
    grid = sitk.Image(reader.GetSize(), sitk.sitkUInt8)
    grid.SetOrigin(reader.GetOrigin())
    grid.SetSpacing(reader.GetSpacing())
    grid.SetDirection(reader.GetDirection())
    return grid


def read_displacement(path: str | os.PathLike) -> sitk.Image:
    """Read a displacement field (3 components per voxel, mm) as float64, checked."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: file not found")
    try:
        field = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise ImageError(f"{path}: cannot be read as a displacement field ({error})") from error
    if field.GetDimension() != 3 or field.GetNumberOfComponentsPerPixel() != 3:
        raise ImageError(f"{path}: expected a 3-D field of 3-vectors, got "
                         f"{field.GetDimension()}-D with {field.GetNumberOfComponentsPerPixel()}"
                         " component(s)")
    field = sitk.Cast(field, sitk.sitkVectorFloat64)
    if not np.isfinite(sitk.GetArrayViewFromImage(field)).all():
        raise ImageError(f"{path}: contains NaN or infinite values")
    return field


def write_transform(transform: sitk.Transform, path: str | os.PathLike) -> None:
    """Write an ITK transform atomically; the format follows the suffix (.tfm text, .h5)."""
    with atomic_path(path) as tmp:
        sitk.WriteTransform(transform, str(tmp))


def read_transform(path: str | os.PathLike) -> sitk.Transform:
    """Read an ITK transform file (a pre-alignment or a method's mapping), errors naming it."""
    if not os.path.isfile(path):
        raise ImageError(f"{path}: file not found")
    try:
        return sitk.ReadTransform(str(path))
    except RuntimeError as error:
        raise ImageError(f"{path}: not a readable ITK transform ({error})") from error


def _read_dicom_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise ImageError(f"{folder}: folder holds no DICOM series")
    if len(series) > 1:
        raise ImageError(f"{folder}: folder holds {len(series)} DICOM series; expected one")
    files = reader.GetGDCMSeriesFileNames(str(folder), series[0])
    _check_slice_positions(folder, files)
    reader.SetFileNames(files)
    return reader.Execute()


def _check_slice_positions(folder: Path, files: Sequence[str]) -> None:
    """Slices evenly spaced along the series' normal: ITK stacks a series with a missing slice
    at a wrong, averaged spacing (20 slices at 10 mm with one missing came out as 19 at
    10.56 mm), and the error surfaced later as a mask that did not fit."""
    positions = []
    for name in files:
        header = sitk.ImageFileReader()
        header.SetFileName(name)
        header.ReadImageInformation()
        if not (header.HasMetaDataKey("0020|0032") and header.HasMetaDataKey("0020|0037")):
            return  # no patient geometry per slice: nothing to check against
        position = [float(v) for v in header.GetMetaData("0020|0032").split("\\")]
        orientation = [float(v) for v in header.GetMetaData("0020|0037").split("\\")]
        normal = np.cross(orientation[:3], orientation[3:])
        positions.append(float(np.dot(position, normal)))
    if len(positions) < 3:
        return
    steps = np.abs(np.diff(positions))
    spacing = float(np.median(steps))
    odd = np.flatnonzero(np.abs(steps - spacing) > 0.25 * spacing)
    if spacing <= 0 or len(odd):
        at = int(odd[0]) if len(odd) else 0
        raise ImageError(
            f"{folder}: DICOM slices are not evenly spaced: {steps[at]:.2f} mm between "
            f"{Path(files[at]).name} and {Path(files[at + 1]).name}, {spacing:.2f} mm elsewhere "
            "(a missing or duplicated slice?)")


def read_array(path: str | os.PathLike) -> tuple[np.ndarray, sitk.Image]:
    """Return the voxel array in (z, y, x) order and the image that carries its geometry."""
    image = read_image(path)
    return sitk.GetArrayFromImage(image), image


def same_geometry(a: sitk.Image, b: sitk.Image, tolerance: float = 1e-3) -> bool:
    """True when two images share size, spacing, origin and direction (within tolerance)."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance * 10)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tolerance)
    )


def geometry_summary(image: sitk.Image) -> str:
    return (
        f"size {image.GetSize()}, spacing {tuple(round(s, 3) for s in image.GetSpacing())}, "
        f"origin {tuple(round(o, 2) for o in image.GetOrigin())}"
    )


def _distinct_values(array: np.ndarray) -> np.ndarray:
    """The values `array` holds, as far as the mask checks need them: an integer volume within
    [0, 1] by its minimum and maximum (two passes; sorting a CT-sized mask took 25 ms), any
    other slab by slab (np.unique sorts a copy: 4 bytes per voxel of a float mask at once)."""
    if np.issubdtype(array.dtype, np.integer):
        low, high = array.min(), array.max()
        if low >= 0 and high <= 1:
            return np.unique([low, high])
    starts, step = slab_starts(len(array), array[0].size)
    return np.unique(np.concatenate([np.unique(array[z:z + step]) for z in starts]))


def read_mask(
    path: str | os.PathLike,
    reference: sitk.Image | None = None,
    reference_path: str | os.PathLike | None = None,
    *,
    allow_empty: bool = False,
) -> sitk.Image:
    """Read a binary mask (values 0/1, or 0/255) as uint8 0/1, checking it against its image.

    A mask on another grid than its image, with other labels, or with nothing in it is a
    data error the user must see, not something to resample or threshold silently.
    """
    path = Path(path)
    return check_mask(read_image(path), path, reference, reference_path,
                      allow_empty=allow_empty)


def check_mask(
    mask: sitk.Image,
    path: str | os.PathLike,
    reference: sitk.Image | None = None,
    reference_path: str | os.PathLike | None = None,
    *,
    allow_empty: bool = False,
) -> sitk.Image:
    """`read_mask`'s checks on a mask already in memory, as uint8 0/1; `path` names it in the
    errors. A mask rasterised from an RTSTRUCT or a DICOM-SEG passes the same checks as a
    mask file (liverbench.data.dicom_masks)."""
    values = _distinct_values(sitk.GetArrayViewFromImage(mask))
    if not set(values.tolist()) <= {0, 1} and not set(values.tolist()) <= {0, 255}:
        shown = ", ".join(str(v) for v in values[:6]) + (" ..." if len(values) > 6 else "")
        raise ImageError(f"{path}: mask is not binary (values {shown})")
    if not allow_empty and values.max(initial=0) == 0:
        raise ImageError(f"{path}: mask is empty")
    if reference is not None and not same_geometry(mask, reference):
        other = f" of {reference_path}" if reference_path else ""
        raise ImageError(
            f"{path}: mask geometry ({geometry_summary(mask)}) differs from the image"
            f"{other} ({geometry_summary(reference)})"
        )
    if mask.GetPixelID() == sitk.sitkUInt8 and values.max(initial=0) <= 1:
        return mask  # already what it should be: no second copy
    return mask > 0  # uint8 0/1, the mask's geometry


def _nifti_expected_bytes(header: bytes) -> int | None:
    """Header plus voxel bytes a NIfTI-1 or NIfTI-2 header declares; None if not NIfTI."""
    if len(header) < 4:
        return None  # too short to be anything: ITK's reader names the file
    for order in "<>":
        (size,) = struct.unpack(order + "i", header[:4])
        if size == 348 and len(header) >= 348:  # NIfTI-1
            dims = struct.unpack(order + "8h", header[40:56])
            (bitpix,) = struct.unpack(order + "h", header[72:74])
            (offset,) = struct.unpack(order + "f", header[108:112])
        elif size == 540 and len(header) >= 540:  # NIfTI-2
            (bitpix,) = struct.unpack(order + "h", header[14:16])
            dims = struct.unpack(order + "8q", header[16:80])
            (offset,) = struct.unpack(order + "q", header[168:176])
        else:
            continue
        count = dims[0]
        if not 1 <= count <= 7:
            return None
        return int(offset) + int(np.prod([max(d, 1) for d in dims[1:count + 1]], dtype=np.int64)
                                 ) * bitpix // 8
    return None


def check_nifti_length(path: str | os.PathLike) -> None:
    """A NIfTI file cut short (a full disk, a broken copy) is read by ITK without complaint,
    the missing voxels zero: compare its length with what its header declares."""
    path = Path(path)
    if _suffix(path) == ".nii.gz":
        try:
            with gzip.open(path, "rb") as stream:
                header = stream.read(540)
                length = len(header)
                while chunk := stream.read(1 << 22):
                    length += len(chunk)
        except EOFError as error:
            raise ImageError(f"{path}: file is cut short (its compressed stream ends early)"
                             ) from error
        except (OSError, zlib.error) as error:
            raise ImageError(f"{path}: cannot be read as an image ({error})") from error
    else:
        with path.open("rb") as stream:
            header = stream.read(540)
        length = path.stat().st_size
    expected = _nifti_expected_bytes(header)
    if expected is not None and length < expected:
        raise ImageError(f"{path}: file is cut short: {length} bytes of the {expected} its "
                         "header declares")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = _suffix(path)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs are ordinary files
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_image(image: sitk.Image, path: str | os.PathLike) -> None:
    """Write an image atomically, compressed where the name asks for it (.nii.gz), and verify
    the written file before it takes the name: a write cut short (a full disk, a file-size
    limit) is an error, not a mask that reads back as zeros."""
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
        if _suffix(tmp) in (".nii", ".nii.gz"):
            try:
                check_nifti_length(tmp)
            except ImageError as error:
                raise ImageError(f"{path}: the write was cut short (a full disk, a file-size "
                                 f"limit?): {error}") from None


def write_array(array: np.ndarray, reference: sitk.Image, path: str | os.PathLike) -> None:
    """Write a (z, y, x) array with the geometry of `reference`."""
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    write_image(image, path)


def write_json(data: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        text = json.dumps(data, indent=2, sort_keys=True, default=_json_default)
        tmp.write_text(text + "\n", encoding="utf-8")


def write_json_if_changed(data: Any, path: str | os.PathLike) -> bool:
    """Write only when the content differs, so a file the DAG writes at parse time keeps its
    modification time (and re-runs nothing) while what it records is unchanged."""
    text = json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n"
    path = Path(path)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    write_text(text, path)
    return True


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
