"""Test-time backends of RegSegNet's forward pass: each gives eager's field, within a stated
tolerance, on the same weights (regsegnet/backends.py; speed: benchmarks/regsegnet_forward.py).
`bfloat16` is measured by the benchmark only: on a CPU without exposed bfloat16 matrix units
autocast has no fast convolution. `compile` runs on a one-cascade model (compiling takes
~10 s per graph)."""

from __future__ import annotations

import shutil

import pytest
import torch

from liverbench.settings import SettingsError
from regsegnet import backends
from regsegnet.model import RegSegNet
from regsegnet.settings import INFERENCE_BACKENDS, Settings

SHAPE = (16, 20, 24)  # not a multiple of the U-Net's stride: padding and cropping run too
TOLERANCE_VOXELS = 1e-4  # float32 reassociation of the convolutions, nothing more


def _model(cascades: int = 2) -> RegSegNet:
    torch.manual_seed(0)
    model = RegSegNet(cascades=cascades, channels=(4, 8, 8), smoothing=2.0).eval()
    for parameter in model.parameters():  # a field of a few voxels, not the near-zero init
        torch.nn.init.normal_(parameter, std=0.2)
    return model


def test_sample_border_equals_monai_warp():
    """The compiled backend's gather-based warp gives MONAI Warp's (grid_sample's) values,
    also where the field points outside the grid (clamped to the border)."""
    torch.manual_seed(2)
    volume = torch.rand(1, 3, *SHAPE)
    coarse = torch.randn(1, 3, 3, 3, 3) * 6  # smooth, up to ~15 voxels: reaches the borders
    field = torch.nn.functional.interpolate(coarse, size=SHAPE, mode="trilinear")
    expected = RegSegNet(cascades=1, channels=(4, 8)).transform.image(volume, field)
    result = backends.sample_border(volume, field)
    assert (field.abs() > 6).any(), "the test needs points outside the grid"
    assert (result - expected).abs().max() < 1e-5


@pytest.mark.parametrize("backend", ["channels_last", "compile", "onnxruntime", "openvino"])
def test_backend_field_equals_eager(backend: str):
    if not backends.available(backend):
        pytest.skip(f"{backend} is not installed")
    if backend == "compile" and not shutil.which("c++"):
        pytest.skip("compile needs a C++ compiler (inductor's CPU code)")
    torch.manual_seed(1)
    moving, fixed = (torch.rand(1, 1, *SHAPE) for _ in range(2))
    cascades = 1 if backend == "compile" else 2
    eager = _model(cascades)
    with torch.no_grad():
        expected = eager(moving, fixed)
    model = backends.prepare(_model(cascades), backend, SHAPE)
    with torch.no_grad():
        result = model(*(backends.prepare_inputs(t, backend) for t in (moving, fixed)))
    assert expected.field.abs().max() > 0.5, "the test needs a field to compare"
    assert (result.field - expected.field).abs().max() < TOLERANCE_VOXELS
    assert (result.warped - expected.warped).abs().max() < 1e-4


def test_unknown_or_missing_backend_is_a_named_error(monkeypatch):
    with pytest.raises(SettingsError, match="inference"):
        Settings.from_mapping({"inference": "tensorrt"}, "regsegnet")
    assert Settings().inference == "eager" and "openvino" in INFERENCE_BACKENDS
    monkeypatch.setattr(backends, "available", lambda backend: False)
    with pytest.raises(SettingsError, match="needs the Python package 'openvino'"):
        backends.prepare(_model(), "openvino", SHAPE)
