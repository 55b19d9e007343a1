"""Metrics against shapes whose answers are known analytically or by counting."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from liverbench.data.io import ImageError
from liverbench.evaluation.metrics import METRIC_KEYS, evaluate, evaluate_files, surface


def ball(shape, center, radius_mm, spacing):
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    dist2 = sum((g - c * s) ** 2 for g, c, s in zip(grids, center, spacing))
    return dist2 <= radius_mm**2


def box(shape, lo, hi):
    mask = np.zeros(shape, dtype=np.uint8)
    mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = 1
    return mask


def reference_distances(pred, gt, spacing):
    """Independent reference: distance transforms on the full, uncropped grid."""
    struct = ndimage.generate_binary_structure(3, 2)
    sp = pred & ~ndimage.binary_erosion(pred, struct, border_value=0)
    sg = gt & ~ndimage.binary_erosion(gt, struct, border_value=0)
    d_p = ndimage.distance_transform_edt(~sg, sampling=spacing)[sp]
    d_g = ndimage.distance_transform_edt(~sp, sampling=spacing)[sg]
    pooled = np.concatenate([d_p, d_g])
    return pooled.max(), pooled.mean(), np.percentile(pooled, 95)


def test_keys_and_identity_perfect():
    gt = box((20, 20, 20), (5, 5, 5), (15, 15, 15))
    result = evaluate(gt, gt, (1, 1, 1))
    assert tuple(result) == METRIC_KEYS
    assert result == {"dsc": 1, "fnr": 0, "fpr": 0, "msd": 0, "assd": 0, "hd95": 0, "rvd": 0}


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.7, 0.7)])
def test_concentric_spheres_msd(spacing):
    shape = (40, 80, 80) if spacing[0] > 1 else (60, 60, 60)
    center = [n // 2 for n in shape]
    r1, r2 = 12.0, 20.0
    inner = ball(shape, center, r1, spacing)
    outer = ball(shape, center, r2, spacing)
    result = evaluate(inner, outer, spacing)
    assert abs(result["msd"] - (r2 - r1)) <= max(spacing)
    # inner surface points are ~r2-r1 away, outer ones too: mean and 95th pct close as well
    assert abs(result["assd"] - (r2 - r1)) <= max(spacing)
    assert result["hd95"] <= result["msd"]
    volume_ratio = inner.sum() / outer.sum()
    assert result["dsc"] == pytest.approx(2 * volume_ratio / (1 + volume_ratio))
    assert result["rvd"] == pytest.approx(volume_ratio - 1)


def test_shifted_boxes_counts_exact():
    shape = (30, 30, 30)
    gt = box(shape, (5, 5, 5), (15, 15, 15))  # 1000 voxels
    pred = box(shape, (7, 5, 5), (17, 15, 15))  # shifted 2 along z: TP 800, FP 200, FN 200
    result = evaluate(pred, gt, (1, 1, 1))
    assert result["dsc"] == pytest.approx(1600 / 2000)
    assert result["fnr"] == pytest.approx(200 / 1200)
    assert result["fpr"] == pytest.approx(200 / 1200)
    assert result["rvd"] == 0.0


@pytest.mark.parametrize("axis,spacing_value,k", [(0, 3.0, 2), (1, 0.75, 3), (2, 1.6, 1)])
def test_anisotropic_shift_gives_k_times_spacing(axis, spacing_value, k):
    spacing = [1.0, 1.0, 1.0]
    spacing[axis] = spacing_value
    shape = (40, 40, 40)
    gt = box(shape, (10, 10, 10), (30, 30, 30))
    pred = np.roll(gt, k, axis=axis)
    result = evaluate(pred, gt, spacing)
    assert result["msd"] == pytest.approx(k * spacing_value)


def test_paper_check_and_identity_on_random_masks():
    # the paper's RegSegNet row: FNR .07, FPR .08 ⇒ DSC .92
    assert 2 * (1 - 0.07 - 0.08) / (2 - 0.07 - 0.08) == pytest.approx(0.92, abs=0.005)
    rng = np.random.default_rng(0)
    for _ in range(5):
        gt = ndimage.binary_opening(rng.random((24, 24, 24)) > 0.4)
        pred = ndimage.binary_opening(rng.random((24, 24, 24)) > 0.45)
        r = evaluate(pred, gt, (1.0, 0.8, 0.8))
        assert r["dsc"] == pytest.approx(2 * (1 - r["fnr"] - r["fpr"]) / (2 - r["fnr"] - r["fpr"]))


def test_distances_match_full_grid_reference():
    rng = np.random.default_rng(1)
    spacing = (2.0, 0.9, 1.1)
    for _ in range(3):
        gt = ndimage.binary_dilation(rng.random((20, 30, 30)) > 0.995, iterations=3)
        pred = ndimage.binary_dilation(rng.random((20, 30, 30)) > 0.995, iterations=3)
        r = evaluate(pred, gt, spacing)
        msd, assd, hd95 = reference_distances(pred, gt, spacing)
        assert (r["msd"], r["assd"], r["hd95"]) == pytest.approx((msd, assd, hd95))


def test_border_touching_mask_has_surface_on_border():
    full = np.ones((6, 6, 6), dtype=bool)
    assert surface(full).sum() == 6**3 - 4**3
    gt = full.copy()
    pred = full.copy()
    pred[0] = False
    r = evaluate(pred, gt, (1, 1, 1))
    assert r["msd"] == pytest.approx(1.0)
    msd, assd, hd95 = reference_distances(pred, gt, (1, 1, 1))
    assert (r["msd"], r["assd"], r["hd95"]) == pytest.approx((msd, assd, hd95))


def test_empty_cases():
    gt = box((10, 10, 10), (2, 2, 2), (6, 6, 6))
    empty = np.zeros_like(gt)
    r = evaluate(empty, gt, (1, 1, 1))
    assert (r["dsc"], r["fnr"], r["fpr"], r["rvd"]) == (0.0, 1.0, 0.0, -1.0)
    assert all(np.isnan(r[k]) for k in ("msd", "assd", "hd95"))
    r = evaluate(gt, empty, (1, 1, 1))
    assert (r["dsc"], r["fnr"], r["fpr"]) == (0.0, 0.0, 1.0)
    assert np.isnan(r["rvd"]) and np.isnan(r["msd"])
    r = evaluate(empty, empty, (1, 1, 1))
    assert (r["dsc"], r["fnr"], r["fpr"], r["rvd"]) == (1.0, 0.0, 0.0, 0.0)
    assert np.isnan(r["hd95"])


def test_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        evaluate(np.zeros((3, 3, 3)), np.zeros((3, 3, 4)), (1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        evaluate(np.zeros((3, 3, 3)), np.zeros((3, 3, 3)), (1, 1))


def test_real_size_masks_are_scored():
    """A clinical-size mask pair (150 x 512 x 512) is scored; its speed is a benchmark's job
    (about 1 s on one idle core), never a timed test on a shared machine."""
    z, y, x = np.ogrid[:150, :512, :512]
    gt = ((z - 75) / 50) ** 2 + ((y - 250) / 150) ** 2 + ((x - 260) / 170) ** 2 < 1
    pred = ((z - 77) / 50) ** 2 + ((y - 255) / 148) ** 2 + ((x - 262) / 172) ** 2 < 1
    r = evaluate(pred, gt, (2.0, 0.8, 0.8))
    assert 0.9 < r["dsc"] < 1.0
    assert 2.0 <= r["msd"] < 15.0  # the shift and the radius change, a few voxels


def _write(array, path, spacing=(0.8, 0.8, 3.0), origin=(0.0, 0.0, 0.0)):
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))
    return path


def test_evaluate_files_uses_spacing_in_array_order(tmp_path):
    gt = box((20, 30, 30), (5, 5, 5), (15, 25, 25))
    pred = np.roll(gt, 2, axis=0)  # 2 slices along z, z spacing 3 mm
    r = evaluate_files(_write(pred, tmp_path / "p.nii.gz"), _write(gt, tmp_path / "g.nii.gz"))
    assert r["msd"] == pytest.approx(6.0)


def test_evaluate_files_rejects_wrong_geometry(tmp_path):
    gt = box((20, 30, 30), (5, 5, 5), (15, 25, 25))
    gt_path = _write(gt, tmp_path / "g.nii.gz")
    bad = _write(gt, tmp_path / "pred_bad.nii.gz", spacing=(1.0, 1.0, 3.0))
    with pytest.raises(ImageError, match="pred_bad.nii.gz"):
        evaluate_files(bad, gt_path)
    shifted = _write(gt, tmp_path / "pred_origin.nii.gz", origin=(5.0, 0.0, 0.0))
    with pytest.raises(ImageError, match="pred_origin.nii.gz"):
        evaluate_files(shifted, gt_path)
    labels = _write(gt * 2, tmp_path / "pred_labels.nii.gz")
    with pytest.raises(ImageError, match="pred_labels.nii.gz.*not binary"):
        evaluate_files(labels, gt_path)


def test_evaluate_files_empty_prediction(tmp_path):
    gt = box((10, 10, 10), (2, 2, 2), (6, 6, 6))
    gt_path = _write(gt, tmp_path / "g.nii.gz")
    r = evaluate_files(_write(np.zeros_like(gt), tmp_path / "p.nii.gz"), gt_path)
    assert r["dsc"] == 0.0 and np.isnan(r["msd"])


def _blob(shape, seed: int) -> np.ndarray:
    """A random smooth, organ-like shape: thresholded smoothed noise, largest component."""
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), 3.0)
    labels, _ = ndimage.label(noise > np.percentile(noise, 75))
    return labels == np.bincount(labels.ravel())[1:].argmax() + 1


def _itk(mask: np.ndarray, spacing_zyx) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))
    return image


def _itk_surface_distances(pred, gt, spacing_zyx) -> np.ndarray:
    """Pooled symmetric surface distances with ITK's Maurer distance map (another algorithm
    than the scipy EDT the metrics use), on the metrics' own surface convention."""
    pooled = []
    for source, target in ((pred, gt), (gt, pred)):
        distance = sitk.SignedMaurerDistanceMap(
            _itk(surface(target), spacing_zyx), insideIsPositive=False, squaredDistance=False,
            useImageSpacing=True)
        # the map is signed about the surface voxels' own boundary: |d| + 0 at the voxels
        values = np.abs(sitk.GetArrayViewFromImage(distance))[surface(source)]
        on_target = surface(target)[surface(source)]
        pooled.append(np.where(on_target, 0.0, values))
    return np.concatenate(pooled)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_agree_with_simpleitk_on_random_anisotropic_shapes(seed):
    """DSC against ITK's label overlap, MSD against ITK's Hausdorff distance (over the voxel
    sets: equal to the surface one up to a voxel), ASSD and HD95 against distances from ITK's
    Maurer distance map; spacing (z, y, x) = (3.0, 0.8, 1.7) mm, so an axis mix-up shows."""
    spacing = (3.0, 0.8, 1.7)
    pred, gt = _blob((24, 40, 32), seed), _blob((24, 40, 32), seed + 100)
    ours = evaluate(pred, gt, spacing)
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(_itk(gt, spacing), _itk(pred, spacing))
    assert ours["dsc"] == pytest.approx(overlap.GetDiceCoefficient(), abs=1e-9)
    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(_itk(gt, spacing), _itk(pred, spacing))
    assert ours["msd"] == pytest.approx(hausdorff.GetHausdorffDistance(), abs=max(spacing))
    pooled = _itk_surface_distances(pred, gt, spacing)
    assert ours["assd"] == pytest.approx(pooled.mean(), rel=1e-3)
    assert ours["hd95"] == pytest.approx(np.percentile(pooled, 95), rel=1e-3)
    assert ours["msd"] == pytest.approx(pooled.max(), rel=1e-3)
    # the check can fail: a shape moved 3 slices along z, scored with the spacing in the
    # wrong order, is off the reference by far more than the tolerance
    moved = np.roll(pred, 3, axis=0)
    reference = _itk_surface_distances(moved, pred, spacing).max()
    assert evaluate(moved, pred, spacing)["msd"] == pytest.approx(reference, rel=1e-3)
    swapped = evaluate(moved, pred, tuple(reversed(spacing)))["msd"]
    assert abs(swapped - reference) > 0.2 * reference
