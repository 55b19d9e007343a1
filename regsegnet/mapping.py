"""RegSegNet's final mapping as an ITK transform: nCECT world point -> CECT world point.

The network's composed field u lives on the fixed working grid, in voxels, channels in array
order (z, y, x): the working-grid CECT is sampled at index i + u(i). That CECT is the original
CECT resampled through the pair's pre-alignment P (nCECT world -> CECT world), so a fixed
world point p reaches the CECT at P(p + d(p)), with d the same field in world mm:
d = direction · diag(spacing) · u, components reordered to ITK's (x, y, z). As an ITK
transform that is `CompositeTransform([P, DisplacementFieldTransform(d)])` (the last one is
applied first), written per pair to `Layout.mapping(method, pair)` (`.h5`) and scored against
the true motion (`liverbench.evaluation`). Cascades need no care here: the model's `field` is
already the composition of all cascades used, the one field the mask is warped by.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from liverbench.data.prealign import compose


def displacement_image(field: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """The (3, Z, Y, X) voxel field (channels z, y, x) as a world-mm vector image (x, y, z
    components, float64) with the geometry of `reference`, the fixed working grid."""
    if field.ndim != 4 or field.shape[0] != 3:
        raise ValueError(f"field must be (3, Z, Y, X), got {field.shape}")
    if tuple(reversed(field.shape[1:])) != reference.GetSize():
        raise ValueError(f"field {field.shape[1:]} (z, y, x) does not fit the grid "
                         f"{reference.GetSize()} (x, y, z)")
    voxels_xyz = np.asarray(field, dtype=np.float64)[::-1]
    millimetres = voxels_xyz * np.asarray(reference.GetSpacing())[:, None, None, None]
    direction = np.asarray(reference.GetDirection()).reshape(3, 3)
    world = np.einsum("ij,jzyx->zyxi", direction, millimetres)
    image = sitk.GetImageFromArray(np.ascontiguousarray(world), isVector=True)
    image.CopyInformation(reference)
    return image


def final_mapping(
    field: np.ndarray, reference: sitk.Image, prealign: sitk.Transform
) -> sitk.CompositeTransform:
    """Pre-alignment after the network's displacement: p -> P(p + d(p)) (module docstring)."""
    return compose(prealign, sitk.DisplacementFieldTransform(displacement_image(field, reference)))
