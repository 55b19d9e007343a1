"""Memory of the data steps: declared from image headers before a voxel is read, enough for
what the steps use, and no needless full-size float copies on the way (issue #15, item 7)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import ellipsoid, tiny_ct, write_dicom_series

from liverbench.data import memory, preprocess
from liverbench.data.adapters import as_hu
from liverbench.data.io import read_mask
from liverbench.errors import InputError
from liverbench.layout import image_file
from liverbench.runtime import module_peak_mb


def header_only_nifti(path: Path, size_xyz: tuple[int, int, int]) -> Path:
    """A NIfTI header declaring an int16 volume of `size_xyz` (what ITK's header reader sees:
    the voxels are never read)."""
    small = sitk.Image([2, 2, 2], sitk.sitkInt16)
    sitk.WriteImage(small, str(path))
    data = bytearray(path.read_bytes()[:352])
    data[42:48] = np.array(size_xyz, dtype="<i2").tobytes()
    path.write_bytes(bytes(data))
    return path


def test_header_gives_voxels_and_stored_bytes(tmp_path: Path) -> None:
    image, mask = tiny_ct()
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(sitk.Cast(image, sitk.sitkFloat32), str(tmp_path / "ct.nrrd"))
    write_dicom_series(image, tmp_path / "dicom")
    voxels = int(np.prod(image.GetSize()))
    assert memory.header_of(tmp_path / "ct.nii.gz") == (voxels, 2)
    assert memory.header_of(tmp_path / "ct.nrrd") == (voxels, 4)
    assert memory.header_of(tmp_path / "dicom")[0] == voxels
    big = header_only_nifti(tmp_path / "big.nii", (1024, 1024, 600))
    assert memory.header_of(big) == (1024 * 1024 * 600, 2)


def test_declared_memory_follows_the_scan(tmp_path: Path) -> None:
    """A 1024 x 1024 x 600 export needed 7.5-9.4 GB in these steps, which declared 3000 MB."""
    big = header_only_nifti(tmp_path / "big.nii", (1024, 1024, 600))
    demo = header_only_nifti(tmp_path / "demo.nii", (224, 192, 200))
    for step in memory.STEP_BYTES:
        assert memory.data_rule_mb(step, [big]) > 4000, step
        assert memory.data_rule_mb(step, [demo]) < 1000, step
        assert memory.data_rule_mb(step, [demo, big]) == memory.data_rule_mb(step, [big])
    with pytest.raises(InputError, match="unknown data step 'resample'"):
        memory.data_rule_mb("resample", [demo])


def test_a_missing_input_defers_to_snakemake(tmp_path: Path) -> None:
    """Snakemake decides a job's resources once its inputs exist when the function raises
    FileNotFoundError naming one of them."""
    missing = "results/x/cases/P001/cect.nii"
    with pytest.raises(FileNotFoundError) as error:
        memory.data_rule_mb("pair", [missing])
    assert error.value.filename == missing


def test_bin_shrink_in_slabs_equals_one_float_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    image, _ = tiny_ct(shape=(23, 30, 31))
    monkeypatch.setattr(preprocess, "SLAB_VOXELS", 30 * 31 * 4)  # several slabs
    for factors in ([2, 2, 2], [3, 1, 4], [1, 1, 5]):
        expected = sitk.BinShrink(sitk.Cast(image, sitk.sitkFloat32), factors)
        shrunk = preprocess.bin_shrink_float(image, factors)
        assert shrunk.GetSize() == expected.GetSize()
        assert shrunk.GetOrigin() == expected.GetOrigin()
        assert shrunk.GetSpacing() == expected.GetSpacing()
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(shrunk),
                                      sitk.GetArrayViewFromImage(expected))


def test_mask_resampled_without_a_float_copy_is_unchanged() -> None:
    image, mask = tiny_ct()
    reference = preprocess.working_reference(image, preprocess.WorkingGrid((8, 16, 16),
                                                                           (9.0, 7.0, 7.0)))
    transform = sitk.Euler3DTransform((0, 0, 0), 0.05, 0.0, 0.1, (3.0, -4.0, 2.5))
    before = preprocess.resample_mask(sitk.Cast(mask, sitk.sitkFloat32), reference, transform)
    after = preprocess.resample_mask(mask, reference, transform)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(before),
                                  sitk.GetArrayViewFromImage(after))
    assert sitk.GetArrayViewFromImage(after).sum() > 0


def test_largest_body_is_the_largest_region() -> None:
    array = np.full((12, 20, 20), -1000, np.int16)
    array[2:4, 2:4, 2:4] = 40  # a small region first in label order
    array[5:11, 6:18, 5:15] = 40  # the body
    image = sitk.GetImageFromArray(array)
    centroid, box = preprocess.largest_body(image)
    assert box == [5, 6, 5, 10, 12, 6]
    np.testing.assert_allclose(centroid, [9.5, 11.5, 7.5])
    assert preprocess.largest_body(sitk.GetImageFromArray(np.full((4, 4, 4), -1000,
                                                                  np.int16))) is None


def test_as_hu_rounds_float_exports_slab_by_slab() -> None:
    values = np.array([[[-1024.4, 0.5, 1.5, 40000.0], [-40000.0, 2.5, -0.5, 99.6]]] * 3,
                      np.float32)
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((0.7, 0.8, 2.0))
    hu = as_hu(image)
    assert hu.GetPixelID() == sitk.sitkInt16 and hu.GetSpacing() == image.GetSpacing()
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(hu),
                                  np.clip(np.rint(values), -32768, 32767).astype(np.int16))
    already = sitk.Cast(image, sitk.sitkInt16)
    assert as_hu(already) is already


def test_mask_as_0_255_or_float_reads_as_uint8_0_1(tmp_path: Path) -> None:
    _, mask = tiny_ct()
    for name, stored in (("m255.nii", sitk.Cast(mask * 255, sitk.sitkUInt8)),
                         ("mfloat.nrrd", sitk.Cast(mask, sitk.sitkFloat32)),
                         ("m01.nii", mask)):
        sitk.WriteImage(stored, str(tmp_path / name))
        read = read_mask(tmp_path / name)
        assert read.GetPixelID() == sitk.sitkUInt8, name
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(read),
                                      sitk.GetArrayViewFromImage(mask))


def peak_mb(args: list[str]) -> float:
    return module_peak_mb("liverbench.data", args, {"OMP_NUM_THREADS": "1"})


def test_data_steps_stay_within_what_they_declare(tmp_path: Path) -> None:
    """Preprocessing a 512 x 512 x 160 CT (42 M voxels, 80 MB as int16) holds no float32
    copy of it: it used 12 bytes per voxel above the interpreter (float casts of the CT and
    the mask, a second 32-bit label image), now about 7.6 — and within its declaration."""
    shape = (160, 512, 512)
    body = ellipsoid(shape, (80, 256, 256), (400, 200, 230))
    ct = np.where(body, np.int16(40), np.int16(-1000))
    liver = ellipsoid(shape, (80, 230, 200), (40, 60, 70)) & body
    case = tmp_path / "case"
    case.mkdir()
    for phase in ("cect", "ncect"):
        image = sitk.GetImageFromArray(ct)
        image.SetSpacing((0.7, 0.7, 1.5))
        sitk.WriteImage(image, image_file(str(case), phase))
        mask = sitk.GetImageFromArray(liver.astype(np.uint8))
        mask.CopyInformation(image)
        sitk.WriteImage(mask, image_file(str(case), f"{phase}_liver"))
    del ct, body, liver
    settings = json.dumps({"shape": [32, 32, 32], "spacing": [6.0, 8.0, 8.0],
                           "window": [-160, 240]})
    command = ["preprocess", "--case", str(case), "--settings", settings, "--out"]
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    for phase in ("cect", "ncect"):
        image, mask = tiny_ct()
        sitk.WriteImage(image, image_file(str(tiny), phase))
        sitk.WriteImage(mask, image_file(str(tiny), f"{phase}_liver"))
    base = peak_mb([*command[:2], str(tiny), *command[3:], str(tmp_path / "tiny_out")])
    used = peak_mb(command + [str(tmp_path / "out")])
    voxels = np.prod(shape)
    assert (used - base) * 2**20 / voxels <= 9.0, f"{used:.0f} MB against {base:.0f} MB"
    declared = memory.data_rule_mb("preprocess", [image_file(str(case), "cect")])
    assert used <= declared
