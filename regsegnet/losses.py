"""RegSegNet's training loss, from MONAI's terms:

    λ_MI·(−MI(warped CECT, nCECT)) + λ_Dice·(1 − Dice(warped CECT liver, nCECT liver))
    + λ_BE·bending energy(field)

MI is the global Parzen-window MI over a random subset of voxels: on all voxels of a 64³
volume MONAI's MI costs more than the U-Net step itself (toolchain notes, ~0.4 s), and a
few thousand samples estimate a 23-bin joint histogram well (elastix samples 2048).
The bending energy is normalised by the grid size, so one λ_BE means the same smoothness at
64³ and 128³ (voxel displacements are divided by the grid size, derivatives taken per
normalised coordinate).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from monai.losses import BendingEnergyLoss, DiceLoss, GlobalMutualInformationLoss
from torch import nn

from regsegnet.settings import LossWeights


@dataclass
class LossTerms:
    total: torch.Tensor
    mi: torch.Tensor  # −MI (MONAI's sign: lower is better)
    dice: torch.Tensor  # 1 − soft Dice
    bending: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        names = ("total", "mi", "dice", "bending")
        return {name: float(getattr(self, name).detach()) for name in names}


def sample_voxels(
    images: tuple[torch.Tensor, ...], count: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, ...]:
    """The same `count` random voxels (with replacement) of each (B, 1, ...) volume, as (B, 1, N).

    Indices are drawn on the CPU so one seeded generator serves CPU and GPU runs alike.
    """
    flat = [image.reshape(image.shape[0], 1, -1) for image in images]
    total = flat[0].shape[-1]
    if count <= 0 or count >= total:
        return tuple(flat)
    index = torch.randint(total, (count,), generator=generator).to(flat[0].device)
    return tuple(volume[..., index] for volume in flat)


class RegistrationLoss(nn.Module):
    def __init__(self, weights: LossWeights, mi_bins: int = 23, mi_samples: int = 16384) -> None:
        super().__init__()
        self.weights = weights
        self.mi_samples = mi_samples
        self.mutual_information = GlobalMutualInformationLoss(num_bins=mi_bins)
        self.dice = DiceLoss(smooth_nr=1e-5, smooth_dr=1e-5)
        self.bending_energy = BendingEnergyLoss(normalize=True)

    def forward(
        self,
        warped: torch.Tensor,
        fixed: torch.Tensor,
        warped_mask: torch.Tensor,
        fixed_mask: torch.Tensor,
        field: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> LossTerms:
        warped_samples, fixed_samples = sample_voxels((warped, fixed), self.mi_samples, generator)
        mi = self.mutual_information(warped_samples, fixed_samples)
        dice = self.dice(warped_mask, fixed_mask)
        bending = self.bending(field)
        total = self.weights.mi * mi + self.weights.dice * dice + self.weights.bending * bending
        return LossTerms(total=total, mi=mi, dice=dice, bending=bending)


    def bending(self, field: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():  # MONAI 1.6 indexes with lists; torch warns each call
            warnings.filterwarnings("ignore", message="Using a non-tuple sequence")
            return self.bending_energy(field)


def hard_dice(prediction: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> float:
    """Dice of `prediction >= threshold` against a binary target (1.0 when both are empty)."""
    p = prediction >= threshold
    t = target >= 0.5
    denominator = int(p.sum()) + int(t.sum())
    return 1.0 if denominator == 0 else 2.0 * int((p & t).sum()) / denominator
