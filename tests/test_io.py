"""Image IO: every kind of bad input stops with the file named; writes are atomic."""

import re
import subprocess
import sys
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


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_truncated_nifti_is_refused(tmp_path, suffix):
    """ITK read a NIfTI cut short with exit 0, the missing voxels zero: a ground-truth liver
    went from 1569 to 686 voxels (issue #15). The file's length is checked against its header."""
    voxels = np.random.default_rng(0).integers(0, 2, (20, 30, 40), dtype=np.uint8)
    mask = sitk.GetImageFromArray(voxels)  # random: the gzip stream is long, its header kept
    whole = tmp_path / f"whole{suffix}"
    write_image(mask, whole)
    assert read_image(whole).GetSize() == (40, 30, 20)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    with pytest.raises(ImageError, match=f"cut{re.escape(suffix)}: file is cut short"):
        read_image(cut)


def test_a_write_cut_short_is_an_error_and_leaves_no_file(tmp_path):
    """With a file-size limit (a nearly full disk) `regsegnet predict` exited 0 and left a
    mask cut at 40,960 bytes (issue #15): the written file is verified before it is renamed."""
    image = sitk.GetImageFromArray(np.zeros((40, 64, 64), np.float32))
    target = tmp_path / "big.nii"
    code = (
        "import resource, sys, SimpleITK as sitk, numpy as np\n"
        "from liverbench.data.io import write_image\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (40960, 40960))\n"
        "write_image(sitk.GetImageFromArray(np.zeros((40, 64, 64), np.float32)), sys.argv[1])\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True,
                            text=True)
    assert result.returncode != 0, "a short write must fail"
    assert f"{target}: the write was cut short" in result.stderr, result.stderr
    assert not target.exists() and not list(tmp_path.glob(".big.nii*"))
    write_image(image, target)  # without the limit it is written whole
    assert read_image(target).GetSize() == (64, 64, 40)


def test_header_declaring_a_huge_volume_is_refused_before_reading(tmp_path):
    """A 352-byte header declaring 1024 x 1024 x 600 voxels was read as a zero-filled 3.8 GB
    volume (issue #15); its length is checked before ITK allocates anything."""
    small = tmp_path / "small.nii"
    write_image(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.int16)), small)
    header = bytearray(small.read_bytes()[:352])
    header[42:48] = np.array([1024, 1024, 600], "<i2").tobytes()
    damaged = tmp_path / "header_only.nii"
    damaged.write_bytes(bytes(header))
    with pytest.raises(ImageError, match=r"header_only\.nii: file is cut short: 352 bytes of "
                                         r"the 1258291552"):
        read_image(damaged)
