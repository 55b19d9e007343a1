"""RegSegNet inference speed against what the hardware could do.

For each working shape (the demo's and the paper's 128³ by default): seconds per pair of one
inference (all cascades, field composition, warping the CECT and its liver; the median of a
few runs after a warm-up), the FLOPs of that inference counted by
`torch.utils.flop_counter.FlopCounterMode` (convolutions and matmuls; the warps' interpolation
is not counted and is memory-bound anyway), and that FLOP rate as a fraction of this
machine's measured dense float32 matmul rate — the practical ceiling.

    python benchmarks/regsegnet_inference.py                      # CPU, 2 threads
    python benchmarks/regsegnet_inference.py --device cuda --shapes 64,64,64 128,128,128

The weights are random: speed does not depend on their values. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see regsegnet/__main__.py

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from liverbench.config import load  # noqa: E402
from liverbench.runtime import cpu_name  # noqa: E402
from regsegnet.hardware import select_device, set_threads, synchronize  # noqa: E402
from regsegnet.model import RegSegNet  # noqa: E402
from regsegnet.settings import Settings  # noqa: E402


def matmul_flops_per_second(device: torch.device, size: int, repeats: int = 5) -> float:
    """Best-of-`repeats` dense float32 matmul rate, 2·n³ FLOPs per product."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    torch.mm(a, b)
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


@torch.no_grad()
def inference(model: RegSegNet, moving, mask, fixed, cascades: int):
    registration = model(moving, fixed, cascades=cascades)
    return model.transform.mask(mask, registration.field), registration.warped


def benchmark(settings: Settings, shape, device, repeats: int, cascades: int) -> dict:
    torch.manual_seed(0)
    model = RegSegNet.from_settings(settings).to(device).eval()
    moving, fixed = (torch.rand(1, 1, *shape, device=device) for _ in range(2))
    mask = (torch.rand(1, 1, *shape, device=device) > 0.5).float()
    inference(model, moving, mask, fixed, cascades)  # warm-up
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        inference(model, moving, mask, fixed, cascades)
        synchronize(device)
        times.append(time.perf_counter() - start)
    counter = FlopCounterMode(display=False)
    with counter:
        inference(model, moving, mask, fixed, cascades)
    seconds = statistics.median(times)
    flops = counter.get_total_flops()
    return {"shape": tuple(shape), "seconds": seconds, "flops": flops, "rate": flops / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--shapes", nargs="+", default=None,
                        help="z,y,x working shapes (default: the demo and paper scales')")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cascades", type=int, default=None, help="default: all")
    args = parser.parse_args()

    threads = set_threads(args.threads)
    device = select_device(args.device)
    scales = {scale: load(args.config, {"scale": scale}) for scale in ("demo", "paper")}
    if args.shapes:
        jobs = [("custom", tuple(int(s) for s in text.split(","))) for text in args.shapes]
    else:
        jobs = [(scale, tuple(cfg["preprocess"]["shape"])) for scale, cfg in scales.items()]
    matmul_size = 8192 if device.type == "cuda" else 2048
    peak = matmul_flops_per_second(device, matmul_size)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(f"device {device} ({where}), {threads} threads, torch {torch.__version__}, "
          f"{platform.python_implementation()} {platform.python_version()}")
    print(f"measured float32 matmul ({matmul_size}²): {peak / 1e9:.1f} GFLOP/s")
    print(f"{'scale':8} {'shape':>15} {'cascades':>8} {'channels':>22} {'s/pair':>8} "
          f"{'GFLOP':>8} {'GFLOP/s':>8} {'of matmul':>9}")
    for scale, shape in jobs:
        section = scales.get(scale, scales["demo"])["regsegnet"]
        settings = Settings.from_mapping(section, section="regsegnet")
        cascades = args.cascades or settings.cascades
        result = benchmark(settings, shape, device, args.repeats, cascades)
        print(f"{scale:8} {'x'.join(map(str, shape)):>15} {cascades:>8} "
              f"{str(tuple(settings.channels)):>22} {result['seconds']:8.3f} "
              f"{result['flops'] / 1e9:8.2f} {result['rate'] / 1e9:8.1f} "
              f"{result['rate'] / peak:9.1%}")


if __name__ == "__main__":
    main()
