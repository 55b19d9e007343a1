"""A DeepMedic-style dual-pathway 3-D CNN (Kamnitsas et al. 2017) with its size arithmetic.

All convolutions are 'valid' (unpadded), so the network maps an input segment to a smaller
output segment and every output voxel sees exactly its receptive field. The model takes ONE
full-resolution input; each context pathway crops what it needs, average-pools it by its
factor on a grid anchored at the input's first voxel, convolves, repeats every voxel `factor`
times and is cropped onto the normal pathway's output. Because the pooling grid is anchored,
the network is exactly translation-equivariant for shifts that are multiples of
`Geometry.alignment`: a volume cut into tiles at such offsets gives the same output as one
forward over the whole volume. (DeepMedic samples each context segment on its own grid
centred on the segment; anchoring the grid is what makes dense tiled inference exact.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.deepmedic.settings import Architecture


@dataclass(frozen=True)
class Geometry:
    """Size arithmetic of an `Architecture`, per axis (all axes alike).

    - `pathway_receptive_field`: receptive field of one pathway at its own resolution,
      1 + layers * (kernel - 1); its output is input - that + 1.
    - `margin`: voxels of context needed on each side of an output voxel at full resolution,
      the largest factor * (pathway receptive field - 1) / 2 over pathways (factor 1 = normal).
    - `receptive_field` = 2 * margin + 1: the network's output is input - receptive_field + 1.
    - `alignment`: lcm of the factors; tile offsets must be multiples of it.
    """

    architecture: Architecture

    @property
    def factors(self) -> tuple[int, ...]:
        return (1, *self.architecture.subsample_factors)

    @property
    def pathway_receptive_field(self) -> int:
        return 1 + len(self.architecture.feature_maps) * (self.architecture.kernel - 1)

    @property
    def pathway_half_width(self) -> int:
        return (self.pathway_receptive_field - 1) // 2

    @property
    def margin(self) -> int:
        return max(f * self.pathway_half_width for f in self.factors)

    @property
    def receptive_field(self) -> int:
        return 2 * self.margin + 1

    @property
    def alignment(self) -> int:
        return math.lcm(*self.factors)

    def output_size(self, input_size: int) -> int:
        return input_size - self.receptive_field + 1

    def input_size(self, output_size: int) -> int:
        return output_size + self.receptive_field - 1

    def pathway_crop(self, factor: int, input_size: int) -> tuple[int, int]:
        """[start, stop) of the full-resolution input a pathway with `factor` reads.

        Both ends are multiples of `factor` away from the input's start, so pooling keeps the
        input's grid; `stop` beyond `input_size` means the input size is not usable.
        """
        half = self.pathway_half_width
        first_cell = self.margin // factor - half
        last_cell = (input_size - self.margin - 1) // factor + half
        return factor * first_cell, factor * (last_cell + 1)

    def is_valid_input(self, input_size: int) -> bool:
        return input_size >= self.receptive_field and all(
            self.pathway_crop(f, input_size)[1] <= input_size for f in self.factors
        )

    def valid_output_size(self, wanted: int) -> int:
        """The smallest output size >= `wanted` that is a multiple of `alignment` and whose
        input size every pathway can use (the sizes used for segments and tiles)."""
        size = max(self.alignment, math.ceil(wanted / self.alignment) * self.alignment)
        while not self.is_valid_input(self.input_size(size)):
            size += self.alignment
        return size

    def check_input(self, shape: tuple[int, ...]) -> None:
        """Raise a clear error for a spatial input shape the network cannot take."""
        for axis, size in enumerate(shape):
            if size < self.receptive_field:
                raise ValueError(
                    f"input size {tuple(shape)} is smaller than the receptive field "
                    f"({self.receptive_field} voxels) along axis {axis}"
                )
            if not self.is_valid_input(size):
                raise ValueError(
                    f"input size {size} along axis {axis} does not fit the context pathways' "
                    f"pooling (factors {self.architecture.subsample_factors}); use an output "
                    f"size that is a multiple of {self.alignment}, e.g. input "
                    f"{self.input_size(self.valid_output_size(self.output_size(size)))}"
                )


def torch_device(name: str) -> torch.device:
    """The settings' `device` as a torch device; "auto" is CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class ConvLayer(nn.Module):
    """DeepMedic's pre-activation layer: [batch norm -> PReLU ->] valid 3-D convolution.

    The first layer of a pathway sees the raw (normalised) image and skips the
    normalisation and activation, as in DeepMedic.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, preactivate: bool,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.pre = (
            nn.Sequential(nn.BatchNorm3d(in_channels), nn.PReLU(in_channels))
            if preactivate else nn.Identity()
        )
        self.dropout = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel)
        nn.init.kaiming_normal_(self.conv.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.dropout(self.pre(x)))


def _add_residual(out: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """Add `residual`, centre-cropped to `out`'s size; extra channels of either side pass."""
    crop = [(r - o) // 2 for r, o in zip(residual.shape[2:], out.shape[2:])]
    residual = residual[
        :, :,
        crop[0]: crop[0] + out.shape[2],
        crop[1]: crop[1] + out.shape[3],
        crop[2]: crop[2] + out.shape[4],
    ]
    shared = min(out.shape[1], residual.shape[1])
    return torch.cat([out[:, :shared] + residual[:, :shared], out[:, shared:]], dim=1)


class Pathway(nn.Module):
    """A stack of valid 3³ convolutions with residual connections (DeepMedic's pathway).

    A residual connection at layer i adds the input of layer i-1 to the output of layer i.
    """

    def __init__(self, architecture: Architecture) -> None:
        super().__init__()
        channels = (architecture.in_channels, *architecture.feature_maps)
        self.layers = nn.ModuleList(
            ConvLayer(channels[i], channels[i + 1], architecture.kernel, preactivate=i > 0)
            for i in range(len(architecture.feature_maps))
        )
        self.residual_layers = frozenset(architecture.residual_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs = []  # inputs[i] = input of layer i+1 (1-based numbering as in DeepMedic)
        for index, layer in enumerate(self.layers, start=1):
            inputs.append(x)
            x = layer(x)
            if index in self.residual_layers:
                x = _add_residual(x, inputs[index - 2])
        return x


class DeepMedic(nn.Module):
    """Normal pathway + context pathways (input subsampled by each factor), concatenated and
    classified voxel-wise by fully connected layers written as 1³ convolutions."""

    def __init__(self, architecture: Architecture | None = None) -> None:
        super().__init__()
        self.architecture = architecture or Architecture()
        self.architecture.validate()
        self.geometry = Geometry(self.architecture)
        arch = self.architecture
        self.pathways = nn.ModuleList(Pathway(arch) for _ in self.geometry.factors)
        widths = (arch.feature_maps[-1] * len(self.pathways), *arch.fc, arch.classes)
        self.head = nn.Sequential(*(
            ConvLayer(widths[i], widths[i + 1], 1, preactivate=True, dropout=arch.dropout)
            for i in range(len(widths) - 1)
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in_channels, Z, Y, X) -> logits (batch, classes, Z-R+1, Y-R+1, X-R+1)."""
        if x.dim() != 5:
            raise ValueError(
                f"expected input (batch, channels, z, y, x), got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.architecture.in_channels:
            raise ValueError(
                f"expected {self.architecture.in_channels} input channel(s), got {x.shape[1]}"
            )
        size = tuple(x.shape[2:])
        self.geometry.check_input(size)
        out_size = [self.geometry.output_size(s) for s in size]
        features = [
            self._pathway_features(pathway, factor, x, size, out_size)
            for pathway, factor in zip(self.pathways, self.geometry.factors)
        ]
        return self.head(torch.cat(features, dim=1))

    def _pathway_features(self, pathway: Pathway, factor: int, x: torch.Tensor,
                          size: tuple[int, ...], out_size: list[int]) -> torch.Tensor:
        crops = [self.geometry.pathway_crop(factor, s) for s in size]
        x = x[:, :, crops[0][0]:crops[0][1], crops[1][0]:crops[1][1], crops[2][0]:crops[2][1]]
        if factor > 1:
            x = F.avg_pool3d(x, factor)
        y = pathway(x)
        if factor > 1:
            y = F.interpolate(y, scale_factor=factor, mode="nearest")
        # Upsampled voxel t lies at input position start + factor * half_width + t.
        offsets = [
            self.geometry.margin - start - factor * self.geometry.pathway_half_width
            for start, _ in crops
        ]
        return y[
            :, :,
            offsets[0]: offsets[0] + out_size[0],
            offsets[1]: offsets[1] + out_size[1],
            offsets[2]: offsets[2] + out_size[2],
        ]
