"""Lung shunt fraction (LSF) from 99mTc-MAA SPECT counts inside the lung and liver volumes.

LSF = C_lung / (C_lung + C_liver) × 100, the clinical end point of Luu et al. (2023): an
error in the liver mask matters to the extent that it changes this number.

Grids. The masks live on the nCECT grid (fine, e.g. 0.8×0.8×5 mm), the SPECT on its own
coarse grid (~4.8 mm) in the same world frame. We resample the SPECT onto the masks' grid
with LINEAR interpolation and sum it inside each mask, scaled by the ratio of voxel volumes.
Why this way round:

- the masks keep their own resolution: resampling a binary mask onto 4.8 mm voxels would
  either lose thin structures (nearest neighbour) or need partial-volume fractions;
- linear interpolation is a partition of unity, so the integral of the interpolated activity
  over a region equals the SPECT counts in it up to sub-voxel boundary effects; the factor
  (CT voxel volume / SPECT voxel volume) turns concentration × volume back into counts, so a
  mask covering the whole SPECT field of view recovers the total counts (the ratio itself is
  independent of that factor);
- outside the SPECT field of view the activity is 0 (not extrapolated).

Overlap. A voxel in both masks is counted once, as lung: the liver is the liver mask minus
the lungs, so a registration error that pushes the liver into the lung base cannot count the
same counts twice.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from liverbench.data.io import ImageError, geometry_summary, same_geometry


def _bounding_region(mask: np.ndarray) -> tuple[slice, ...] | None:
    """(z, y, x) slices of the non-zero voxels, or None for an empty mask."""
    hits = np.argwhere(mask)
    if hits.size == 0:
        return None
    lo, hi = hits.min(axis=0), hits.max(axis=0) + 1
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def activity_on_grid(spect: sitk.Image, reference: sitk.Image) -> np.ndarray:
    """SPECT counts resampled (linearly) onto `reference`'s grid, as counts per reference
    voxel, in (z, y, x) order. Outside the SPECT field of view: 0."""
    resampled = sitk.Resample(
        spect, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat64
    )
    scale = float(np.prod(reference.GetSpacing()) / np.prod(spect.GetSpacing()))
    return sitk.GetArrayFromImage(resampled) * scale


def organ_counts(spect: sitk.Image, liver: sitk.Image, lungs: sitk.Image) -> dict[str, float]:
    """SPECT counts in the lungs and in the liver minus the lungs (see the module docstring)."""
    if not same_geometry(liver, lungs):
        raise ImageError(
            f"liver and lung masks must share a grid: liver {geometry_summary(liver)}, "
            f"lungs {geometry_summary(lungs)}"
        )
    liver_arr = sitk.GetArrayViewFromImage(liver) > 0
    lung_arr = sitk.GetArrayViewFromImage(lungs) > 0
    region = _bounding_region(liver_arr | lung_arr)
    if region is None:
        return {"lung": 0.0, "liver": 0.0}
    # resample only the bounding box of the masks: a full CT grid in float64 is ~300 MB
    z, y, x = region
    sub_reference = liver[x, y, z]  # SimpleITK slices in (x, y, z) and keeps the geometry
    activity = activity_on_grid(spect, sub_reference)
    lung_sub = lung_arr[region]
    liver_sub = liver_arr[region] & ~lung_sub
    return {"lung": float(activity[lung_sub].sum()), "liver": float(activity[liver_sub].sum())}


def lung_shunt_fraction(spect: sitk.Image, liver: sitk.Image, lungs: sitk.Image) -> float:
    """LSF in percent: 100 · C_lung / (C_lung + C_liver); NaN when both hold no counts."""
    counts = organ_counts(spect, liver, lungs)
    total = counts["lung"] + counts["liver"]
    if total <= 0:
        return float("nan")
    return 100.0 * counts["lung"] / total


__all__ = ["activity_on_grid", "lung_shunt_fraction", "organ_counts"]
