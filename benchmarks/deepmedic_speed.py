"""DeepMedic baseline speed per scale: one training step and one dense inference.

For each scale of config.yaml (its `deepmedic:` section and working shape): the receptive
field and segment sizes, the median seconds of a training step (a batch of segments,
forward + backward + RMSProp) and of the dense tiled inference of one working-grid volume
(network only, after a warm-up), with the FLOPs of each counted by
`torch.utils.flop_counter.FlopCounterMode`.

    python benchmarks/deepmedic_speed.py                        # CPU, 2 threads, all scales
    python benchmarks/deepmedic_speed.py --scales paper --device cuda

The weights are random: speed does not depend on their values. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from baselines.deepmedic.model import DeepMedic
from baselines.deepmedic.predict import tiled_probabilities
from baselines.deepmedic.sampling import Volume
from baselines.deepmedic.settings import Settings
from baselines.deepmedic.train import segment_sizes
from liverbench.config import load
from liverbench.runtime import cpu_name


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function, device: torch.device, repeats: int) -> float:
    function()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def flops(function) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        function()
    return counter.get_total_flops()


def benchmark(scale: str, device: torch.device, repeats: int) -> None:
    config = load(ROOT / "config.yaml", {"scale": scale})
    settings = Settings.from_mapping(config["deepmedic"], section="deepmedic")
    shape = tuple(config["preprocess"]["shape"])
    torch.manual_seed(0)
    model = DeepMedic(settings.architecture).to(device)
    inputs, outputs = segment_sizes(model, settings.segment_train)
    optimiser = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-4,
                                    momentum=0.6)
    images = torch.randn(settings.batch_size, 1, *inputs, device=device)
    labels = torch.randint(0, 2, (settings.batch_size, *outputs), device=device)

    def step() -> None:
        model.train()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    volume = Volume("random", np.random.default_rng(0).normal(size=shape).astype(np.float32),
                    None, -2.0)

    def infer() -> None:
        tiled_probabilities(model, volume, settings.segment_infer, device)

    step_seconds = timed(step, device, repeats)
    infer_seconds = timed(infer, device, repeats)
    step_flops, infer_flops = flops(step), flops(infer)
    total = settings.iterations_pretrain + settings.iterations_finetune
    print(
        f"{scale:6s} maps {list(settings.architecture.feature_maps)} fc "
        f"{list(settings.architecture.fc)} factors {list(settings.architecture.subsample_factors)}"
        f"\n       receptive field {model.geometry.receptive_field}, train segment {inputs} -> "
        f"{outputs} x {settings.batch_size}; volume {list(shape)}"
        f"\n       training step {step_seconds:.3f} s ({step_flops / 1e9:.1f} GFLOP, "
        f"{step_flops / step_seconds / 1e9:.1f} GFLOP/s); {total} steps ~ "
        f"{total * step_seconds / 60:.1f} min"
        f"\n       inference {infer_seconds:.2f} s per volume ({infer_flops / 1e9:.1f} GFLOP)",
        flush=True,
    )


ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=["smoke", "demo", "paper"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as the CLI does
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(f"device {name}, {args.threads} threads, torch {torch.__version__}")
    for scale in args.scales:
        benchmark(scale, device, args.repeats)


if __name__ == "__main__":
    main()
