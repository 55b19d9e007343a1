"""Registration error against a known true motion, and liver centroids, on tiny grids."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from liverbench.data.io import read_displacement, read_transform
from liverbench.errors import InputError
from liverbench.evaluation.registration_error import (
    TRUTH_COLUMNS,
    centroid,
    liver_grid,
    registration_columns,
    sample_field,
    tre,
)

SPACING = (1.5, 1.2, 3.0)
ORIGIN = (-10.0, 5.0, 20.0)
# a tilted patient: the mask's axes are not the world axes (checks index <-> world everywhere)
TILTED = sitk.Euler3DTransform((0, 0, 0), 0.1, 0.05, 0.3).GetMatrix()


def liver(shift_zyx=(0, 0, 0), direction=TILTED) -> sitk.Image:
    array = np.zeros((20, 30, 30), dtype=np.uint8)
    z, y, x = shift_zyx
    array[5 + z:15 + z, 8 + y:22 + y, 6 + x:20 + x] = 1
    array[7 + z:9 + z, 4 + y:8 + y, 6 + x:10 + x] = 1  # not a box: the centroid is not trivial
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(direction)
    return image


def field_of(transform: sitk.Transform, spacing=4.0, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)):
    """A true-motion field as the phantom writes it: the transform sampled on a coarse grid
    over the nCECT field of view."""
    return sitk.TransformToDisplacementField(
        transform, sitk.sitkVectorFloat64, (40, 40, 40), (-60.0, -40.0, -30.0),
        (spacing,) * 3, direction)


def affine_motion() -> sitk.AffineTransform:
    """A smooth, non-constant motion (linear, so trilinear sampling of its field is exact)."""
    motion = sitk.AffineTransform(3)
    motion.SetMatrix((1.02, 0.01, 0.0, 0.0, 0.98, 0.03, 0.0, 0.0, 1.05))
    motion.SetTranslation((3.0, -4.0, 12.0))
    motion.SetCenter((0.0, 20.0, 40.0))
    return motion


IDENTITY = sitk.Transform(3, sitk.sitkIdentity)


def test_identity_tre_is_the_motion_magnitude():
    truth = field_of(sitk.TranslationTransform(3, (0.0, 0.0, 12.0)))
    errors = tre(IDENTITY, truth, liver())
    assert errors.size == int(sitk.GetArrayFromImage(liver()).sum())
    assert errors.mean() == pytest.approx(12.0, abs=1e-9)
    assert np.percentile(errors, 95) == pytest.approx(12.0, abs=1e-9)
    oblique = field_of(sitk.TranslationTransform(3, (3.0, 4.0, 12.0)))
    assert tre(IDENTITY, oblique, liver()).mean() == pytest.approx(13.0, abs=1e-9)


def test_the_true_mapping_scores_zero():
    mask = liver()
    translation = sitk.TranslationTransform(3, (0.0, 0.0, 12.0))
    assert tre(translation, field_of(translation), mask).max() < 1e-9
    motion = affine_motion()
    tilted_grid = field_of(motion, 3.0, sitk.Euler3DTransform((0, 0, 0), 0.0, 0.2, 0.0)
                           .GetMatrix())
    for truth in (field_of(motion), tilted_grid):
        assert tre(motion, truth, mask).max() < 1e-6
        # the truth field itself as the method's transform, as a network's field would be
        assert tre(sitk.DisplacementFieldTransform(sitk.Image(truth)), truth, mask).max() < 1e-6
    # and a wrong mapping is not zero: identity against the affine motion
    assert tre(IDENTITY, field_of(motion), mask).mean() > 5


def test_composite_mapping_from_file(tmp_path):
    """A final mapping as the methods write it: pre-alignment composed with a field, .h5."""
    motion = affine_motion()
    truth = field_of(motion)
    euler = sitk.Euler3DTransform((0.0, 20.0, 40.0), 0.02, -0.01, 0.03, (2.0, -1.0, 8.0))
    # the field that completes the Euler to the true motion: T = euler ∘ (x + u(x))
    residual = sitk.CompositeTransform([euler.GetInverse(), motion])
    field = sitk.TransformToDisplacementField(residual, sitk.sitkVectorFloat64, (40, 40, 40),
                                              (-60.0, -40.0, -30.0), (4.0,) * 3)
    final = sitk.CompositeTransform([euler, sitk.DisplacementFieldTransform(field)])
    path = tmp_path / "mapping.h5"
    sitk.WriteTransform(final, str(path))
    errors = tre(read_transform(path), truth, liver())
    assert errors.max() < 1e-6  # (the other composition order is off by up to 0.6 mm)
    assert tre(read_transform(path), field_of(IDENTITY), liver()).mean() > 5


def test_subsampling_is_regular_and_deterministic():
    mask = liver()
    count = int(sitk.GetArrayFromImage(mask).sum())
    grid, inside = liver_grid(mask, max_points=count // 20)
    assert 0 < inside.sum() < count // 4
    assert grid.GetSpacing() == pytest.approx(tuple(s * 3 for s in SPACING))  # stride 3
    truth = field_of(sitk.TranslationTransform(3, (0.0, 0.0, 12.0)))
    first = tre(IDENTITY, truth, mask, max_points=count // 20)
    assert first.size == inside.sum()
    np.testing.assert_array_equal(first, tre(IDENTITY, truth, mask, max_points=count // 20))
    assert tre(affine_motion(), field_of(affine_motion()), mask, max_points=50).max() < 1e-6


def test_sample_field_is_trilinear_and_clamped():
    truth = field_of(affine_motion())
    points = np.array([[0.0, 0.0, 0.0], [10.3, -7.7, 22.1]])
    expected = np.array([np.subtract(affine_motion().TransformPoint(tuple(p)), p)
                         for p in points])
    np.testing.assert_allclose(sample_field(truth, points), expected, atol=1e-9)
    far = sample_field(truth, np.array([[1e4, 0.0, 0.0]]))  # outside: the border value
    border = sample_field(truth, np.array([[-60.0 + 39 * 4.0, 0.0, 0.0]]))
    np.testing.assert_allclose(far, border)


def test_centroid_error_of_a_shifted_mask_is_the_shift(tmp_path):
    truth = tmp_path / "true_motion.nii.gz"  # given, not read without a mapping
    sitk.WriteImage(field_of(IDENTITY), str(truth))
    straight = (1, 0, 0, 0, 1, 0, 0, 0, 1)
    gt = liver(direction=straight)
    shifted = liver((2, 3, 0), direction=straight)
    row = registration_columns(gt, shifted, truth, None, intra_patient=True)
    assert set(row) == set(TRUTH_COLUMNS)
    assert row["centroid_error_mm"] == pytest.approx(math.hypot(2 * 3.0, 3 * 1.2))
    assert row["pred_centroid_z_mm"] - row["gt_centroid_z_mm"] == pytest.approx(6.0)
    assert math.isnan(row["tre_mean_mm"]) and math.isnan(row["tre_p95_mm"])  # no mapping
    # tilted: the world distance is the same, the world z differs from the index shift
    tilted = registration_columns(liver(), liver((2, 3, 0)), truth, None, True)
    assert tilted["centroid_error_mm"] == pytest.approx(row["centroid_error_mm"])
    mask = liver()
    mean_index = np.argwhere(sitk.GetArrayFromImage(mask))[:, ::-1].mean(axis=0)
    assert centroid(mask) == pytest.approx(
        mask.TransformContinuousIndexToPhysicalPoint(tuple(mean_index)))


def test_missing_empty_and_inter_patient(tmp_path):
    gt = liver()
    truth_path = tmp_path / "true_motion.nii.gz"
    sitk.WriteImage(sitk.Cast(field_of(sitk.TranslationTransform(3, (0.0, 0.0, 12.0))),
                              sitk.sitkVectorFloat32), str(truth_path))
    mapping = tmp_path / "identity.h5"
    sitk.WriteTransform(IDENTITY, str(mapping))
    empty = sitk.Image(gt.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(gt)
    for prediction in (None, empty):
        row = registration_columns(gt, prediction, truth_path, mapping, True)
        assert math.isnan(row["centroid_error_mm"]) and math.isnan(row["pred_centroid_z_mm"])
        assert row["gt_centroid_z_mm"] == pytest.approx(centroid(gt)[2])
        assert row["tre_mean_mm"] == pytest.approx(12.0, abs=1e-4)  # float32 on disk
    inter = registration_columns(gt, gt, truth_path, mapping, intra_patient=False)
    assert math.isnan(inter["tre_mean_mm"]) and inter["centroid_error_mm"] == 0.0


def test_bad_truth_and_mapping(tmp_path):
    scalar = tmp_path / "scalar.nii.gz"
    sitk.WriteImage(liver(), str(scalar))
    with pytest.raises(InputError, match="expected a 3-D field of 3-vectors"):
        read_displacement(scalar)
    text = tmp_path / "bad.h5"
    text.write_text("not a transform")
    with pytest.raises(InputError, match="not a readable ITK transform"):
        read_transform(text)
    empty = sitk.Image(liver().GetSize(), sitk.sitkUInt8)
    with pytest.raises(InputError, match="empty"):
        tre(IDENTITY, field_of(IDENTITY), empty)
