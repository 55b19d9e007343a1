"""Volumes in memory and DeepMedic's class-balanced segment sampling.

DeepMedic trains on small segments instead of whole volumes: each segment's output patch is
centred on a voxel drawn from one class, half of them (by default) in the liver, the rest in
the body outside it, so the small liver class is not swamped by background. Images are
z-scored over the body as in DeepMedic; what lies beyond the volume reads as air.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from liverbench.data.io import ImageError, read_image, read_mask
from liverbench.errors import InputError

# Preprocessed CT is clipped to a HU window and scaled to [0, 1]; 0 is air (and anything below
# the window), so the body is what lies above it.
BODY_THRESHOLD = 0.0
# Label value of voxels outside the volume: the loss ignores them.
IGNORE = 255


@dataclass
class Volume:
    """One standardised image (z, y, x), its liver label if known, and its air value."""

    name: str
    image: np.ndarray
    label: np.ndarray | None
    air: float
    reference: sitk.Image | None = None


def standardise(raw: np.ndarray) -> tuple[np.ndarray, float]:
    """Z-score over the body; returns the image and the value air maps to (for padding)."""
    body = raw > BODY_THRESHOLD
    values = raw[body] if body.sum() > 1 else raw.ravel()
    mean, std = float(values.mean()), float(values.std())
    std = std if std > 1e-6 else 1.0
    return ((raw - mean) / std).astype(np.float32), (0.0 - mean) / std


def load_volume(image_path: str | os.PathLike, label_path: str | os.PathLike | None = None,
                name: str | None = None) -> Volume:
    """Read a preprocessed image (and its liver mask, which must share its grid)."""
    image = read_image(image_path)
    volume = volume_of(image, None, name or str(image_path))  # checks the image first
    if label_path is not None:
        mask = read_mask(label_path, reference=image, reference_path=image_path)
        volume.label = sitk.GetArrayFromImage(mask).astype(np.uint8)
    return volume


def volume_of(image: sitk.Image, label: np.ndarray | None, name: str) -> Volume:
    """A preprocessed image (values in [0, 1]) as the network sees it: z-scored over the body."""
    raw = sitk.GetArrayFromImage(image).astype(np.float32)
    if raw.min() < -1e-3 or raw.max() > 1 + 1e-3:
        raise ImageError(
            f"{name}: expected a preprocessed image with values in [0, 1], got "
            f"[{raw.min():.3g}, {raw.max():.3g}] (run the preprocessing first)"
        )
    standardised, air = standardise(raw)
    reference = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    reference.CopyInformation(image)
    return Volume(name, standardised, label, air, reference)


def load_volumes(images: Sequence[str], labels: Sequence[str]) -> list[Volume]:
    if len(images) != len(labels):
        raise InputError(f"got {len(images)} images but {len(labels)} labels; give one label each")
    return [load_volume(image, label) for image, label in zip(images, labels)]


class SegmentSampler:
    """Draws training batches of segments with a fixed fraction centred in the liver.

    `input_size` and `output_size` are the network's segment sizes; a segment is placed so
    that its output patch is centred on the drawn voxel; what it covers beyond the volume
    reads as air, and its labels there as IGNORE.
    """

    def __init__(self, volumes: Sequence[Volume], input_size: Sequence[int],
                 output_size: Sequence[int], foreground_fraction: float,
                 rng: np.random.Generator) -> None:
        if not volumes:
            raise InputError("no training volumes given")
        self.input_size = tuple(int(s) for s in input_size)
        self.output_size = tuple(int(s) for s in output_size)
        self.margin = tuple((i - o) // 2 for i, o in zip(self.input_size, self.output_size))
        self.foreground_fraction = foreground_fraction
        self.rng = rng
        self.volumes = list(volumes)
        self.foreground = []
        for volume in self.volumes:
            if volume.label is None:
                raise InputError(f"{volume.name}: a training volume needs a label")
            if not volume.label.any():
                raise ImageError(f"{volume.name}: the liver label is empty")
            if volume.label.all():
                raise ImageError(f"{volume.name}: the liver label covers the whole volume")
            self.foreground.append(np.flatnonzero(volume.label).astype(np.int32))

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Images (batch, 1, *input_size) float32 and labels (batch, *output_size) int64."""
        n_foreground = int(round(batch_size * self.foreground_fraction))
        images = np.empty((batch_size, 1, *self.input_size), dtype=np.float32)
        labels = np.empty((batch_size, *self.output_size), dtype=np.int64)
        for index in range(batch_size):
            which = int(self.rng.integers(len(self.volumes)))
            volume = self.volumes[which]
            if index < n_foreground:
                flat = self.foreground[which][self.rng.integers(self.foreground[which].size)]
            else:
                flat = self._background_voxel(volume)
            centre = np.unravel_index(flat, volume.image.shape)
            out_start = [int(c) - o // 2 for c, o in zip(centre, self.output_size)]
            in_start = [s - m for s, m in zip(out_start, self.margin)]
            images[index, 0] = crop(volume.image, in_start, self.input_size, volume.air)
            labels[index] = crop(volume.label, out_start, self.output_size, IGNORE)
        return images, labels

    def _background_voxel(self, volume: Volume, tries: int = 1000) -> int:
        """A uniformly drawn body voxel outside the liver (rejection sampling keeps no index
        list of the large background class in memory)."""
        image, label = volume.image.ravel(), volume.label.ravel()
        for _ in range(tries):
            flat = int(self.rng.integers(label.size))
            if label[flat] == 0 and image[flat] > volume.air + 1e-6:
                return flat
        outside = np.flatnonzero(label == 0)
        return int(outside[self.rng.integers(outside.size)])


def crop(array: np.ndarray, start: Sequence[int], size: Sequence[int], fill: float) -> np.ndarray:
    """`array[start:start+size]` per axis, where the parts outside the array read as `fill`."""
    out = np.full(tuple(size), fill, dtype=array.dtype)
    source, target = [], []
    for s, n, extent in zip(start, size, array.shape):
        lo, hi = max(s, 0), min(s + n, extent)
        if hi <= lo:
            return out
        source.append(slice(lo, hi))
        target.append(slice(lo - s, hi - s))
    out[tuple(target)] = array[tuple(source)]
    return out
