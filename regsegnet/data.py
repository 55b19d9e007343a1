"""Registration pairs on disk -> checked arrays -> tensors.

A pair (docs/contracts.md) is four images on the working grid of the fixed nCECT: `moving
moving_liver fixed fixed_liver` (`liverbench.layout.PAIR_FILES`). Training reads whole pair
folders; prediction gets the files one by one and never the nCECT liver (ground truth).
Everything that would make training or prediction silently wrong (a missing file, grids that
differ, a shape the model was not built for, a raw HU image where a normalised one belongs)
stops here with the file named.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from liverbench.data.io import ImageError, geometry_summary, read_image, read_mask, same_geometry
from liverbench.data.preprocess import resample_mask
from liverbench.layout import PAIR_FILES, image_file

NORMALISED_RANGE = (-0.01, 1.01)  # preprocessed images lie in [0, 1]


@dataclass(frozen=True)
class PairFiles:
    """The files of one pair; `fixed_liver` None at prediction (it is ground truth)."""

    moving: Path
    moving_liver: Path
    fixed: Path
    fixed_liver: Path | None = None

    @classmethod
    def in_folder(cls, folder: str | os.PathLike) -> PairFiles:
        return cls(**{name: Path(image_file(str(folder), name)) for name in PAIR_FILES})


@dataclass
class Pair:
    """One (moving CECT, fixed nCECT) pair as (z, y, x) arrays; `reference` carries the grid."""

    name: str
    moving: np.ndarray
    moving_mask: np.ndarray
    fixed: np.ndarray
    fixed_mask: np.ndarray | None
    reference: sitk.Image
    files: PairFiles

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.fixed.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm, (z, y, x) like the arrays."""
        return tuple(reversed(self.reference.GetSpacing()))  # type: ignore[return-value]


def _read_normalised(path: Path) -> sitk.Image:
    image = read_image(path)
    array = sitk.GetArrayViewFromImage(image)
    low, high = float(array.min()), float(array.max())
    if low < NORMALISED_RANGE[0] or high > NORMALISED_RANGE[1]:
        raise ImageError(
            f"{path}: values {low:.3g}..{high:.3g}; expected a preprocessed image in [0, 1]"
        )
    return image


def read_pair(
    name: str,
    files: PairFiles,
    shape: Sequence[int] | None = None,
    *,
    moving_mask_path: str | os.PathLike | None = None,
    prealign: sitk.Transform | None = None,
) -> Pair:
    """Read and check one pair.

    `shape` is the working shape (z, y, x) the model expects. The nCECT liver is read only
    when `files.fixed_liver` is given. `moving_mask_path` replaces the annotated CECT liver
    (`moving_liver`) by a CECT segmentation in any geometry, carried onto the pair's grid as
    the pair's CECT was: through the pair's pre-alignment `prealign` (nCECT world -> CECT
    world), which is then required.
    """
    fixed = _read_normalised(files.fixed)
    if shape is not None and tuple(reversed(fixed.GetSize())) != tuple(shape):
        raise ImageError(
            f"{files.fixed}: shape (z, y, x) {tuple(reversed(fixed.GetSize()))} "
            f"differs from the working shape {tuple(shape)}"
        )
    moving = _read_normalised(files.moving)
    if not same_geometry(moving, fixed):
        raise ImageError(
            f"{files.moving}: geometry ({geometry_summary(moving)}) differs from "
            f"{files.fixed} ({geometry_summary(fixed)}); a pair lies on one grid"
        )
    if moving_mask_path is None:
        moving_mask = read_mask(files.moving_liver, fixed, files.fixed, allow_empty=True)
        if not sitk.GetArrayViewFromImage(moving_mask).any():
            raise EmptyMovingLiver(
                f"{files.moving_liver}: mask is empty (the CECT liver misses this grid)"
            )
    else:
        if prealign is None:
            raise ValueError(f"{moving_mask_path}: carrying a CECT mask needs the pre-alignment")
        moving_mask = resample_mask(read_mask(moving_mask_path), fixed, prealign)
        if not sitk.GetArrayViewFromImage(moving_mask).any():
            raise ImageError(f"{moving_mask_path}: the CECT liver mask misses the pair's grid")
    fixed_mask = None
    if files.fixed_liver is not None:
        fixed_mask = sitk.GetArrayFromImage(read_mask(files.fixed_liver, fixed, files.fixed))
    return Pair(
        name=name,
        moving=sitk.GetArrayFromImage(moving).astype(np.float32, copy=False),
        moving_mask=sitk.GetArrayFromImage(moving_mask),
        fixed=sitk.GetArrayFromImage(fixed).astype(np.float32, copy=False),
        fixed_mask=fixed_mask,
        reference=fixed,
        files=files,
    )


def load_pair(folder: str | os.PathLike, shape: Sequence[int] | None = None) -> Pair:
    """Read and check one pair folder (all four files), named after the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: pair folder not found")
    return read_pair(folder.name, PairFiles.in_folder(folder), shape)


@dataclass
class Batch:
    """(B, 1, Z, Y, X) float tensors; masks as 0/1 floats."""

    moving: torch.Tensor
    moving_mask: torch.Tensor
    fixed: torch.Tensor
    fixed_mask: torch.Tensor | None

    def to(self, device: torch.device) -> Batch:
        return Batch(
            *(t.to(device) if t is not None else None for t in
              (self.moving, self.moving_mask, self.fixed, self.fixed_mask))
        )


def _stack(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.ascontiguousarray(a, dtype=np.float32) for a in arrays]))[
        :, None
    ]


def make_batch(pairs: Sequence[Pair], flips: Sequence[Sequence[int]] | None = None) -> Batch:
    """Stack pairs into a batch; `flips[i]` lists the axes along which pair i is mirrored
    (the same for its four volumes, so the registration problem stays consistent)."""
    keys = ("moving", "moving_mask", "fixed", "fixed_mask")
    volumes: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    for index, pair in enumerate(pairs):
        axes = tuple(flips[index]) if flips is not None else ()
        for key in volumes:
            array = getattr(pair, key)
            if array is not None and axes:
                array = np.flip(array, axis=axes)
            volumes[key].append(array)
    has_fixed_mask = all(a is not None for a in volumes["fixed_mask"])
    return Batch(
        moving=_stack(volumes["moving"]),
        moving_mask=_stack(volumes["moving_mask"]),
        fixed=_stack(volumes["fixed"]),
        fixed_mask=_stack(volumes["fixed_mask"]) if has_fixed_mask else None,
    )


class EmptyMovingLiver(ImageError):
    """The CECT liver of a pair does not reach the pair's grid: nothing to register it by."""


def load_pairs(
    folders: Sequence[str | os.PathLike],
    shape: Sequence[int] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Pair]:
    """Read training or validation pairs (with both masks), all of one shape.

    A pair whose CECT liver misses its grid (an inter-patient pair whose scans share no
    world frame) teaches nothing: it is left out, and said so through `log`. Any other
    problem, or no usable pair at all, is an error.
    """
    if not folders:
        raise ImageError("no pair folders given")
    pairs = []
    for folder in folders:
        try:
            pairs.append(load_pair(folder, shape))
        except EmptyMovingLiver as error:
            if log is None:
                raise
            log(f"skipping pair: {error}")
    if not pairs:
        raise ImageError(f"none of the {len(folders)} pair folders is usable (first: {folders[0]})")
    first = pairs[0]
    for pair in pairs[1:]:
        if pair.shape != first.shape:
            raise ImageError(
                f"{pair.files.fixed}: shape {pair.shape} differs from "
                f"{first.files.fixed} {first.shape}; pairs share one shape"
            )
    return pairs
