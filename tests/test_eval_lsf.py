"""Lung shunt fraction on a synthetic SPECT whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from liverbench.data.io import ImageError
from liverbench.evaluation.lsf import activity_on_grid, lung_shunt_fraction, organ_counts

CT_SPACING = (1.5, 1.5, 2.5)  # x, y, z
CT_SIZE = (60, 60, 60)
SPECT_SPACING = (4.8, 4.8, 4.8)
SPECT_ORIGIN = (-20.0, -17.0, -23.0)
SPECT_SIZE = (30, 30, 40)
LUNG_BOX = ((10.0, 80.0), (10.0, 80.0), (95.0, 140.0))  # world x, y, z ranges (mm)
LIVER_BOX = ((10.0, 80.0), (10.0, 80.0), (5.0, 70.0))
LUNG_ACTIVITY, LIVER_ACTIVITY = 3.0, 40.0


def ct_mask(box_mm, margin_mm):
    """Mask on the CT grid: voxels whose centre lies in the box shrunk by `margin_mm`."""
    grids = np.meshgrid(
        *[np.arange(n) * s for n, s in zip(reversed(CT_SIZE), reversed(CT_SPACING))],
        indexing="ij",
    )  # z, y, x world coordinates (origin 0)
    inside = np.ones(grids[0].shape, dtype=bool)
    for coord, (lo, hi) in zip(grids, reversed(box_mm)):
        inside &= (coord >= lo + margin_mm) & (coord <= hi - margin_mm)
    image = sitk.GetImageFromArray(inside.astype(np.uint8))
    image.SetSpacing(CT_SPACING)
    return image


def synthetic_spect():
    """Piecewise-constant activity: LUNG_ACTIVITY in the lung box, LIVER_ACTIVITY in the liver."""
    axes = [o + np.arange(n) * s for o, n, s in zip(SPECT_ORIGIN, SPECT_SIZE, SPECT_SPACING)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    values = np.zeros(x.shape)
    for box, activity in ((LUNG_BOX, LUNG_ACTIVITY), (LIVER_BOX, LIVER_ACTIVITY)):
        inside = np.ones(x.shape, dtype=bool)
        for coord, (lo, hi) in zip((x, y, z), box):
            inside &= (coord >= lo) & (coord <= hi)
        values[inside] = activity
    image = sitk.GetImageFromArray(values.transpose(2, 1, 0).astype(np.float32))
    image.SetSpacing(SPECT_SPACING)
    image.SetOrigin(SPECT_ORIGIN)
    return image


def test_known_lsf_with_masks_inside_uniform_regions():
    spect = synthetic_spect()
    # masks at least one SPECT voxel inside their uniform regions: interpolation is exact there
    lungs = ct_mask(LUNG_BOX, margin_mm=10.0)
    liver = ct_mask(LIVER_BOX, margin_mm=10.0)
    n_lung = sitk.GetArrayViewFromImage(lungs).sum()
    n_liver = sitk.GetArrayViewFromImage(liver).sum()
    expected = 100 * LUNG_ACTIVITY * n_lung / (LUNG_ACTIVITY * n_lung + LIVER_ACTIVITY * n_liver)
    assert lung_shunt_fraction(spect, liver, lungs) == pytest.approx(expected, rel=1e-6)
    # counts are per SPECT voxel: scaled by the voxel volume ratio
    ratio = np.prod(CT_SPACING) / np.prod(SPECT_SPACING)
    counts = organ_counts(spect, liver, lungs)
    assert counts["lung"] == pytest.approx(LUNG_ACTIVITY * n_lung * ratio, rel=1e-6)


def test_overlap_is_counted_once_as_lung():
    spect = synthetic_spect()
    lungs = ct_mask(LUNG_BOX, margin_mm=10.0)
    liver = ct_mask(LIVER_BOX, margin_mm=10.0)
    liver_into_lungs = sitk.Or(liver, lungs)  # a liver that swallowed the lungs
    with_overlap = organ_counts(spect, liver_into_lungs, lungs)
    without = organ_counts(spect, liver, lungs)
    assert with_overlap["lung"] == pytest.approx(without["lung"])
    assert with_overlap["liver"] == pytest.approx(without["liver"])


def test_total_counts_conserved_over_field_of_view():
    rng = np.random.default_rng(3)
    spect = sitk.GetImageFromArray(rng.poisson(20, size=(12, 10, 10)).astype(np.float32))
    spect.SetSpacing((4.8, 4.8, 4.8))
    spect.SetOrigin((1.0, 2.0, 3.0))
    # a fine grid exactly tiling the SPECT field of view (voxel edges, not centres)
    fine = sitk.Image([60, 60, 72], sitk.sitkUInt8)  # 0.8 mm voxels, 6 per SPECT voxel
    fine.SetSpacing((0.8, 0.8, 0.8))
    fine.SetOrigin(tuple(o - 2.4 + 0.4 for o in (1.0, 2.0, 3.0)))
    total = activity_on_grid(spect, fine).sum()
    expected = sitk.GetArrayViewFromImage(spect).sum()
    assert total == pytest.approx(expected, rel=0.01)


def test_empty_masks_give_nan_and_mismatched_grids_fail():
    spect = synthetic_spect()
    empty = ct_mask(LUNG_BOX, margin_mm=1000.0)
    assert np.isnan(lung_shunt_fraction(spect, empty, empty))
    lungs = ct_mask(LUNG_BOX, margin_mm=10.0)
    other = sitk.Image(lungs)
    other.SetSpacing((1.0, 1.0, 1.0))
    with pytest.raises(ImageError, match="share a grid"):
        lung_shunt_fraction(spect, other, lungs)
