"""RegSegNet against Elastix + CNN on the same test pairs, in one timing scope, one at a time.

After a run (`./run demo`), this re-runs on an experiment's first N test pairs exactly the
commands its DAG runs — the pair step (read, pre-alignment, working grid), RegSegNet's
prediction (3 cascades, and 1), nnU-Net on the CECT and on the nCECT and elastix with the
experiment's (published) parameters — each method's processes alone on the machine, into a
scratch folder, and reads back their runtime records: `seconds_case` (original images read to
the mask written in original geometry) and `seconds_core` (the network, or the
registration). It prints the medians over the pairs, both ratios and each method's peak
memory (the largest resident set of its processes), and writes
`results/<experiment>/speed.csv` (the report shows it when present: `./run report`).

At 128³ (the paper's working grid and channels) RegSegNet runs with random weights saved in
the model format (speed does not depend on the values); elastix works on the original images
and its nnU-Net models are the experiment's, so Elastix + CNN's figures are the same there.

    python benchmarks/speed.py                                  # results/demo, 5 pairs, 64³
    python benchmarks/speed.py --shapes 64 128 --pairs 5 --threads 2

Not a test: it prints figures. Run it on an idle machine and say so.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from liverbench.layout import Layout, image_file, parse_pair

ROOT = Path(__file__).resolve().parent.parent
PAPER = {"shape": [128, 128, 128], "spacing": [2.0, 2.5, 2.5], "channels": [16, 32, 64, 128, 256]}


def run(command: list[str], log: Path) -> int:
    """Run one command alone; returns its peak resident set (MB). Fails loudly."""
    with log.open("w") as handle:
        # this checkout's code, whatever the experiment's working directory holds (-P: no
        # working directory on sys.path)
        command = [command[0], "-P", *command[1:]]
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                   env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE",
                                        "PYTHONPATH": path})
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(command)}\n{log.read_text()[-3000:]}")
    return usage.ru_maxrss // 1024


def random_model(config: dict, shape: list[int], channels: list[int], out: Path) -> Path:
    """A RegSegNet model file at `shape` with random weights (speed only)."""
    import torch

    from regsegnet.checkpoint import model_payload, save
    from regsegnet.model import RegSegNet
    from regsegnet.settings import Settings

    settings = Settings.from_mapping({**config["regsegnet"], "channels": channels}, "regsegnet")
    torch.manual_seed(0)
    model = RegSegNet.from_settings(settings)
    save(model_payload(model, settings, tuple(shape), epoch=0), out)
    return out


class Bench:
    """The scratch folder of one benchmark run and the experiment it reads."""

    def __init__(self, experiment: Path, pairs: list[str], scratch: Path, threads: int):
        self.experiment = Layout(str(experiment))
        self.config = json.loads(Path(self.experiment.resolved_config).read_text())
        self.pairs, self.scratch, self.threads = pairs, scratch, threads
        self.peak: dict[str, int] = {}

    def case(self, patient: str, name: str) -> str:
        return self.experiment.case_file(patient, name)

    def pair_step(self, grid: dict, tag: str) -> Path:
        """The DAG's pair step for every pair, on the working grid `grid`; the pair folders."""
        folder = self.scratch / f"pairs_{tag}"
        settings = json.dumps({**self.config["preprocess"], **grid})
        for pair in self.pairs:
            moving, fixed = parse_pair(pair)
            out = folder / pair
            peak = run([sys.executable, "-m", "liverbench.data", "pair",
                        "--moving", self.case(moving, "cect"),
                        "--moving-liver", self.case(moving, "cect_liver"),
                        "--fixed", self.case(fixed, "ncect"),
                        "--fixed-liver", self.case(fixed, "ncect_liver"),
                        "--out", str(out), "--settings", settings,
                        "--prealign-settings", json.dumps(self.config["prealign"]),
                        "--prealign-out", str(out / "prealign.tfm"),
                        "--timing-out", str(out / "timing.json")], self.scratch / "pair.log")
            self.peak["pair"] = max(self.peak.get("pair", 0), peak)
        return folder

    def outputs(self, method: str, suffix: str) -> list[str]:
        (self.scratch / method).mkdir(parents=True, exist_ok=True)
        return [str(self.scratch / method / f"{pair}{suffix}") for pair in self.pairs]

    def regsegnet(self, model: Path, pairs: Path, cascades: int, method: str,
                  inference: str) -> None:
        files = {name: [image_file(str(pairs / p), name) for p in self.pairs]
                 for name in ("moving", "moving_liver", "fixed")}
        settings = json.dumps({"device": "cpu", "moving_mask": "annotation",
                               "inference": inference})
        self.peak[method] = run(
            [sys.executable, "-m", "regsegnet", "predict", "--settings", settings,
             "--threads", str(self.threads), "--model", str(model), "--pairs", *self.pairs,
             "--moving", *files["moving"], "--moving-liver", *files["moving_liver"],
             "--fixed", *files["fixed"],
             "--prealign", *[str(pairs / p / "prealign.tfm") for p in self.pairs],
             "--pair-timings", *[str(pairs / p / "timing.json") for p in self.pairs],
             "--original-ncect", *[self.case(parse_pair(p)[1], "ncect") for p in self.pairs],
             "--cect-liver", *[self.case(parse_pair(p)[0], "cect_liver") for p in self.pairs],
             "--predictions", *self.outputs(method, ".nii.gz"),
             "--runtimes", *self.outputs(method, ".json"),
             "--cascades", str(cascades), "--method-name", method],
            self.scratch / f"{method}.log")

    def nnunet(self, target: str) -> int:
        phase = 0 if target == "cect" else 1
        images = [self.case(parse_pair(p)[phase], target) for p in self.pairs]
        return run(
            [sys.executable, "-m", "baselines.nnunet", "predict",
             "--settings", json.dumps({**self.config["nnunet"], "device": "cpu"}),
             "--threads", str(self.threads),
             "--model", self.experiment.model_file("nnunet", f"{target}.json"),
             "--method", f"nnunet_{target}", "--pairs", *self.pairs, "--images", *images,
             "--predictions", *self.outputs(f"nnunet_{target}", ".nii.gz"),
             "--runtimes", *self.outputs(f"nnunet_{target}", ".json")],
            self.scratch / f"nnunet_{target}.log")

    def elastix_cnn(self, pairs: Path) -> None:
        peaks = [self.nnunet("cect"), self.nnunet("ncect")]
        peaks.append(run(
            [sys.executable, "-m", "baselines.elastix_cnn", "register",
             "--settings", json.dumps(self.config["elastix_cnn"]),
             "--threads", str(self.threads), "--pairs", *self.pairs,
             "--cect", *[self.case(parse_pair(p)[0], "cect") for p in self.pairs],
             "--ncect", *[self.case(parse_pair(p)[1], "ncect") for p in self.pairs],
             "--prealign", *[str(pairs / p / "prealign.tfm") for p in self.pairs],
             "--pair-timings", *[str(pairs / p / "timing.json") for p in self.pairs],
             "--cect-liver", *self.outputs("nnunet_cect", ".nii.gz"),
             "--ncect-liver", *self.outputs("nnunet_ncect", ".nii.gz"),
             "--cect-runtimes", *self.outputs("nnunet_cect", ".json"),
             "--ncect-runtimes", *self.outputs("nnunet_ncect", ".json"),
             "--predictions", *self.outputs("elastix_cnn", ".nii.gz"),
             "--mappings", *self.outputs("elastix_cnn", ".h5"),
             "--runtimes", *self.outputs("elastix_cnn", ".json"),
             "--transforms-dir", str(self.scratch / "elastix_transforms")],
            self.scratch / "elastix_cnn.log"))
        self.peak["elastix_cnn"] = max(peaks)

    def summary(self, method: str, shape: int) -> dict:
        records = [json.loads(Path(path).read_text()) for path in self.outputs(method, ".json")]
        ok = [r for r in records if r.get("status", "ok") == "ok"]
        return {
            "method": method, "shape": f"{shape}^3", "pairs": len(ok),
            "failed": len(records) - len(ok),
            "seconds_case": statistics.median(r["seconds_case"] for r in ok) if ok else None,
            "seconds_core": statistics.median(r["seconds_core"] for r in ok) if ok else None,
            "peak_memory_mb": max(self.peak.get(method, 0), self.peak.get("pair", 0)),
            "threads": self.threads,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", type=Path, default=Path("results/demo"),
                        help="results/<experiment> of a finished run")
    parser.add_argument("--pairs", type=int, default=5, help="the first N test pairs")
    parser.add_argument("--shapes", type=int, nargs="+", default=[64, 128], choices=(64, 128))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--inference", nargs="+", default=["eager", "compile"],
                        help="RegSegNet's test-time backends to time (regsegnet.inference)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    # The DAG's paths (and the nnU-Net model records) are relative to its working directory.
    os.chdir(args.experiment.resolve().parent.parent)
    args.experiment = Path("results") / args.experiment.resolve().name

    splits = json.loads((args.experiment / "splits.json").read_text())
    pairs = splits["pairs"]["test"][: args.pairs]
    scratch = args.experiment / "benchmarks" / "speed_scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    bench = Bench(args.experiment, pairs, scratch, args.threads)
    rows = []
    for shape in args.shapes:
        own = shape == bench.config["preprocess"]["shape"][0]
        grid = {} if own else {"shape": PAPER["shape"], "spacing": PAPER["spacing"]}
        pair_dir = bench.pair_step(grid, str(shape))
        model = (Path(bench.experiment.model_file("regsegnet", "model.pt")) if own else
                 random_model(bench.config, PAPER["shape"], PAPER["channels"],
                              scratch / "random_128.pt"))
        for inference in args.inference:
            for cascades in (3, 1):
                method = f"regsegnet_c{cascades}_{inference}_{shape}"
                bench.regsegnet(model, pair_dir, cascades, method, inference)
                rows.append({**bench.summary(method, shape), "method": f"regsegnet_c{cascades}",
                             "inference": inference})
        if shape == args.shapes[0]:
            bench.elastix_cnn(pair_dir)
            elastix = {**bench.summary("elastix_cnn", shape), "inference": ""}
        rows.append({**elastix, "shape": f"{shape}^3"})
    for row in rows:
        reference = next(r for r in rows if r["method"] == "elastix_cnn"
                         and r["shape"] == row["shape"])
        for scope in ("case", "core"):
            ours = row[f"seconds_{scope}"]
            row[f"elastix_cnn_over_this_{scope}"] = (
                reference[f"seconds_{scope}"] / ours if ours else None)
    print(f"{len(pairs)} test pairs of {args.experiment}, {args.threads} threads, medians")
    print(f"{'method':14} {'inference':>10} {'shape':>6} {'case s':>8} {'core s':>8} "
          f"{'E+C/this case':>14} {'E+C/this core':>14} {'peak MB':>8}")
    for row in rows:
        print(f"{row['method']:14} {row['inference']:>10} {row['shape']:>6} "
              f"{row['seconds_case']:8.3f} "
              f"{row['seconds_core']:8.3f} {row['elastix_cnn_over_this_case']:14.1f} "
              f"{row['elastix_cnn_over_this_core']:14.1f} {row['peak_memory_mb']:8d}")
    out = args.experiment / "speed.csv"
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"written {out}")
    if not args.keep:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
