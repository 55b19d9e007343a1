"""Generated RegSegNet pairs for the regsegnet tests: two smooth organs in a body, the moving
copy shifted by a few voxels with other contrast (as CECT vs nCECT), written as pair folders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

from liverbench.data.io import write_array
from liverbench.layout import image_file

SPACING = 6.0
TINY = {"channels": [4, 8, 8], "mi_samples": 2048, "lr": 3e-3}  # a tiny, quick network




def _ellipsoid(shape, centre, radii) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)) <= 1.0


def generated_pair(shape=(32, 32, 32), shift=(2.0, 3.0, -3.0), seed=0):
    """(moving, moving_liver, fixed, fixed_liver): the moving anatomy is the fixed one shifted
    by `shift` voxels, with a brighter liver (contrast) and other noise."""
    rng = np.random.default_rng(seed)
    centre = np.array(shape) / 2
    body = _ellipsoid(shape, centre, np.array(shape) * 0.45)
    liver = _ellipsoid(shape, centre + [0, -2, 3], np.array(shape) * [0.22, 0.19, 0.25])
    other = _ellipsoid(shape, centre + [2, 6, -7], np.array(shape) * [0.15, 0.12, 0.12])

    def shifted(mask):
        return ndimage.shift(mask.astype(np.float32), shift, order=1) >= 0.5

    def image(liver_mask, other_mask, liver_value, other_value):
        volume = 0.05 + 0.35 * body + (liver_value - 0.35) * liver_mask
        volume = volume + (other_value - 0.35) * other_mask
        volume = ndimage.gaussian_filter(volume.astype(np.float32), 0.7)
        return np.clip(volume + rng.normal(0, 0.02, shape), 0, 1).astype(np.float32)

    moving_liver, moving_other = shifted(liver), shifted(other)
    return (
        image(moving_liver, moving_other, 0.8, 0.45), moving_liver.astype(np.uint8),
        image(liver, other, 0.55, 0.5), liver.astype(np.uint8),
    )


def grid(shape, spacing=SPACING, origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    reference = sitk.Image(list(reversed(shape)), sitk.sitkUInt8)
    reference.SetSpacing([spacing] * 3)
    reference.SetOrigin(origin)
    return reference


def write_pair(folder: Path, shape=(32, 32, 32), **kwargs) -> Path:
    reference = grid(shape)
    names = ("moving", "moving_liver", "fixed", "fixed_liver")
    for name, array in zip(names, generated_pair(shape, **kwargs)):
        write_array(array, reference, image_file(str(folder), name))
    return folder


def write_original_ncect(case_root: Path, patient: str, shape=(32, 32, 32)) -> Path:
    """An 'original' nCECT on a finer, larger grid covering the pair's grid."""
    fine = tuple(int(s * 1.5) + 4 for s in shape)
    reference = grid(fine, spacing=SPACING / 1.5, origin=(-8.0, -8.0, -8.0))
    path = Path(image_file(str(case_root / patient), "ncect"))
    write_array(np.zeros(fine, dtype=np.int16), reference, path)
    return path


def write_prealign(path: Path, translation=(0.0, 0.0, 0.0)) -> Path:
    """A pair's pre-alignment: nCECT world p -> CECT world p + translation (mm, x y z)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteTransform(sitk.TranslationTransform(3, list(translation)), str(path))
    return path


def tensor(array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float32))[None, None]




def write_pairs(root: Path) -> Path:
    """Three 24³ pairs: A__A, B__B (intra-patient) and A__B."""
    write_pair(root / "A__A", shape=(24, 24, 24), seed=0)
    write_pair(root / "B__B", shape=(24, 24, 24), shift=(-2.0, 2.0, 2.0), seed=1)
    write_pair(root / "A__B", shape=(24, 24, 24), shift=(1.0, -2.0, 2.0), seed=2)
    return root
