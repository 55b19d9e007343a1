"""The RegSegNet network: cascaded 3-D U-Nets that each predict a displacement field.

Cascade k sees the CECT warped by cascades 1..k-1 next to the nCECT and predicts an increment
u_k; the fields compose, phi_k(x) = u_k(x) + phi_{k-1}(x + u_k(x)), so the CECT and its liver
mask are always resampled ONCE from the original, by the composed field, instead of being
interpolated again at every cascade. Fields are dense displacements in voxels of the working
grid, channels in array order (z, y, x), the convention of MONAI's `Warp`.
"""

from __future__ import annotations

import functools
import warnings
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.networks.blocks import Warp
from monai.networks.nets import UNet
from torch import nn

FLOW_INIT_STD = 1e-5  # near-zero first fields: training starts at the identity (VoxelMorph)


def _warp(mode: str, padding: str) -> Warp:
    with warnings.catch_warnings():  # MONAI warns that it uses torch's grid_sample: expected
        warnings.simplefilter("ignore")
        return Warp(mode=mode, padding_mode=padding)


class SpatialTransformer(nn.Module):
    """Resample volumes at x + field(x); images and fields clamp to the border, masks pad 0."""

    def __init__(self) -> None:
        super().__init__()
        self.linear_border = _warp("bilinear", "border")
        self.linear_zeros = _warp("bilinear", "zeros")
        self.nearest_zeros = _warp("nearest", "zeros")

    def image(self, image: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
        return self.linear_border(image, field)

    def mask(self, mask: torch.Tensor, field: torch.Tensor, nearest: bool = False) -> torch.Tensor:
        """Linear (a differentiable fraction, for the Dice loss) or nearest-neighbour."""
        return (self.nearest_zeros if nearest else self.linear_zeros)(mask, field)

    def compose(self, previous: torch.Tensor, increment: torch.Tensor) -> torch.Tensor:
        """The field of `previous` applied after `increment`: u + previous(x + u)."""
        return increment + self.linear_border(previous, increment)


def gaussian_smoothing(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of each channel of a (B, C, Z, Y, X) volume, edges replicated.

    Each axis is one matrix product with a banded (n x n) matrix that holds the kernel, the
    replicated edges folded into its first and last columns: the same sums as a padded
    convolution, but on BLAS instead of a grouped 3-D convolution, which has no fast CPU
    kernel (3 ms against 13 ms for a 3-channel 64³ field, 2 threads)."""
    z, y, x = field.shape[2:]
    mz, my, mx = (_smoothing_matrix(n, float(sigma), field.dtype, field.device) for n in (z, y, x))
    field = field @ mx.T
    field = (field.transpose(-1, -2) @ my.T).transpose(-1, -2)
    return torch.einsum("bczyx,wz->bcwyx", field, mz)


@functools.lru_cache(maxsize=32)
def _smoothing_matrix(n: int, sigma: float, dtype: torch.dtype, device: torch.device):
    """M with (M v)[i] = sum_d w_d v[clamp(i + d)], w a normalised Gaussian of radius 2 sigma."""
    radius = max(1, round(2 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    matrix = torch.zeros(n, n, dtype=torch.float64)
    rows = torch.arange(n)
    for offset, weight in zip(range(-radius, radius + 1), kernel):
        matrix[rows, (rows + offset).clamp(0, n - 1)] += weight
    return matrix.to(dtype=dtype, device=device)


class FieldNet(nn.Module):
    """One cascade: a MONAI U-Net from (moving, fixed) to a 3-channel displacement field.

    Two choices make it learn in the few hundred steps a CPU budget allows (measured on the
    demo phantom, docs/regsegnet.md):
    - the U-Net's output is a displacement in normalised coordinates (-1..1 across the grid,
      the convention of `grid_sample`), converted to voxels; in voxel units the field grew by
      ~lr voxels per step, i.e. 0.7 voxel after 200 steps where 3-6 are needed, and the unit
      is independent of the grid size, so 64³ and 128³ train alike;
    - the field is smoothed by a Gaussian (`smoothing` voxels, `regsegnet.field_smoothing`),
      which removes the checkerboard of the U-Net's last, stride-2 transposed convolution and
      makes the field a low-pass one, like elastix's B-spline grid: the Dice term's gradient,
      which lives on the liver's boundary, then moves the whole organ. With 1 voxel the
      training Dice did not improve within the demo's budget; with 3 voxels (12-15 mm at the
      demo's working grid) it did (docs/regsegnet.md).

    Inputs of any size work: they are zero-padded up to a multiple of the U-Net's total
    stride and the field is cropped back.
    """

    def __init__(self, channels: tuple[int, ...], smoothing: float = 3.0) -> None:
        super().__init__()
        self.smoothing = smoothing
        self.unet = UNet(
            spatial_dims=3,
            in_channels=2,
            out_channels=3,
            channels=tuple(channels),
            strides=(2,) * (len(channels) - 1),
            num_res_units=0,  # residual units end in a norm + activation: no place for a field
        )
        self.multiple = 2 ** (len(channels) - 1)
        for module in self.unet.model[-1].modules():  # the last (linear) layer outputs the field
            if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)) and module.out_channels == 3:
                nn.init.normal_(module.weight, std=FLOW_INIT_STD)
                nn.init.zeros_(module.bias)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        x = torch.cat([moving, fixed], dim=1)
        size = x.shape[2:]
        pad = [(-s) % self.multiple for s in size]
        if any(pad):
            x = F.pad(x, [p for axis in reversed(pad) for p in (0, axis)])
        field = self.unet(x)[:, :, : size[0], : size[1], : size[2]]
        half_extent = [(s - 1) / 2 for s in size]
        field = field * torch.tensor(half_extent, dtype=field.dtype, device=field.device).reshape(
            1, 3, 1, 1, 1
        )
        return gaussian_smoothing(field, self.smoothing) if self.smoothing > 0 else field


@dataclass
class Registration:
    """What a forward pass gives: the composed field, each cascade's own increment (for the
    regulariser) and the CECT warped by the composed field."""

    field: torch.Tensor
    increments: list[torch.Tensor]
    warped: torch.Tensor | None  # None when the last warp was not asked for


class RegSegNet(nn.Module):
    def __init__(self, cascades: int = 3, channels: tuple[int, ...] = (16, 32, 32, 32, 32),
                 smoothing: float = 3.0):
        super().__init__()
        if cascades < 1:
            raise ValueError(f"cascades must be >= 1, got {cascades}")
        self.cascades = nn.ModuleList(FieldNet(tuple(channels), smoothing) for _ in range(cascades))
        self.transform = SpatialTransformer()

    @classmethod
    def from_settings(cls, settings) -> RegSegNet:
        """The network a `regsegnet.settings.Settings` describes (training, checkpoints)."""
        return cls(settings.cascades, settings.channels, settings.field_smoothing)

    @property
    def num_cascades(self) -> int:
        return len(self.cascades)

    def forward(
        self,
        moving: torch.Tensor,
        fixed: torch.Tensor,
        cascades: int | None = None,
        frozen: int = 0,
        warp_last: bool = True,
    ) -> Registration:
        """Run the first `cascades` cascades (all by default) on (B, 1, Z, Y, X) volumes.

        The first `frozen` cascades run without gradients: cascade-wise training optimises
        only the last cascade used, on what the frozen ones give it; later cascades never run.
        `warp_last=False` skips warping the CECT by the final field: a prediction carries
        the mask through the field itself and needs the warped CECT only as a picture.
        """
        count = self.num_cascades if cascades is None else cascades
        if not 1 <= count <= self.num_cascades:
            raise ValueError(f"cascades must be in 1..{self.num_cascades}, got {count}")
        field: torch.Tensor | None = None
        warped = moving
        increments = []
        for index in range(count):
            with torch.no_grad() if index < frozen else nullcontext():
                increment = self.cascades[index](warped, fixed)
                field = increment if field is None else self.transform.compose(field, increment)
                last = index == count - 1
                warped = self.transform.image(moving, field) if warp_last or not last else None
            increments.append(increment)
        assert field is not None
        return Registration(field=field, increments=increments, warped=warped)

    def freeze_all_but(self, index: int) -> None:
        """Gradients for cascade `index` only (0-based); the others are frozen."""
        for position, cascade in enumerate(self.cascades):
            cascade.requires_grad_(position == index)
