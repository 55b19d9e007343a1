"""Overlap and surface-distance metrics of a predicted liver mask against its ground truth.

Conventions (the paper's, from the MICCAI-LiTS 2017 utilities its authors use, plus the
standard ones, each under its own name):

- ``dsc``  Dice similarity coefficient 2TP / (2TP + FP + FN).
- ``fnr``  (paper) FN / |GT ∪ P|   — NOT the textbook FN / |GT|.
- ``fpr``  (paper) FP / |GT ∪ P|   — NOT the textbook FP / (FP + TN).
  With U = |GT ∪ P| these give TP = (1 − FNR − FPR)·U, hence the identity
  DSC = 2(1 − FNR − FPR) / (2 − FNR − FPR) that reproduces the paper's Table 1.
- ``msd``  (paper) the MAXIMUM symmetric surface distance in mm, i.e. the Hausdorff distance
  between the two surfaces (not a mean).
- ``assd`` average symmetric surface distance in mm: the mean over the points of BOTH surfaces
  of each point's distance to the other surface.
- ``hd95`` the 95th percentile (numpy's linear interpolation) of the POOLED symmetric surface
  distances (both directed distance sets concatenated). Note MedPy's ``hd95`` instead takes the
  larger of the two directed 95th percentiles; the pooled value is never larger than it.
- ``rvd``  relative volume difference (|P| − |GT|) / |GT| (signed; negative = under-segmentation).

Surfaces are the mask XOR its binary erosion by the 3×3×3 18-connected structuring element,
with everything outside the image counted as background, so a mask touching the image border
has a surface there. Distances are Euclidean in millimetres (voxel spacing applied per axis),
from each surface voxel of one mask to the nearest surface voxel of the other.

Degenerate cases:

- both masks empty: DSC 1, FNR 0, FPR 0, RVD 0, distances NaN (there are no surfaces);
- empty prediction, non-empty GT: DSC 0, FNR 1, FPR 0, RVD −1, distances NaN;
- empty GT, non-empty prediction: DSC 0, FNR 0, FPR 1, RVD NaN, distances NaN.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.ndimage import distance_transform_edt

from liverbench.data.io import ImageError, read_mask

METRIC_KEYS = ("dsc", "fnr", "fpr", "msd", "assd", "hd95", "rvd")
DISTANCE_KEYS = ("msd", "assd", "hd95")
STRUCTURE_18 = ndimage.generate_binary_structure(3, 2)


def overlap_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """DSC, FNR, FPR (paper conventions) and RVD from voxel counts."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    tp = int(np.count_nonzero(pred & gt))
    n_pred = int(np.count_nonzero(pred))
    n_gt = int(np.count_nonzero(gt))
    fp = n_pred - tp
    fn = n_gt - tp
    union = tp + fp + fn
    if union == 0:
        return {"dsc": 1.0, "fnr": 0.0, "fpr": 0.0, "rvd": 0.0}
    return {
        "dsc": 2 * tp / (2 * tp + fp + fn),
        "fnr": fn / union,
        "fpr": fp / union,
        "rvd": (n_pred - n_gt) / n_gt if n_gt else float("nan"),
    }


def surface(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels: the mask minus its 18-connected erosion (outside counts as background)."""
    mask = np.asarray(mask, dtype=bool)
    eroded = ndimage.binary_erosion(mask, structure=STRUCTURE_18, border_value=0)
    return mask & ~eroded


def _union_crop(pred: np.ndarray, gt: np.ndarray, margin: int = 1) -> tuple[slice, ...]:
    """Bounding box of P ∪ GT plus `margin` voxels, clipped to the image.

    One voxel of margin keeps the erosion identical to the uncropped one (and at the image
    border the erosion's border_value=0 plays the same role).
    """
    union = pred | gt
    slices = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        hits = np.flatnonzero(union.any(axis=other))
        lo = max(int(hits[0]) - margin, 0)
        hi = min(int(hits[-1]) + 1 + margin, union.shape[axis])
        slices.append(slice(lo, hi))
    return tuple(slices)


def surface_distances(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: (pred surface → gt surface, gt surface → pred surface).

    Both masks must be non-empty. Exact Euclidean distance transforms of each surface's
    complement (with the voxel spacing) on the union crop, read at the other surface. A k-d
    tree was faster but crashed (segfault) inside scipy when torch had been loaded first.
    """
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if not pred.any() or not gt.any():
        raise ValueError("surface distances need two non-empty masks")
    box = _union_crop(pred, gt)
    sampling = np.asarray(spacing, dtype=float)
    surface_pred = surface(pred[box])
    surface_gt = surface(gt[box])
    to_gt = distance_transform_edt(~surface_gt, sampling=sampling)[surface_pred]
    to_pred = distance_transform_edt(~surface_pred, sampling=sampling)[surface_gt]
    return np.asarray(to_gt, dtype=float), np.asarray(to_pred, dtype=float)


def distance_metrics(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> dict:
    """MSD (maximum, i.e. Hausdorff), ASSD and pooled HD95, in mm; NaN if a mask is empty."""
    if not np.any(pred) or not np.any(gt):
        return {key: float("nan") for key in DISTANCE_KEYS}
    d_pred, d_gt = surface_distances(pred, gt, spacing)
    pooled = np.concatenate([d_pred, d_gt])
    return {
        "msd": float(pooled.max()),
        "assd": float(pooled.mean()),
        "hd95": float(np.percentile(pooled, 95)),
    }


def evaluate(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """All metrics of `pred` against `gt` (same-shape arrays; `spacing` in the arrays' axis
    order, mm). Returns a dict with the keys of METRIC_KEYS; see the module docstring."""
    pred = np.asarray(pred) > 0
    gt = np.asarray(gt) > 0
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    if len(spacing) != gt.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not match a {gt.ndim}-D array")
    if any(float(s) <= 0 for s in spacing):
        raise ValueError(f"spacing must be positive, got {tuple(spacing)}")
    result = overlap_metrics(pred, gt)
    result.update(distance_metrics(pred, gt, spacing))
    return {key: float(result[key]) for key in METRIC_KEYS}


def evaluate_files(
    pred_path: str | os.PathLike, gt_path: str | os.PathLike
) -> dict[str, float]:
    """Evaluate a prediction file against a ground-truth file (NIfTI or any SimpleITK format).

    The prediction must be a binary mask in the ground truth's exact geometry (size, spacing,
    origin, direction); otherwise an ImageError names the prediction file. An empty
    prediction is evaluated (DSC 0), an empty ground truth is an error.
    """
    import SimpleITK as sitk

    gt_image = read_mask(gt_path)
    pred_image = read_mask(pred_path, gt_image, gt_path, allow_empty=True)
    gt = sitk.GetArrayViewFromImage(gt_image)
    pred = sitk.GetArrayViewFromImage(pred_image)
    spacing_zyx = tuple(reversed(gt_image.GetSpacing()))
    return evaluate(pred, gt, spacing_zyx)


__all__ = [
    "METRIC_KEYS",
    "ImageError",
    "distance_metrics",
    "evaluate",
    "evaluate_files",
    "overlap_metrics",
    "surface",
    "surface_distances",
]
