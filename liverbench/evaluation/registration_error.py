"""Registration error against the true motion, and liver centroids, in world millimetres.

A cohort with a known motion (the phantom) writes, per patient, the TRUE mapping
(`liverbench.layout.TRUTH_FILE`): a displacement field d on a grid in the nCECT's world frame,
nCECT world point p ↦ CECT world point p + d(p). A registration method writes its FINAL mapping
T (`Layout.mapping`: pre-alignment composed with its own registration) as an ITK transform,
nCECT world point ↦ CECT world point. The target registration error at p is
|T(p) − (p + d(p))|, taken over the nCECT's ground-truth liver voxels (a deterministic regular
subsample when there are more than `MAX_POINTS`).

Everything is vectorised: T is evaluated as a displacement field on the (subsampled) liver
bounding-box grid with `sitk.TransformToDisplacementField`, so the liver voxels are grid
points of it; d is read by trilinear interpolation (`scipy.ndimage.map_coordinates`), clamped
to its grid, since d is defined over the nCECT field of view and a liver voxel may lie within
half a coarse cell of its border.

World coordinates are ITK/LPS (x, y, z); z grows cranially. Arrays are (z, y, x).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from liverbench.data.io import read_displacement, read_transform
from liverbench.data.preprocess import mask_centroid as centroid
from liverbench.errors import InputError

# metrics/{method}.csv columns, present only where the cohort has a truth
TRUTH_COLUMNS = (
    "tre_mean_mm", "tre_p95_mm", "centroid_error_mm", "pred_centroid_z_mm", "gt_centroid_z_mm",
)
MAX_POINTS = 200_000  # liver voxels scored per pair; above, a regular stride subsamples them
NAN = float("nan")


@dataclass(frozen=True)
class Grid:
    """A voxel grid's geometry: index (x, y, z) ↦ origin + direction · (spacing ⊙ index)."""

    origin: np.ndarray
    spacing: np.ndarray
    direction: np.ndarray  # 3×3, columns are the axes' world directions

    @classmethod
    def of(cls, image: sitk.Image) -> Grid:
        return cls(np.asarray(image.GetOrigin(), dtype=float),
                   np.asarray(image.GetSpacing(), dtype=float),
                   np.asarray(image.GetDirection(), dtype=float).reshape(3, 3))

    def world(self, index_xyz: np.ndarray) -> np.ndarray:
        """(n, 3) continuous indices (x, y, z) → (n, 3) world points."""
        return self.origin + (np.asarray(index_xyz, dtype=float) * self.spacing) @ self.direction.T

    def index(self, points: np.ndarray) -> np.ndarray:
        """(n, 3) world points → (n, 3) continuous indices (x, y, z)."""
        return np.linalg.solve(self.direction, (np.asarray(points) - self.origin).T).T \
            / self.spacing


def liver_grid(mask: sitk.Image, max_points: int = MAX_POINTS) -> tuple[sitk.Image, np.ndarray]:
    """The grid the scored voxels lie on, and which of its voxels are liver (z, y, x): the
    mask's bounding box, at every k-th voxel per axis where the mask has more than
    `max_points` voxels (a deterministic, regular subsample)."""
    array = sitk.GetArrayViewFromImage(mask) > 0
    count = int(np.count_nonzero(array))
    if count == 0:
        raise InputError("ground-truth liver is empty: no voxel to score the registration at")
    stride = max(1, math.ceil((count / max_points) ** (1 / 3)))
    nonzero = np.nonzero(array)
    low = np.array([axis.min() for axis in nonzero])
    high = np.array([axis.max() for axis in nonzero]) + 1
    inside = array[tuple(slice(lo, hi, stride) for lo, hi in zip(low, high))]
    grid = sitk.Image([int(n) for n in inside.shape[::-1]], sitk.sitkUInt8)
    grid.SetOrigin(tuple(Grid.of(mask).world(low[::-1][None])[0]))
    grid.SetSpacing(tuple(np.asarray(mask.GetSpacing()) * stride))
    grid.SetDirection(mask.GetDirection())
    return grid, inside


def mapping_displacements(transform: sitk.Transform, mask: sitk.Image,
                          max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(p, T(p) − p) at the mask's (subsampled) voxels p, both (n, 3) in world mm."""
    grid, inside = liver_grid(mask, max_points)
    field = sitk.TransformToDisplacementField(
        transform, sitk.sitkVectorFloat64, grid.GetSize(), grid.GetOrigin(), grid.GetSpacing(),
        grid.GetDirection())
    points = Grid.of(grid).world(np.argwhere(inside)[:, ::-1])  # C order, as the mask below
    return points, sitk.GetArrayViewFromImage(field)[inside]


def sample_field(field: sitk.Image, points: np.ndarray) -> np.ndarray:
    """A 3-component displacement field at world points (n, 3), trilinear, clamped to its grid."""
    values = sitk.GetArrayViewFromImage(field)  # (z, y, x, 3)
    coordinates = Grid.of(field).index(points)[:, ::-1].T  # (3, n) in (z, y, x)
    return np.stack([ndimage.map_coordinates(values[..., c], coordinates, order=1,
                                             mode="nearest") for c in range(3)], axis=1)


def tre(transform: sitk.Transform, truth: sitk.Image, mask: sitk.Image,
        max_points: int = MAX_POINTS) -> np.ndarray:
    """|T(p) − (p + d(p))| in mm at the mask's (subsampled) voxels p."""
    points, moved = mapping_displacements(transform, mask, max_points)
    return np.linalg.norm(moved - sample_field(truth, points), axis=1)


def registration_columns(reference: sitk.Image, prediction: sitk.Image | None,
                         truth: str | os.PathLike, mapping: str | os.PathLike | None,
                         intra_patient: bool) -> dict[str, float]:
    """The TRUTH_COLUMNS of one pair. TRE needs a mapping and an intra-patient pair (the
    truth is the fixed patient's own motion; no mapping to another patient is known); the
    centroid columns need only the masks (a missing or empty prediction: NaN)."""
    if not os.path.exists(truth):  # given for every pair, whether or not it is read
        raise InputError(f"{truth}: file not found")
    row = dict.fromkeys(TRUTH_COLUMNS, NAN)
    gt_centre = centroid(reference)
    if gt_centre is None:
        raise InputError("ground-truth liver is empty: no centroid")
    row["gt_centroid_z_mm"] = float(gt_centre[2])
    pred_centre = centroid(prediction) if prediction is not None else None
    if pred_centre is not None:
        row["pred_centroid_z_mm"] = float(pred_centre[2])
        row["centroid_error_mm"] = float(np.linalg.norm(pred_centre - gt_centre))
    if mapping is not None and intra_patient:
        errors = tre(read_transform(mapping), read_displacement(truth), reference)
        row["tre_mean_mm"] = float(errors.mean())
        row["tre_p95_mm"] = float(np.percentile(errors, 95))
    return row


__all__ = ["MAX_POINTS", "TRUTH_COLUMNS", "centroid", "liver_grid", "mapping_displacements",
           "registration_columns", "sample_field", "tre"]
