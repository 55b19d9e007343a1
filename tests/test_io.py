"""Image IO: every kind of bad input stops with the file named; writes are atomic."""

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import tiny_ct

from liverbench.data.io import ImageError, atomic_path, read_image, read_mask, write_image


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(ImageError, match=r"nope\.nii\.gz: file not found"):
        read_image(tmp_path / "nope.nii.gz")


def test_corrupt_file_is_named(tmp_path: Path):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"this is not a nifti file")
    with pytest.raises(ImageError, match=r"bad\.nii\.gz: cannot be read"):
        read_image(bad)


def test_2d_image_refused(tmp_path: Path):
    path = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.Image([8, 8], sitk.sitkInt16), str(path))
    with pytest.raises(ImageError, match="expected a 3-D volume, got 2-D"):
        read_image(path)


def test_nan_refused(tmp_path: Path):
    array = np.zeros((4, 5, 6), np.float32)
    array[1, 2, 3] = np.nan
    path = tmp_path / "nan.nrrd"  # the NIfTI reader of ITK turns NaN into 0 itself
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    with pytest.raises(ImageError, match="NaN"):
        read_image(path)


def test_mask_checks(tmp_path: Path):
    image, mask = tiny_ct()
    image_path, mask_path = tmp_path / "ct.nii.gz", tmp_path / "mask.nii.gz"
    sitk.WriteImage(image, str(image_path))

    sitk.WriteImage(mask * 3, str(mask_path))
    with pytest.raises(ImageError, match="not binary"):
        read_mask(mask_path, image, image_path)

    sitk.WriteImage(mask * 0, str(mask_path))
    with pytest.raises(ImageError, match="mask is empty"):
        read_mask(mask_path, image, image_path)

    shifted = sitk.Image(mask)
    shifted.SetOrigin((0.0, 0.0, 0.0))
    sitk.WriteImage(shifted, str(mask_path))
    with pytest.raises(ImageError, match=r"mask geometry .* differs from the image of .*ct\.nii"):
        read_mask(mask_path, image, image_path)

    sitk.WriteImage(mask * 255, str(mask_path))
    loaded = read_mask(mask_path, image, image_path)
    assert set(np.unique(sitk.GetArrayViewFromImage(loaded))) == {0, 1}


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path):
    target = tmp_path / "out.nii.gz"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    image, _ = tiny_ct()
    write_image(image, target)
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]
    assert read_image(target).GetSize() == image.GetSize()


def test_read_grid_gives_the_geometry_from_the_header(tmp_path: Path):
    from liverbench.data.io import read_grid

    image, _ = tiny_ct()
    image.SetDirection([0, 1, 0, 1, 0, 0, 0, 0, -1])
    path = tmp_path / "ct.nii.gz"
    write_image(image, path)
    grid = read_grid(path)
    assert grid.GetSize() == image.GetSize() and grid.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_allclose(grid.GetOrigin(), image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(grid.GetSpacing(), image.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(grid.GetDirection(), image.GetDirection(), atol=1e-6)
    with pytest.raises(ImageError, match="not found"):
        read_grid(tmp_path / "missing.nii.gz")
