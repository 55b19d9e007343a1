"""On-the-fly augmentation of training pairs (`regsegnet.augmentation`, docs/regsegnet.md).

Each training step perturbs the MOVING CECT and its liver by one random affine, in torch on
the working grid: `F.affine_grid` + one `grid_sample` of the image and the mask stacked as two
channels (the mask moves exactly as the image), then the image's intensities. The fixed nCECT
and its liver are returned untouched. The affine is drawn in millimetres about the grid centre
(a rotation stays a rotation on anisotropic voxels) and expressed in the normalised
coordinates of `affine_grid` (align_corners=True, as MONAI's `Warp`). Parameters and noise
come from one seeded CPU generator: the same seed gives the same augmentation on CPU and GPU,
and its state is part of the training checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from regsegnet.data import Batch
from regsegnet.settings import Augmentation


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """3×3 rotation about the x, then y, then z axis by `angles` (radians, x-y-z order)."""
    matrices = []
    for axis, angle in enumerate(angles.tolist()):
        c, s = math.cos(angle), math.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        m = torch.eye(3, dtype=torch.float64)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        matrices.append(m)
    return matrices[2] @ matrices[1] @ matrices[0]


def random_theta(
    settings: Augmentation,
    shape: Sequence[int],
    spacing: Sequence[float],
    generator: torch.Generator,
) -> torch.Tensor:
    """One random affine as `affine_grid`'s 3×4 theta (normalised (x, y, z) coordinates).

    `shape` and `spacing` are (z, y, x). In mm about the centre, q = R·S·p + t; with H the
    half extent of the grid in mm per axis (normalised 1 ↔ H mm), theta = [H⁻¹RSH | t/H].
    """
    draws = torch.rand(9, generator=generator, dtype=torch.float64) * 2 - 1  # U(-1, 1)
    angles = draws[0:3] * math.radians(settings.rotation_deg)
    scales = 1 + draws[3:6] * settings.scale
    shift_voxels = draws[6:9] * settings.translation_voxels
    size = torch.tensor(list(reversed(shape)), dtype=torch.float64)  # (x, y, z) from here
    step = torch.tensor(list(reversed(spacing)), dtype=torch.float64)
    half_voxels = ((size - 1) / 2).clamp(min=0.5)
    half_mm = half_voxels * step
    linear = _rotation(angles) @ torch.diag(scales)
    theta_linear = torch.diag(1 / half_mm) @ linear @ torch.diag(half_mm)
    theta_shift = shift_voxels / half_voxels
    return torch.cat([theta_linear, theta_shift[:, None]], dim=1).float()


def perturb_intensity(
    image: torch.Tensor, settings: Augmentation, generator: torch.Generator
) -> torch.Tensor:
    """image × (1 ± intensity_scale) ± intensity_shift + N(0, noise_std), clipped to [0, 1]
    (the range of preprocessed images, and of MONAI's MI bins)."""
    gain, offset = (torch.rand(2, generator=generator, dtype=torch.float64) * 2 - 1).tolist()
    image = image * (1 + gain * settings.intensity_scale) + offset * settings.intensity_shift
    if settings.noise_std > 0:
        noise = torch.randn(image.shape, generator=generator) * settings.noise_std
        image = image + noise.to(image.device, image.dtype)
    return image.clamp(0.0, 1.0)


def augment_batch(
    batch: Batch,
    settings: Augmentation,
    spacings: Sequence[Sequence[float]],
    generator: torch.Generator,
) -> Batch:
    """A copy of `batch` whose moving images and masks are randomly perturbed (one affine per
    pair; `spacings[i]` is pair i's (z, y, x) voxel size); fixed volumes are the same tensors."""
    if not settings.enabled:
        return batch
    count, _, *shape = batch.moving.shape
    theta = torch.stack([random_theta(settings, shape, spacings[i], generator)
                         for i in range(count)]).to(batch.moving.device)
    grid = F.affine_grid(theta, [count, 2, *shape], align_corners=True)
    both = torch.cat([batch.moving, batch.moving_mask], dim=1)
    # border: the scan and its liver go on beyond the grid as at its edge (the CECT field of
    # view is wider than the working grid), rather than ending in a slab of air
    moved = F.grid_sample(both, grid, mode="bilinear", padding_mode="border", align_corners=True)
    moving = torch.cat([perturb_intensity(moved[i: i + 1, :1], settings, generator)
                        for i in range(count)])
    return Batch(moving=moving, moving_mask=moved[:, 1:], fixed=batch.fixed,
                 fixed_mask=batch.fixed_mask)
