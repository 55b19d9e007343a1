"""Throughput of the pipeline: how wall time grows with the number of cases, and what Slurm adds.

    .venv/bin/python benchmarks/throughput.py                    # 1x, 2x, 4x the smoke cohort
    .venv/bin/python benchmarks/throughput.py --slurm            # + local vs Slurm (root)
    .venv/bin/python benchmarks/throughput.py --methods identity regsegnet --factors 1 2

1. Scaling: the smoke DAG at 1, 2 and 4 times the smoke cohort (so 1x, 2x, 4x the test
   pairs), each from scratch in its own working directory, local with --cores N. Prints wall
   time, seconds per test pair, and a least-squares line wall = fixed + per_pair * pairs with
   the largest relative deviation from it: cost grows linearly when the deviation is small.
2. Scheduling overhead (--slurm): the same DAG (factor 1) through --profile profiles/slurm on
   the one-node Slurm of scripts/slurm_local.sh (started here if it is not running, and
   stopped again afterwards). Prints both wall times, (Slurm - local) per DAG job and per
   Slurm job, and from sacct the queue wait and run time of the Slurm jobs.
Each run's numbers also go to a JSON file (--out) for the docs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
SLURM_SCRIPT = ROOT / "scripts" / "slurm_local.sh"
SLURM_ENV = {  # the site variables of profiles/slurm for the one-node, 2-CPU test cluster
    "SBATCH_PARTITION": "debug",
    "SBATCH_ACCOUNT": "regsegbench",
    "REGSEGBENCH_SLURM_GPUS": "0",
    "REGSEGBENCH_SLURM_CPUS": "2",
    "REGSEGBENCH_SLURM_TRAIN_MEM_MB": "4000",
    "REGSEGBENCH_SLURM_TRAIN_RUNTIME": "30",
}


def smoke_patients() -> int:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    smoke = config["scales"]["smoke"].get("cohort", {})
    return int(smoke.get("patients", config["cohort"]["patients"]))


def run_dag(workdir: Path, patients: int, methods: list[str], extra: list[str],
            env: dict[str, str] | None = None) -> dict[str, float | int]:
    """Run the smoke DAG from scratch with `patients` phantom patients; wall time and counts."""
    workdir.mkdir(parents=True)
    override = workdir / "cohort.yaml"
    override.write_text(yaml.safe_dump({"scales": {"smoke": {"cohort": {"patients": patients}}}}))
    command = [
        str(SNAKEMAKE), "--snakefile", str(ROOT / "workflow" / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(override), *extra,
        "--config", "experiment=throughput", "scale=smoke", f"methods=[{','.join(methods)}]",
    ]  # fmt: skip
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    wall = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr[-4000:]}")
    splits = json.loads((workdir / "results" / "throughput" / "splits.json").read_text())
    log = max((workdir / ".snakemake" / "log").glob("*.snakemake.log")).read_text()
    return {
        "patients": patients,
        "test_pairs": len(splits["pairs"]["test"]),
        "jobs": dag_jobs(log),
        "wall_s": wall,
    }


def dag_jobs(log: str) -> int:
    """Jobs that do work, from the first 'Job stats' table of a Snakemake log (not `all`)."""
    table = log.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^(\w+)\s+(\d+)$", table, re.M)
    return sum(int(count) for name, count in rows if name not in ("all", "total"))


def linear_fit(pairs: list[int], walls: list[float]) -> tuple[float, float, float]:
    """wall = fixed + per_pair * pairs; returns fixed, per_pair, largest relative residual."""
    slope, intercept = np.polyfit(pairs, walls, 1)
    predicted = intercept + slope * np.asarray(pairs)
    deviation = float(np.max(np.abs(predicted - walls) / np.asarray(walls)))
    return float(intercept), float(slope), deviation


def slurm_running() -> bool:
    status = subprocess.run(["bash", str(SLURM_SCRIPT), "status"], capture_output=True)
    return status.returncode == 0


def sacct_jobs(since: str) -> list[dict[str, str]]:
    fields = ["JobID", "Submit", "Start", "End", "State", "Comment"]
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", since, "-o", ",".join(fields)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]


def seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["identity"])
    parser.add_argument("--factors", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--slurm", action="store_true", help="also run factor 1 through Slurm")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"methods {args.methods}; local --cores {args.cores}")
    base = smoke_patients()
    report: dict[str, object] = {"methods": args.methods, "cores": args.cores}
    with tempfile.TemporaryDirectory(prefix="throughput-") as scratch:
        runs = []
        for factor in args.factors:
            run = run_dag(Path(scratch) / f"local-x{factor}", base * factor, args.methods,
                          ["--cores", str(args.cores)])
            run["factor"] = factor
            runs.append(run)
            print(f"x{factor}: {run['patients']} patients, {run['test_pairs']} test pairs, "
                  f"{run['jobs']} jobs: {run['wall_s']:.1f} s, "
                  f"{run['wall_s'] / run['test_pairs']:.1f} s per test pair")
        report["scaling"] = runs
        if len(runs) >= 2:
            fixed, per_pair, deviation = linear_fit(
                [r["test_pairs"] for r in runs], [r["wall_s"] for r in runs])
            report["fit"] = {"fixed_s": fixed, "per_pair_s": per_pair, "max_deviation": deviation}
            print(f"fit: wall = {fixed:.1f} s + {per_pair:.2f} s x test pairs; "
                  f"largest deviation from the line {100 * deviation:.1f} %")

        if args.slurm:
            started_here = not slurm_running()
            subprocess.run(["bash", str(SLURM_SCRIPT), "start"], check=True, capture_output=True)
            try:
                since = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
                slurm = run_dag(Path(scratch) / "slurm-x1", base, args.methods,
                                ["--profile", str(ROOT / "profiles" / "slurm")], env=SLURM_ENV)
                time.sleep(3)  # let slurmdbd record the last job's end
                jobs = [j for j in sacct_jobs(since) if j["Comment"].startswith("rule_")]
            finally:
                if started_here:
                    subprocess.run(["bash", str(SLURM_SCRIPT), "stop"], capture_output=True)
            local = runs[0]
            waits = [seconds(j["Submit"], j["Start"]) for j in jobs if j["Start"] != "Unknown"]
            runs_s = [seconds(j["Start"], j["End"]) for j in jobs if j["End"] != "Unknown"]
            overhead = slurm["wall_s"] - local["wall_s"]
            report["slurm"] = {
                **slurm, "slurm_jobs": len(jobs), "local_wall_s": local["wall_s"],
                "overhead_s": overhead, "overhead_per_dag_job_s": overhead / slurm["jobs"],
                "overhead_per_slurm_job_s": overhead / max(len(jobs), 1),
                "queue_wait_mean_s": float(np.mean(waits)) if waits else None,
                "slurm_job_run_sum_s": float(np.sum(runs_s)),
            }  # fmt: skip
            print(f"local {local['wall_s']:.1f} s vs Slurm {slurm['wall_s']:.1f} s for "
                  f"{slurm['jobs']} DAG jobs in {len(jobs)} Slurm jobs: "
                  f"overhead {overhead:.1f} s = {overhead / slurm['jobs']:.1f} s per DAG job, "
                  f"{overhead / max(len(jobs), 1):.1f} s per Slurm job; queue wait "
                  f"{np.mean(waits) if waits else float('nan'):.1f} s mean, Slurm jobs ran "
                  f"{np.sum(runs_s):.0f} s in all")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
