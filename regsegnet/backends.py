"""How a trained RegSegNet runs its forward pass at test time (`regsegnet.inference`).

The cascades' U-Nets are nearly all of the FLOPs; the field composition and the warps are
cheap and stay in torch. A backend replaces how each cascade's `FieldNet` runs, the network
is otherwise the same module:

    eager          torch as trained, float32 (the safe default)
    channels_last  torch, float32, NDHWC memory layout (oneDNN's preferred one on CPU)
    compile        torch.compile (inductor, weights frozen: oneDNN convolutions), float32, the
                   warps and the field composition as gather-based trilinear resampling that
                   inductor fuses into one loop each; compiled once per process (~30 s on
                   2 cores, reported in the runtime record's `extra`, never in a pair's time)
    bfloat16       torch autocast to bfloat16 (CPUs with AVX-512 BF16 / AMX, or a GPU)
    onnxruntime    each FieldNet exported to ONNX, run by ONNX Runtime (CPU)
    openvino       each FieldNet converted by OpenVINO, run on its CPU plugin

ONNX Runtime and OpenVINO are optional packages; asking for one that is not installed is a
SettingsError naming the package. `benchmarks/regsegnet_forward.py` measures every backend
against eager (speed and the largest field difference) on the machine at hand.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from liverbench.settings import SettingsError
from regsegnet.model import FieldNet, RegSegNet, SpatialTransformer
from regsegnet.settings import INFERENCE_BACKENDS

BACKENDS = INFERENCE_BACKENDS
_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


def available(backend: str) -> bool:
    """Whether `backend` can run here (its optional package is installed)."""
    package = _PACKAGES.get(backend)
    return package is None or importlib.util.find_spec(package) is not None


class _Bfloat16FieldNet(nn.Module):
    """A FieldNet under bfloat16 autocast; its field comes back float32, so the composition
    and the warps stay exact."""

    def __init__(self, net: FieldNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        with torch.autocast(moving.device.type, dtype=torch.bfloat16):
            return self.net(moving, fixed).float()


class _ExternalFieldNet(nn.Module):
    """A FieldNet run by an external runtime: torch tensors in and out, float32 on the CPU."""

    def __init__(self, run: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        super().__init__()
        self.run = run

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        field = self.run(moving.detach().cpu().numpy(), fixed.detach().cpu().numpy())
        return torch.from_numpy(np.ascontiguousarray(field)).to(moving.device)


def sample_border(volume: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """`volume` (B, C, Z, Y, X) at x + field(x) (voxels, channels z, y, x), trilinear,
    coordinates clamped to the grid: the values of `grid_sample(..., 'bilinear', 'border',
    align_corners=True)`, which MONAI's `Warp` calls.

    Written out as eight gathers because `grid_sampler_3d` has no vectorised CPU kernel and
    inductor does not lower it; compiled, this is one fused loop, 3-6x faster (64³, 2 threads).
    """
    _, channels, *size = volume.shape
    positions, lower = [], []
    for axis, n in enumerate(size):
        shape = [1, 1, 1]
        shape[axis] = n
        base = torch.arange(n, dtype=field.dtype, device=field.device).reshape(shape)
        position = (base + field[:, axis]).clamp(0, n - 1)
        corner = position.floor().clamp(max=max(n - 2, 0))
        positions.append(position - corner)
        lower.append(corner.long())
    (tz, ty, tx), (z0, y0, x0) = positions, lower
    _, ny, nx = size
    flat = volume.reshape(volume.shape[0], channels, -1)
    base_index = ((z0 * ny + y0) * nx + x0).reshape(volume.shape[0], 1, -1)
    result = torch.zeros_like(flat)
    for dz, wz in ((0, 1 - tz), (1, tz)):
        for dy, wy in ((0, 1 - ty), (1, ty)):
            for dx, wx in ((0, 1 - tx), (1, tx)):
                offset = (dz * ny + dy) * nx + dx
                index = (base_index + offset).clamp(max=flat.shape[-1] - 1)
                weight = (wz * wy * wx).reshape(volume.shape[0], 1, -1)
                result = result + weight * torch.gather(flat, 2, index.expand_as(flat))
    return result.reshape(volume.shape)


def _compose(previous: torch.Tensor, increment: torch.Tensor) -> torch.Tensor:
    return increment + sample_border(previous, increment)


class _CompiledTransformer(SpatialTransformer):
    """The image warp and the field composition compiled (`sample_border`); inputs made
    contiguous first: a strided field (the smoothing's output) makes the gathers 3x slower."""

    def __init__(self) -> None:
        super().__init__()
        self._image = torch.compile(sample_border, dynamic=False)
        self._compose = torch.compile(_compose, dynamic=False)

    def image(self, image: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
        return self._image(image.contiguous(), field.contiguous())

    def compose(self, previous: torch.Tensor, increment: torch.Tensor) -> torch.Tensor:
        return self._compose(previous.contiguous(), increment.contiguous())


def _onnx_runner(net: FieldNet, example: tuple[torch.Tensor, ...], threads: int):
    import io

    import onnxruntime

    buffer = io.BytesIO()
    torch.onnx.export(net, example, buffer, input_names=["moving", "fixed"],
                      output_names=["field"], dynamo=False, opset_version=17)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(buffer.getvalue(), options,
                                           providers=["CPUExecutionProvider"])
    return lambda moving, fixed: session.run(None, {"moving": moving, "fixed": fixed})[0]


def _openvino_runner(net: FieldNet, example: tuple[torch.Tensor, ...], threads: int):
    import openvino

    model = openvino.convert_model(net, example_input=example)
    compiled = openvino.Core().compile_model(
        model, "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    )
    request = compiled.create_infer_request()

    def run(moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        return request.infer([moving, fixed])[compiled.output(0)].copy()

    return run


def prepare(model: RegSegNet, backend: str, shape: tuple[int, ...]) -> RegSegNet:
    """`model` (eval mode, on its device) made ready to run `backend` on (1, 1, *shape)
    inputs; the weights are not changed. External runtimes are CPU-only."""
    if backend not in BACKENDS:
        raise SettingsError(f"regsegnet.inference: {backend!r} is not one of {BACKENDS}")
    if not available(backend):
        raise SettingsError(f"regsegnet.inference: {backend!r} needs the Python package "
                            f"{_PACKAGES[backend]!r} (pip install {_PACKAGES[backend]})")
    model.eval()
    device = next(model.parameters()).device
    if backend == "channels_last":
        return model.to(memory_format=torch.channels_last_3d)
    if backend == "bfloat16":
        for index, cascade in enumerate(model.cascades):
            model.cascades[index] = _Bfloat16FieldNet(cascade)
        return model
    if backend == "compile":
        if device.type == "cpu" and not any(map(shutil.which, ("c++", "g++", "clang++"))):
            raise SettingsError("regsegnet.inference: 'compile' on a CPU needs a C++ compiler "
                                "(Debian: apt-get install g++); or use 'eager'")
        # frozen weights let inductor call oneDNN's convolutions (eager torch takes its slow
        # im2col kernel for batch-1 3-D convolutions); inference only: the process never trains
        import torch._inductor.config as inductor

        inductor.freezing = True
        for index, cascade in enumerate(model.cascades):
            model.cascades[index] = torch.compile(cascade, dynamic=False)
        model.transform = _CompiledTransformer()
        return model
    if backend in ("onnxruntime", "openvino"):
        if device.type != "cpu":
            raise SettingsError(f"regsegnet.inference: {backend!r} runs on the CPU only")
        example = tuple(torch.rand(1, 1, *shape) for _ in range(2))
        make = _onnx_runner if backend == "onnxruntime" else _openvino_runner
        threads = torch.get_num_threads()
        with torch.no_grad():
            for index, cascade in enumerate(model.cascades):
                model.cascades[index] = _ExternalFieldNet(make(cascade, example, threads))
    return model


def prepare_inputs(tensor: torch.Tensor, backend: str) -> torch.Tensor:
    """Inputs in the layout the backend expects."""
    if backend == "channels_last":
        return tensor.contiguous(memory_format=torch.channels_last_3d)
    return tensor
