"""RegSegNet's test-time forward pass, per backend (`regsegnet/backends.py`), against eager.

For a working shape (the demo's 64³ by default) and the scale's channels: the median seconds
of one inference (all cascades, composition and warps) after warm-up, the largest difference
of the composed field from eager float32 (voxels), the FLOPs (torch's counter, on eager) and
the achieved rate next to this machine's measured conv3d rate — the practical ceiling: one
large 3³ convolution at the network's widest level, timed the same way. Each backend runs in
its own process with a time limit (a backend without a fast kernel here can take minutes).

    python benchmarks/regsegnet_forward.py                          # CPU, 2 threads, 64³
    python benchmarks/regsegnet_forward.py --scale paper            # 128³, the paper's channels
    python benchmarks/regsegnet_forward.py --backends eager onnxruntime --csv forward.csv

The weights are random (speed does not depend on them); the field differences are measured
on the same weights and inputs. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see regsegnet/__main__.py


def conv3d_rate(channels: int, shape: tuple[int, ...], repeats: int = 5) -> float:
    """FLOP/s of a channels -> channels 3³ convolution on a (1, channels, *shape) volume."""
    import torch

    x = torch.rand(1, channels, *shape)
    conv = torch.nn.Conv3d(channels, channels, 3, padding=1).eval()
    with torch.no_grad():
        conv(x)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - start)
    voxels = 1
    for s in shape:
        voxels *= s
    return 2 * channels * channels * 27 * voxels / best


def run_backend(args: argparse.Namespace) -> dict:
    """One backend, in this process: seconds, field difference from eager, FLOPs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from liverbench.config import load
    from regsegnet.backends import prepare, prepare_inputs
    from regsegnet.hardware import set_threads
    from regsegnet.model import RegSegNet
    from regsegnet.settings import Settings

    set_threads(args.threads)
    config = load(args.config, {"scale": args.scale})
    settings = Settings.from_mapping(config["regsegnet"], section="regsegnet")
    shape = tuple(config["preprocess"]["shape"])
    torch.manual_seed(0)
    reference = RegSegNet.from_settings(settings).eval()
    moving, fixed = (torch.rand(1, 1, *shape) for _ in range(2))
    with torch.no_grad():
        expected = reference(moving, fixed).field
    model = RegSegNet.from_settings(settings)
    model.load_state_dict(reference.state_dict())
    start = time.perf_counter()
    model = prepare(model, args.backend, shape)
    inputs = [prepare_inputs(t, args.backend) for t in (moving, fixed)]
    with torch.no_grad():
        field = model(*inputs).field  # warm-up (compiles, for compile)
        prepare_seconds = time.perf_counter() - start
        times = []
        for _ in range(args.repeats):
            tick = time.perf_counter()
            model(*inputs)
            times.append(time.perf_counter() - tick)
        counter = FlopCounterMode(display=False)
        with counter:
            reference(moving, fixed)
    return {
        "backend": args.backend, "shape": "x".join(map(str, shape)),
        "channels": list(settings.channels), "cascades": settings.cascades,
        "threads": torch.get_num_threads(), "seconds": statistics.median(times),
        "prepare_seconds": prepare_seconds, "gflop": counter.get_total_flops() / 1e9,
        "max_field_difference_voxels": float((field.float() - expected).abs().max()),
        "conv3d_gflops": conv3d_rate(max(settings.channels), shape) / 1e9,
    }


def main() -> None:
    from regsegnet.backends import BACKENDS, available

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--scale", default="demo", choices=("smoke", "demo", "paper"))
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per backend")
    parser.add_argument("--csv", default=None, help="also write the rows here")
    parser.add_argument("--backend", help=argparse.SUPPRESS)  # a child process: one backend
    args = parser.parse_args()
    if args.backend:
        print(json.dumps(run_backend(args)))
        return

    rows = []
    for backend in args.backends:
        if not available(backend):
            print(f"{backend:14} not installed")
            continue
        command = [sys.executable, __file__, "--backend", backend, "--config", args.config,
                   "--scale", args.scale, "--threads", str(args.threads),
                   "--repeats", str(args.repeats)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"{backend:14} over {args.timeout:.0f} s: no fast kernel here")
            rows.append({"backend": backend, "seconds": float("nan"), "note": "timeout"})
            continue
        if done.returncode != 0:
            print(f"{backend:14} failed: {done.stderr.strip().splitlines()[-1:]}")
            rows.append({"backend": backend, "seconds": float("nan"), "note": "failed"})
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    eager = next((r["seconds"] for r in rows if r["backend"] == "eager"), float("nan"))
    print(f"\n{'backend':14} {'s/pair':>8} {'x eager':>8} {'max |Δfield| vox':>17} "
          f"{'GFLOP/s':>8} {'of conv3d':>9} {'prepare s':>9}")
    for row in rows:
        if "gflop" not in row:
            continue
        rate = row["gflop"] / row["seconds"]
        print(f"{row['backend']:14} {row['seconds']:8.3f} {eager / row['seconds']:8.2f} "
              f"{row['max_field_difference_voxels']:17.2e} {rate:8.1f} "
              f"{rate / row['conv3d_gflops']:9.1%} {row['prepare_seconds']:9.1f}")
    first = next((r for r in rows if "gflop" in r), None)
    if first:
        print(f"\nshape {first['shape']}, channels {first['channels']}, {first['cascades']} "
              f"cascades, {first['threads']} threads: {first['gflop']:.2f} GFLOP per pair; "
              f"conv3d {max(first['channels'])}->{max(first['channels'])} 3³ at that shape: "
              f"{first['conv3d_gflops']:.1f} GFLOP/s (the practical limit)")
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=sorted({k for r in rows for k in r}))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
