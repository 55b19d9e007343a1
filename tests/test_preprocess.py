"""Working grids, their inverse, and registration pairs."""

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from conftest import tiny_ct, write_case

from liverbench.data.__main__ import make_pair, preprocess_case
from liverbench.data.io import read_image, read_transform
from liverbench.data.prealign import Settings as PrealignSettings
from liverbench.data.preprocess import (
    WorkingGrid,
    body_centre,
    preprocess_image,
    resample_mask,
    to_original,
    working_reference,
)

GRID = WorkingGrid(shape=(16, 24, 24), spacing=(12.0, 12.0, 12.0), window=(-160, 240))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_working_grid_is_centred_on_the_body():
    image, _ = tiny_ct(shape=(20, 40, 40), origin_xyz=(-100.0, -300.0, 50.0))
    reference = working_reference(image, GRID)
    assert reference.GetSize() == (24, 24, 16)
    assert reference.GetSpacing() == (12.0, 12.0, 12.0)
    centre = reference.TransformContinuousIndexToPhysicalPoint([11.5, 11.5, 7.5])
    np.testing.assert_allclose(centre, body_centre(image), atol=1e-6)


def test_normalised_to_window():
    image, _ = tiny_ct()
    out = sitk.GetArrayFromImage(preprocess_image(image, GRID))
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    assert out.shape == GRID.shape


def test_mask_round_trip_to_original_geometry():
    image, mask = tiny_ct(shape=(24, 48, 48), spacing_xyz=(4.0, 4.0, 5.0))
    reference = working_reference(image, WorkingGrid((16, 24, 24), (8.0, 8.0, 8.0)))
    back = to_original(resample_mask(mask, reference), image)
    assert back.GetSize() == image.GetSize() and back.GetOrigin() == image.GetOrigin()
    assert dice(sitk.GetArrayFromImage(back) > 0, sitk.GetArrayFromImage(mask) > 0) > 0.9


def test_case_and_pair(tmp_path: Path):
    case = write_case(tmp_path / "A")
    preprocess_case(case, tmp_path / "prep", GRID)
    for name in ("cect", "ncect", "cect_liver", "ncect_liver"):
        assert read_image(tmp_path / "prep" / f"{name}.nii.gz").GetSize() == (24, 24, 16)
    make_pair(case / "cect.nii.gz", case / "cect_liver.nii.gz", case / "ncect.nii.gz",
              case / "ncect_liver.nii.gz", tmp_path / "pair", GRID,
              PrealignSettings(mode="none"), tmp_path / "pair" / "prealign.tfm")
    images = {n: read_image(tmp_path / "pair" / f"{n}.nii.gz")
              for n in ("moving", "moving_liver", "fixed", "fixed_liver")}
    origins = {img.GetOrigin() for img in images.values()}
    assert len(origins) == 1  # one grid for the whole pair
    # with prealign mode none, zero displacement = scanner geometry: the moving liver on the
    # fixed grid is the CECT liver resampled through world coordinates
    # (the pre-aligned case: tests/test_prealign.py)
    prealignment = read_transform(tmp_path / "pair" / "prealign.tfm")
    assert prealignment.TransformPoint((1.0, 2.0, 3.0)) == (1.0, 2.0, 3.0)
    ncect = read_image(case / "ncect.nii.gz")
    world = resample_mask(read_image(case / "cect_liver.nii.gz"), images["fixed"])
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(world), sitk.GetArrayFromImage(images["moving_liver"])
    )
    assert ncect.GetSize() != images["fixed"].GetSize()
