"""Preprocessing into a fixed working grid, and its exact inverse.

Methods work on a grid of fixed shape and spacing (config `preprocess.shape`, `.spacing`, both
in (z, y, x) order) centred on the body. Every prediction must go back to the ORIGINAL nCECT
geometry before it is scored, so the working grid is stored with each preprocessed image as
its NIfTI header: mapping back is a resampling onto the original image, nothing else.

A pair (moving CECT of patient A, fixed nCECT of patient B) lives on the fixed image's working
grid: the CECT is resampled there through the pair's rigid pre-alignment
(liverbench.data.prealign), so a zero displacement means "pre-aligned", the rigid baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

BODY_THRESHOLD_HU = -400.0


@dataclass(frozen=True)
class WorkingGrid:
    """Shape and spacing of the working grid, both (z, y, x)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    window: tuple[float, float] = (-160.0, 240.0)

    @classmethod
    def from_config(cls, preprocess: dict) -> WorkingGrid:
        return cls(
            shape=tuple(int(s) for s in preprocess["shape"]),
            spacing=tuple(float(s) for s in preprocess["spacing"]),
            window=tuple(float(w) for w in preprocess["window"]),
        )


def largest_body(image: sitk.Image) -> tuple[np.ndarray, list[int]] | None:
    """World (x, y, z) mass centroid and index bounding box (x0, y0, z0, sx, sy, sz) of the
    largest connected region above BODY_THRESHOLD_HU; None when the image holds no body.

    The region is picked by its voxel count, not by relabelling the components in size order:
    the same region, without a second full-size 32-bit label image (4 bytes per CT voxel)."""
    components = sitk.ConnectedComponent(image > BODY_THRESHOLD_HU)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.ComputePerimeterOff()  # on by default, and 3/4 of the filter's time; never used
    stats.ComputeFeretDiameterOff()
    stats.ComputeOrientedBoundingBoxOff()
    stats.Execute(components)
    labels = stats.GetLabels()
    if not labels:
        return None
    body = max(labels, key=lambda label: (stats.GetNumberOfPixels(label), -label))
    return np.array(stats.GetCentroid(body)), list(stats.GetBoundingBox(body))


def field_of_view_centre(image: sitk.Image) -> np.ndarray:
    size = np.array(image.GetSize(), dtype=float)
    return np.array(image.TransformContinuousIndexToPhysicalPoint(((size - 1) / 2).tolist()))


def body_centroid(image: sitk.Image) -> np.ndarray:
    """World (x, y, z) mass centroid of the largest connected body region (the field of view's
    centre if there is none). Unlike a bounding-box centre, arms or a table edge barely move it."""
    body = largest_body(image)
    return body[0] if body else field_of_view_centre(image)


def body_centre(image: sitk.Image) -> np.ndarray:
    """World (x, y, z) centre of the bounding box of the largest connected body region.

    Centring on the body, not the scan, keeps the working grid on the patient when the
    field of view is off-centre or wider than the body.
    """
    body = largest_body(image)
    if body is None:
        return field_of_view_centre(image)
    x0, y0, z0, sx, sy, sz = body[1]
    centre_index = np.array([x0 + (sx - 1) / 2, y0 + (sy - 1) / 2, z0 + (sz - 1) / 2])
    return np.array(image.TransformContinuousIndexToPhysicalPoint(centre_index.tolist()))


def mask_centroid(mask: sitk.Image) -> np.ndarray | None:
    """World (x, y, z) centroid of a binary mask's voxels; None for an empty mask."""
    index = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)
    if not len(index):
        return None
    centre = index.mean(axis=0)[::-1]  # (z, y, x) -> (x, y, z)
    return np.array(mask.TransformContinuousIndexToPhysicalPoint(centre.tolist()))


def working_reference(image: sitk.Image, grid: WorkingGrid) -> sitk.Image:
    """An empty image defining the working grid around the body of `image` (axis-aligned)."""
    size_xyz = list(reversed(grid.shape))
    spacing_xyz = list(reversed(grid.spacing))
    centre = body_centre(image)
    origin = centre - (np.array(size_xyz, dtype=float) - 1) / 2 * np.array(spacing_xyz)
    reference = sitk.Image(size_xyz, sitk.sitkUInt8)
    reference.SetSpacing(spacing_xyz)
    reference.SetOrigin(origin.tolist())
    return reference


def resample_image(
    image: sitk.Image, reference: sitk.Image, fill: float = -1024.0,
    transform: sitk.Transform | None = None,
) -> sitk.Image:
    """Linear resampling of an intensity image onto `reference`, float32, outside = `fill`;
    `transform` maps reference world points to image world points (default: the identity).

    Down-sampling a fine CT to a coarse grid aliases noise: `antialias` first. Linear
    interpolation reads any pixel type as real numbers, so an int16 CT is resampled as it is,
    without a float32 copy of the whole volume."""
    image = antialias(image, reference.GetSpacing())
    return sitk.Resample(
        image, reference, _or_identity(transform), sitk.sitkLinear, fill, sitk.sitkFloat32
    )


def antialias(image: sitk.Image, spacing: Sequence[float]) -> sitk.Image:
    """`image` low-passed for sampling at `spacing` (x, y, z): a Gaussian of sigma ~ half the
    spacing gained, done as a block average by the whole factor (`BinShrink`, one pass over
    the image) and a Gaussian on the smaller image for the variance the block leaves; the
    same low-pass as one full-resolution Gaussian at a fortieth of its cost (0.17 s for a
    demo CECT). Real-valued (float32) where it filters; an image it leaves alone keeps its
    pixel type."""
    source = image.GetSpacing()
    factors = [max(1, int(t // s)) for t, s in zip(spacing, source)]
    if any(f > 1 for f in factors):
        image = bin_shrink_float(image, factors)
    # target variance (sigma = (t - s) / 2) minus that of a box of f voxels: s² (f² - 1) / 12
    residual = [
        np.sqrt(max(0.0, ((t - s) / 2) ** 2 - s**2 * (f**2 - 1) / 12))
        for t, s, f in zip(spacing, source, factors)
    ]
    if any(r > 0.1 * s for r, s in zip(residual, image.GetSpacing())):
        image = sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32),
                                                [max(r, 1e-3) for r in residual])
    return image


SLAB_VOXELS = 2**22  # voxels converted to float32 at a time (16 MB)


def slab_starts(depth: int, slice_voxels: int, multiple: int = 1) -> tuple[range, int]:
    """(first slice of each slab, slices per slab) for walking a (z, y, x) volume about
    SLAB_VOXELS at a time, each slab a whole number of `multiple` slices: full-size work
    without a full-size temporary copy."""
    step = multiple * max(1, SLAB_VOXELS // max(1, slice_voxels * multiple))
    return range(0, depth, step), step


def bin_shrink_float(image: sitk.Image, factors: Sequence[int]) -> sitk.Image:
    """`BinShrink` by `factors` (x, y, z) computed in float32, one slab of whole blocks at a
    time: the block means of a float32 copy of the image (BinShrink of an integer image
    rounds them), without that copy (4 bytes per voxel of a CT stored in 2)."""
    if image.GetPixelID() == sitk.sitkFloat32:
        return sitk.BinShrink(image, list(factors))
    nx, ny, nz = image.GetSize()
    fz = int(factors[2])
    used = nz - nz % fz  # BinShrink drops the last partial block
    starts, step = slab_starts(used, nx * ny, fz)  # slabs of whole blocks
    if used == 0 or step >= used:
        return sitk.BinShrink(sitk.Cast(image, sitk.sitkFloat32), list(factors))
    slabs = [sitk.BinShrink(sitk.Cast(image[:, :, z:min(z + step, used)], sitk.sitkFloat32),
                            list(factors)) for z in starts]
    shrunk = sitk.GetImageFromArray(np.concatenate([sitk.GetArrayViewFromImage(slab)
                                                    for slab in slabs]))
    shrunk.SetOrigin(slabs[0].GetOrigin())
    shrunk.SetSpacing(slabs[0].GetSpacing())
    shrunk.SetDirection(slabs[0].GetDirection())
    return shrunk


def resample_mask(
    mask: sitk.Image, reference: sitk.Image, transform: sitk.Transform | None = None
) -> sitk.Image:
    """Resample a binary mask onto `reference`: linear interpolation, then >= 0.5; through
    `transform` (reference world point -> mask world point) when given, e.g. a method's mapping.

    Thresholding the interpolated mask keeps the volume of a mask better than nearest
    neighbour when grids differ a lot in spacing, and it is its own inverse's counterpart.
    On a large reference only the box the mask can land in is resampled (`landing_box`):
    the same voxels, the rest is zero.
    """
    transform = _or_identity(transform)
    # linear interpolation reads a uint8 0/1 mask as reals: no float32 copy of it is needed
    box = landing_box(mask, reference, transform)
    target = reference if box is None else _sub_grid(reference, *box)
    fraction = sitk.Resample(mask, target, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    binary = sitk.Cast(fraction >= 0.5, sitk.sitkUInt8)
    if box is None:
        binary.CopyInformation(reference)
        return binary
    full = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    full.CopyInformation(reference)
    return sitk.Paste(full, binary, binary.GetSize(), [0, 0, 0], box[0])


LANDING_MIN_VOXELS = 2**20  # below this, resampling everything is as fast as finding a box
LANDING_SPACING_MM = 8.0  # the coarse grid the box is found on
LANDING_MARGIN = 2  # coarse voxels added around the box on each side


def landing_box(
    fraction: sitk.Image, reference: sitk.Image, transform: sitk.Transform
) -> tuple[list[int], list[int]] | None:
    """(start index, size) of the part of `reference` where `fraction` (a mask) can land
    through `transform`, found on a coarse copy of the reference grid (its support, grown by
    LANDING_MARGIN coarse voxels); None: resample the whole reference (small grids, or a mask
    that lands nowhere, which the full resampling then shows as empty)."""
    size = np.array(reference.GetSize())
    if size.prod() < LANDING_MIN_VOXELS:
        return None
    spacing = np.array(reference.GetSpacing())
    factor = np.maximum(1, np.floor(LANDING_SPACING_MM / spacing)).astype(int)
    coarse = sitk.Image([int(n) for n in np.ceil(size / factor)], sitk.sitkUInt8)
    coarse.SetOrigin(reference.GetOrigin())
    coarse.SetDirection(reference.GetDirection())
    coarse.SetSpacing((spacing * factor).tolist())
    support = sitk.GetArrayViewFromImage(
        sitk.Resample(fraction, coarse, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    ) > 0
    if not support.any():
        return None
    index = np.argwhere(support)[:, ::-1]  # (x, y, z)
    low = np.clip((index.min(axis=0) - LANDING_MARGIN) * factor, 0, size - 1)
    high = np.clip((index.max(axis=0) + 1 + LANDING_MARGIN) * factor, 1, size)
    return low.astype(int).tolist(), (high - low).astype(int).tolist()


def _sub_grid(reference: sitk.Image, start: list[int], size: list[int]) -> sitk.Image:
    """An empty image on `size` voxels of `reference`'s grid from index `start`."""
    grid = sitk.Image([int(n) for n in size], sitk.sitkUInt8)
    grid.SetSpacing(reference.GetSpacing())
    grid.SetDirection(reference.GetDirection())
    grid.SetOrigin(reference.TransformIndexToPhysicalPoint([int(i) for i in start]))
    return grid


def normalise(image: sitk.Image, window: Sequence[float]) -> sitk.Image:
    """Clip HU to `window` and scale to [0, 1] (float32); the geometry is kept."""
    low, high = float(window[0]), float(window[1])
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    array = (np.clip(array, low, high) - low) / (high - low)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out


def preprocess_image(
    image: sitk.Image, grid: WorkingGrid, reference: sitk.Image | None = None,
    transform: sitk.Transform | None = None,
) -> sitk.Image:
    """HU image -> normalised float32 image on the working grid (of `reference` if given),
    through `transform` (working-grid world point -> image world point) when given."""
    reference = reference if reference is not None else working_reference(image, grid)
    return normalise(resample_image(image, reference, transform=transform), grid.window)


def to_original(mask: sitk.Image, original: sitk.Image) -> sitk.Image:
    """The inverse of preprocessing for masks: back onto the original image's grid (uint8).

    Accepts a binary mask or a probability map on the working grid.
    """
    return resample_mask(mask, original)


def grid_of(image: sitk.Image) -> sitk.Image:
    """An empty image with the geometry of `image` (cheap reference for resampling)."""
    reference = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    reference.CopyInformation(image)
    return reference


def _or_identity(transform: sitk.Transform | None) -> sitk.Transform:
    return transform if transform is not None else sitk.Transform()
