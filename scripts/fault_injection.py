"""Kill the smoke DAG at chosen points, resume it as a user would, and compare the results
with an uninterrupted run (a script run by hand, issue #15; one point runs in the tests).

For each kill point: a fresh working directory; Snakemake started in its own process group;
when the point's rule starts, the script waits a fraction (`--kill-at`, 0.5) of that job's
duration in the reference run and sends SIGKILL to the whole group (Snakemake and its job,
as a crash or an out-of-memory kill would); then `snakemake --unlock` and `snakemake
--rerun-incomplete`, as a user would, to the end. The results must equal the reference
run's: every image of the data stage and of the compared methods' predictions, voxel for
voxel and in geometry, and their metrics with the runtime columns left out. Every method is
compared: nnU-Net's training is reproducible with in-process augmentation, the default
(docs/nnunet.md).

    python scripts/fault_injection.py                        # every point, smoke scale
    python scripts/fault_injection.py --points regsegnet_train --methods identity regsegnet
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from liverbench.runtime import RUNTIME_COLUMN

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENT = "faults"
POINTS = ("standardize_h108", "pair", "regsegnet_train", "nnunet_train", "deepmedic_finetune",
          "regsegnet_predict", "metrics", "figures_summary")
METHODS = ("identity", "rigid", "regsegnet", "regsegnet_c1", "elastix_cnn", "nnunet_ncect",
           "deepmedic")
DATA_STAGE = ("raw", "data", "preprocessed", "pairs")
def snakemake(workdir: Path, methods: list[str], *extra: str) -> list[str]:
    methods_yaml = "[" + ", ".join(methods) + "]"
    return [str(Path(sys.executable).parent / "snakemake"),
            "--snakefile", str(ROOT / "workflow" / "Snakefile"), "--directory", str(workdir),
            "--cores", "2", "--config", f"experiment={EXPERIMENT}", "scale=smoke",
            f"methods={methods_yaml}", *extra]


def run(command: list[str], log: Path) -> None:
    with log.open("a") as handle:
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(command)}; see {log}")


def job_seconds(reference: Path, rule: str) -> float:
    """The reference run's time of the point's first job (its own Run time record)."""
    jobs = pd.read_csv(reference / "results" / EXPERIMENT / "dag_time.csv")
    jobs = jobs[jobs["rule"] == rule].sort_values("start")
    if jobs.empty:
        sys.exit(f"rule {rule} did not run in the reference run (is its method in --methods?)")
    return float(jobs["seconds"].iloc[0])


def kill_during(workdir: Path, methods: list[str], rule: str, after: float, log: Path) -> float:
    """Start the run; SIGKILL its process group `after` seconds into `rule`'s first job.
    Returns how long the job had run."""
    started = re.compile(rf"^(local)?rule {re.escape(rule)}:")
    with log.open("a") as handle:
        process = subprocess.Popen(snakemake(workdir, methods), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        seen = threading.Event()

        def watch() -> None:
            for line in process.stdout:
                handle.write(line)
                if started.match(line) and not seen.is_set():
                    seen.set()

        reader = threading.Thread(target=watch, daemon=True)
        reader.start()
        while not seen.wait(0.1):
            if process.poll() is not None:
                sys.exit(f"the run ended before rule {rule} started; see {log}")
        begin = time.monotonic()
        time.sleep(after)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        reader.join(5)
        handle.write(f"\n=== SIGKILL to the process group {after:.1f} s into {rule}\n")
    return time.monotonic() - begin


def same_image(a: Path, b: Path) -> bool:
    first, second = sitk.ReadImage(str(a)), sitk.ReadImage(str(b))
    return (first.GetSize() == second.GetSize()
            and np.allclose(first.GetOrigin(), second.GetOrigin())
            and np.allclose(first.GetSpacing(), second.GetSpacing())
            and np.array_equal(sitk.GetArrayViewFromImage(first),
                               sitk.GetArrayViewFromImage(second)))


def same_metrics(a: Path, b: Path) -> bool:
    first, second = pd.read_csv(a), pd.read_csv(b)
    keep = [c for c in first.columns if not RUNTIME_COLUMN.search(c)]
    return list(first.columns) == list(second.columns) and first[keep].equals(second[keep])


def compare(reference: Path, resumed: Path, methods: list[str]) -> tuple[int, list[str]]:
    """(files compared, files that differ or are missing)."""
    compared = list(methods)
    ref, new = (d / "results" / EXPERIMENT for d in (reference, resumed))
    files = [p.relative_to(ref) for p in ref.rglob("*") if p.is_file()]
    images = [f for f in files if f.name.endswith((".nii", ".nii.gz")) and (
        f.parts[0] in DATA_STAGE or (f.parts[0] == "predictions" and f.parts[1] in compared))]
    metrics = [Path("metrics") / f"{m}.csv" for m in compared]
    differ = [str(f) for f in images if not (new / f).is_file() or not same_image(ref / f,
                                                                                  new / f)]
    differ += [str(f) for f in metrics if not (new / f).is_file() or not same_metrics(
        ref / f, new / f)]
    return len(images) + len(metrics), differ


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", nargs="+", default=list(POINTS), help="rules to kill in")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--kill-at", type=float, default=0.5,
                        help="how far into the job, as a fraction of its reference duration")
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder, removed")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fault_injection_"))
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "fault_injection.log"
    reference = workdir / "reference"
    start = time.monotonic()
    run(snakemake(reference, args.methods), log)
    print(f"reference run: {time.monotonic() - start:.0f} s", flush=True)
    failures = 0
    for point in args.points:
        resumed = workdir / point
        shutil.rmtree(resumed, ignore_errors=True)
        into = kill_during(resumed, args.methods, point,
                           args.kill_at * job_seconds(reference, point), log)
        run(snakemake(resumed, args.methods, "--unlock"), log)
        run(snakemake(resumed, args.methods, "--rerun-incomplete"), log)
        count, differ = compare(reference, resumed, args.methods)
        failures += bool(differ)
        verdict = "identical" if not differ else f"DIFFERENT: {', '.join(differ[:8])}"
        print(f"{point}: killed {into:.1f} s into the job, resumed; {count} files: {verdict}",
              flush=True)
    print(f"{len(args.points) - failures} of {len(args.points)} kill points recovered with "
          f"identical results (log: {log})")
    if args.workdir is None and not failures:
        shutil.rmtree(workdir)
    return int(failures > 0)


if __name__ == "__main__":
    raise SystemExit(main())
