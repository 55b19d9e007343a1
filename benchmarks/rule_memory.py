"""Memory each rule declared against what its jobs used (a benchmark script, not a test).

Reads a Snakemake log (each job's `benchmark:` file and `resources: ... mem_mb=N`) and the
benchmark files it names (`max_rss`, MB), and prints per rule the jobs, the largest declared
`mem_mb`, the largest resident set used and the headroom; a rule whose job used more than it
declared is listed as a failure (a Slurm cluster would kill it) and the exit code is 1.

    python benchmarks/rule_memory.py .snakemake/log/<run>.snakemake.log [--workdir DIR]

Run it from the workflow's working directory (benchmark paths are relative to it).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

JOB = re.compile(r"^(?:local)?rule (\w+):\n((?:\s{4}.*\n)+)", re.M)
BENCHMARK = re.compile(r"^\s{4}benchmark: (\S+)$", re.M)
MEMORY = re.compile(r"^\s{4}resources: .*\bmem_mb=(\d+)", re.M)
LIMIT_MB = 8000  # the demo's ceiling per rule (issue #14)


def jobs_of(log: Path, workdir: Path) -> pd.DataFrame:
    rows = []
    for match in JOB.finditer(log.read_text()):
        rule, block = match.groups()
        benchmark, memory = BENCHMARK.search(block), MEMORY.search(block)
        if benchmark is None or memory is None:
            continue
        path = workdir / benchmark.group(1)
        if not path.is_file():
            continue  # the job failed or was interrupted
        used = pd.read_csv(path, sep="\t")["max_rss"].iloc[-1]
        rows.append({"rule": rule, "declared_mb": int(memory.group(1)), "used_mb": float(used)})
    if not rows:
        sys.exit(f"{log}: no job with a benchmark file and a mem_mb (is it a Snakemake log "
                 f"of a run in {workdir}?)")
    return pd.DataFrame(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--workdir", type=Path, default=Path("."))
    args = parser.parse_args()
    jobs = jobs_of(args.log, args.workdir)
    jobs["over"] = jobs["used_mb"] > jobs["declared_mb"]
    summary = jobs.groupby("rule").agg(jobs=("rule", "size"), declared_mb=("declared_mb", "max"),
                                       used_mb=("used_mb", "max"), over=("over", "sum"))
    summary["headroom_mb"] = summary["declared_mb"] - summary["used_mb"]
    print(summary.sort_values("used_mb", ascending=False).to_string(float_format="%.0f"))
    over, peak = jobs[jobs["over"]], jobs["used_mb"].max()
    print(f"{len(jobs)} jobs; largest resident set {peak:.0f} MB "
          f"({'within' if peak <= LIMIT_MB else 'above'} {LIMIT_MB} MB)")
    if not over.empty:
        print(f"{len(over)} jobs used more than they declared:\n{over.to_string(index=False)}")
    return int(not over.empty or peak > LIMIT_MB)


if __name__ == "__main__":
    raise SystemExit(main())
