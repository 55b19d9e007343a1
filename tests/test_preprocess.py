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
from liverbench.layout import image_file

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
        assert read_image(image_file(str(tmp_path / "prep"), name)).GetSize() == (24, 24, 16)
    make_pair(*(Path(image_file(str(case), n)) for n in ("cect", "cect_liver", "ncect")),
              Path(image_file(str(case), "ncect_liver")), tmp_path / "pair", GRID,
              PrealignSettings(mode="none"), tmp_path / "pair" / "prealign.tfm")
    images = {n: read_image(image_file(str(tmp_path / "pair"), n))
              for n in ("moving", "moving_liver", "fixed", "fixed_liver")}
    origins = {img.GetOrigin() for img in images.values()}
    assert len(origins) == 1  # one grid for the whole pair
    # with prealign mode none, zero displacement = scanner geometry: the moving liver on the
    # fixed grid is the CECT liver resampled through world coordinates
    # (the pre-aligned case: tests/test_prealign.py)
    prealignment = read_transform(tmp_path / "pair" / "prealign.tfm")
    assert prealignment.TransformPoint((1.0, 2.0, 3.0)) == (1.0, 2.0, 3.0)
    ncect = read_image(image_file(str(case), "ncect"))
    world = resample_mask(read_image(image_file(str(case), "cect_liver")), images["fixed"])
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(world), sitk.GetArrayFromImage(images["moving_liver"])
    )
    assert ncect.GetSize() != images["fixed"].GetSize()


def test_a_mask_on_a_large_grid_is_resampled_only_where_it_lands():
    """resample_mask on a big reference resamples the box the mask lands in: the result is
    voxel for voxel the full resampling (through a rotation and a smooth deformation)."""
    from liverbench.data import preprocess

    array = np.zeros((40, 60, 60), np.uint8)
    array[10:25, 15:40, 20:45] = 1
    mask = sitk.GetImageFromArray(array)
    mask.SetSpacing([2.0, 2.0, 3.0])
    reference = sitk.Image([160, 150, 50], sitk.sitkUInt8)  # 1.2 M voxels: the box path
    reference.SetSpacing([1.0, 1.0, 2.5])
    reference.SetOrigin([-20.0, -10.0, -5.0])
    euler = sitk.Euler3DTransform([60.0, 60.0, 60.0], 0.05, -0.03, 0.1, [4.0, -6.0, 3.0])
    displacement = np.random.default_rng(0).normal(0, 3, (12, 12, 12, 3))
    field = sitk.GetImageFromArray(displacement, isVector=True)
    field.SetSpacing([15.0, 15.0, 15.0])
    field.SetOrigin([-30.0, -30.0, -30.0])
    transform = sitk.CompositeTransform([sitk.DisplacementFieldTransform(field), euler])
    box = preprocess.landing_box(sitk.Cast(mask, sitk.sitkFloat32), reference, transform)
    assert box is not None and np.prod(box[1]) < 0.8 * np.prod(reference.GetSize())
    fast = preprocess.resample_mask(mask, reference, transform)
    full = sitk.Cast(sitk.Resample(sitk.Cast(mask, sitk.sitkFloat32), reference, transform,
                                   sitk.sitkLinear, 0.0, sitk.sitkFloat32) >= 0.5,
                     sitk.sitkUInt8)
    assert sitk.GetArrayViewFromImage(fast).sum() > 1000
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(fast),
                                  sitk.GetArrayViewFromImage(full))
    assert fast.GetOrigin() == reference.GetOrigin()
