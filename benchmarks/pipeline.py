"""Wall time and memory of a whole DAG run, per rule (a benchmark script, not a test).

    .venv/bin/python benchmarks/pipeline.py --scale demo [--workdir DIR] [--cores 2]

Runs the workflow in a fresh working directory, then prints the wall time, the seconds and
peak resident memory of every rule (from Snakemake's `benchmark:` files), and whether a
second run has anything to do.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def snakemake(workdir: Path, cores: int, *extra: str) -> subprocess.CompletedProcess:
    command = [
        str(Path(sys.executable).parent / "snakemake"),
        "--snakefile", str(ROOT / "workflow" / "Snakefile"),
        "--directory", str(workdir), "--cores", str(cores), *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True)


def rule_table(results: Path) -> pd.DataFrame:
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        frame = pd.read_csv(tsv, sep="\t")
        rows.append({"rule": tsv.relative_to(results / "benchmarks").parts[0],
                     "s": frame["s"].iloc[0], "max_rss_mb": frame["max_rss"].iloc[0]})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.groupby("rule").agg(
        jobs=("s", "size"), seconds=("s", "sum"), max_rss_mb=("max_rss_mb", "max")
    ).sort_values("seconds", ascending=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="demo", choices=["smoke", "demo", "paper"])
    parser.add_argument("--experiment", default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--config", nargs="*", default=[], help="extra key=value overrides")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"regsegbench-{args.scale}-"))
    experiment = args.experiment or args.scale
    overrides = ["--config", f"experiment={experiment}", f"scale={args.scale}", *args.config]

    start = time.perf_counter()
    result = snakemake(workdir, args.cores, *overrides)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stderr[-5000:], file=sys.stderr)
        return 1
    rerun = snakemake(workdir, args.cores, *overrides, "-n")
    nothing = "Nothing to be done" in rerun.stdout + rerun.stderr

    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; cores used {args.cores}")
    print(f"scale {args.scale}: whole DAG {wall:.0f} s ({wall / 60:.1f} min) in {workdir}")
    print(f"second run has nothing to do: {nothing}")
    table = rule_table(workdir / "results" / experiment)
    if not table.empty:
        print(table.to_string(float_format=lambda v: f"{v:.1f}"))
        print(f"largest peak memory of any job: {table['max_rss_mb'].max():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
