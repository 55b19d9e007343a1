"""Test-time backends of RegSegNet's forward pass: each gives eager's field, within a stated
tolerance, on the same weights (regsegnet/backends.py; speed: benchmarks/regsegnet_forward.py).
`compile` and `bfloat16` are measured by the benchmark only: compiling takes tens of seconds,
and on a CPU without exposed bfloat16 matrix units autocast has no fast convolution."""

from __future__ import annotations

import pytest
import torch

from liverbench.settings import SettingsError
from regsegnet import backends
from regsegnet.model import RegSegNet
from regsegnet.settings import INFERENCE_BACKENDS, Settings

SHAPE = (16, 20, 24)  # not a multiple of the U-Net's stride: padding and cropping run too
TOLERANCE_VOXELS = 1e-4  # float32 reassociation of the convolutions, nothing more


def _model() -> RegSegNet:
    torch.manual_seed(0)
    model = RegSegNet(cascades=2, channels=(4, 8, 8), smoothing=2.0).eval()
    for parameter in model.parameters():  # a field of a few voxels, not the near-zero init
        torch.nn.init.normal_(parameter, std=0.2)
    return model


@pytest.mark.parametrize("backend", ["channels_last", "onnxruntime", "openvino"])
def test_backend_field_equals_eager(backend: str):
    if not backends.available(backend):
        pytest.skip(f"{backend} is not installed")
    torch.manual_seed(1)
    moving, fixed = (torch.rand(1, 1, *SHAPE) for _ in range(2))
    eager = _model()
    with torch.no_grad():
        expected = eager(moving, fixed)
    model = backends.prepare(_model(), backend, SHAPE)
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
