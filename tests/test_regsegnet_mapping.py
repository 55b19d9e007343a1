"""RegSegNet's final mapping (`regsegnet.mapping`, `predict --mappings`): nCECT world point ->
CECT world point, the pre-alignment after the network's composed field in world mm.

The CECT lives in a frame of its own (another scanner: offset, rotated); the pair's working
grid is anisotropic and not axis-aligned, so a wrong axis order, unit or direction shows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from liverbench.data.io import read_image, write_array
from regsegnet import checkpoint
from regsegnet.data import PairFiles
from regsegnet.mapping import final_mapping
from regsegnet.model import RegSegNet, SpatialTransformer
from regsegnet.predict import PairJob, predict_pairs
from regsegnet.settings import Settings

torch.set_num_threads(1)

SHAPE = (20, 24, 28)  # working grid (z, y, x)


def working_grid() -> sitk.Image:
    """The fixed working grid: anisotropic voxels, rotated 30° about z."""
    reference = sitk.Image(list(reversed(SHAPE)), sitk.sitkUInt8)
    reference.SetSpacing([5.0, 4.5, 4.0])
    reference.SetOrigin([-40.0, -80.0, -30.0])
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    reference.SetDirection([c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0])
    return reference


def prealign() -> sitk.Euler3DTransform:
    """nCECT world -> CECT world: the CECT scanner's frame is far off and rotated."""
    transform = sitk.Euler3DTransform()
    transform.SetCenter([10.0, -20.0, 15.0])
    transform.SetRotation(0.06, -0.04, 0.08)
    transform.SetTranslation([35.0, -25.0, 180.0])
    return transform


def cect_liver() -> sitk.Image:
    """An ellipsoidal liver on a fine CECT grid, placed where the pre-alignment sends the
    middle of the working grid."""
    reference = working_grid()
    centre_index = [(s - 1) / 2 for s in reference.GetSize()]
    centre = np.array(prealign().TransformPoint(
        reference.TransformContinuousIndexToPhysicalPoint(centre_index)))
    spacing = 2.0
    size = [90, 90, 80]
    origin = centre - np.array(size) * spacing / 2
    grids = np.meshgrid(*[origin[a] + spacing * np.arange(size[a]) for a in (2, 1, 0)],
                        indexing="ij")  # z, y, x world coordinates
    z, y, x = (g - c for g, c in zip(grids, centre[::-1]))
    liver = (x / 45) ** 2 + (y / 35) ** 2 + (z / 30) ** 2 <= 1
    image = sitk.GetImageFromArray(liver.astype(np.uint8))
    image.SetSpacing([spacing] * 3)
    image.SetOrigin(origin.tolist())
    return image


def through(mask: sitk.Image, reference: sitk.Image, transform: sitk.Transform) -> np.ndarray:
    """`mask` resampled onto `reference` through `transform` (linear, >= 0.5), as (z, y, x)."""
    fraction = sitk.Resample(sitk.Cast(mask, sitk.sitkFloat32), reference, transform,
                             sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(fraction) >= 0.5


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def smooth_field() -> np.ndarray:
    """A non-rigid (3, Z, Y, X) field in voxels, 2-3 voxels, different along each axis."""
    z, y, x = np.meshgrid(*[np.linspace(0, 1, s) for s in SHAPE], indexing="ij")
    return np.stack([
        2.5 * np.sin(np.pi * y) - 0.5,
        -2.0 * np.cos(np.pi * x) + 1.0 * z,
        3.0 * np.sin(np.pi * z) * np.cos(np.pi * y),
    ]).astype(np.float32)


def test_a_translation_field_moves_points_by_its_millimetres(tmp_path):
    reference = working_grid()
    field = np.zeros((3, *SHAPE), np.float32)
    field[0], field[1], field[2] = 1.5, -2.0, 0.5  # voxels, (z, y, x)
    mapping = final_mapping(field, reference, prealign())
    path = tmp_path / "mapping.h5"
    sitk.WriteTransform(mapping, str(path))
    direction = np.array(reference.GetDirection()).reshape(3, 3)
    shift_mm = direction @ (np.array([0.5, -2.0, 1.5]) * reference.GetSpacing())
    point = reference.TransformContinuousIndexToPhysicalPoint([10.3, 11.0, 9.6])
    expected = prealign().TransformPoint((np.array(point) + shift_mm).tolist())
    for transform in (mapping, sitk.ReadTransform(str(path))):
        np.testing.assert_allclose(transform.TransformPoint(point), expected, atol=1e-6)
    zero = final_mapping(np.zeros_like(field), reference, prealign())
    np.testing.assert_allclose(zero.TransformPoint(point), prealign().TransformPoint(point),
                               atol=1e-9)


def test_mapping_carries_the_cect_liver_as_the_network_warps_it():
    """Resampling the CECT liver through the mapping onto the working grid once gives the
    liver the network gets by warping the pre-aligned working-grid liver by its field."""
    reference, liver = working_grid(), cect_liver()
    moving_liver = through(liver, reference, prealign())  # the pair file, as the pair rule
    field = smooth_field()
    warped = SpatialTransformer().mask(
        torch.from_numpy(moving_liver.astype(np.float32))[None, None],
        torch.from_numpy(field)[None])[0, 0].numpy() >= 0.5
    assert dice(warped, moving_liver) < 0.85  # the field really moves the liver
    mapped = through(liver, reference, final_mapping(field, reference, prealign()))
    assert dice(mapped, warped) > 0.95
    swapped = final_mapping(field[::-1].copy(), reference, prealign())  # axes in ITK order
    assert dice(through(liver, reference, swapped), warped) < 0.9  # (the test can fail)


def _constant_field_model(shifts: list[tuple[float, float, float]]) -> RegSegNet:
    """A RegSegNet whose cascade k outputs the constant displacement shifts[k] (voxels, z y x):
    the field layer's weights zero, its bias the shift in normalised units."""
    model = RegSegNet(cascades=len(shifts), channels=(4, 8))
    half_extent = torch.tensor([(s - 1) / 2 for s in SHAPE])
    for cascade, shift in zip(model.cascades, shifts):
        layer = next(m for m in cascade.unet.model[-1].modules()
                     if isinstance(m, torch.nn.Conv3d | torch.nn.ConvTranspose3d)
                     and m.out_channels == 3)
        with torch.no_grad():
            layer.weight.zero_()
            layer.bias.copy_(torch.tensor(shift) / half_extent)
    return model


def test_predict_writes_the_mapping_of_all_cascades(tmp_path):
    """Two cascades shifting by a and b: the mapping is P(p + a + b in mm), and the mask
    written on the original nCECT is the CECT liver carried by that mapping."""
    shifts = [(1.0, -2.0, 1.5), (0.5, 1.0, -1.0)]
    model = _constant_field_model(shifts)
    settings = Settings.from_mapping({"cascades": 2, "channels": [4, 8]})
    model_path = tmp_path / "model.pt"
    checkpoint.save(checkpoint.model_payload(model, settings, SHAPE), model_path)

    reference, liver = working_grid(), cect_liver()
    moving_liver = through(liver, reference, prealign()).astype(np.uint8)
    files = PairFiles(tmp_path / "moving.nii.gz", tmp_path / "moving_liver.nii.gz",
                      tmp_path / "fixed.nii.gz")
    write_array(0.1 + 0.7 * moving_liver.astype(np.float32), reference, files.moving)
    write_array(moving_liver, reference, files.moving_liver)
    write_array(np.full(SHAPE, 0.3, np.float32), reference, files.fixed)
    original = sitk.Image([60, 54, 44], sitk.sitkInt16)  # finer, covering the working grid
    original.SetSpacing([2.5, 2.25, 2.0])
    original.SetOrigin(reference.TransformContinuousIndexToPhysicalPoint([-1, -1, -1]))
    original.SetDirection(reference.GetDirection())
    write_array(sitk.GetArrayFromImage(original), original, tmp_path / "ncect.nii.gz")
    pre = tmp_path / "prealign.tfm"
    sitk.WriteTransform(prealign(), str(pre))
    sitk.WriteImage(liver, str(tmp_path / "cect_liver.nii.gz"))
    job = PairJob("A__A", files, pre, tmp_path / "ncect.nii.gz", tmp_path / "pred.nii.gz",
                  tmp_path / "rt.json", mapping=tmp_path / "mappings" / "A__A.h5",
                  cect_liver=tmp_path / "cect_liver.nii.gz")
    predict_pairs(model_path, [job], device="cpu", log=lambda message: None)

    mapping = sitk.ReadTransform(str(job.mapping))
    total = np.sum(shifts, axis=0)[::-1]  # voxels, (x, y, z)
    direction = np.array(reference.GetDirection()).reshape(3, 3)
    shift_mm = direction @ (total * reference.GetSpacing())
    point = reference.TransformContinuousIndexToPhysicalPoint([14.0, 12.0, 10.0])
    np.testing.assert_allclose(
        mapping.TransformPoint(point),
        prealign().TransformPoint((np.array(point) + shift_mm).tolist()), atol=1e-3)
    prediction = sitk.GetArrayFromImage(read_image(job.prediction)) > 0
    carried = through(liver, read_image(tmp_path / "ncect.nii.gz"), mapping)
    assert carried.sum() > 1000
    assert dice(prediction, carried) > 0.95


@pytest.mark.parametrize("shape", [(3, 4, 5), (3, 4, 5, 6)])
def test_a_field_off_the_grid_is_refused(shape):
    with pytest.raises(ValueError, match="field"):
        final_mapping(np.zeros(shape), working_grid(), prealign())
