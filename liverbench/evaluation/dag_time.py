"""Where a run's time goes: seconds per rule family and the critical path.

Snakemake records every output file it makes in `.snakemake/metadata/` (one JSON per file,
its name the file's path in base64: the rule, the job's inputs, start and end time; the
store `snakemake --summary` reads). Grouped by job, that is the run's timeline and its
dependency graph. The critical path is the chain of dependent jobs with the largest summed
time, ending at the job that ended last: the run can be no shorter than it with any number
of cores, and shortening a job off it does not shorten the run. Only outputs under
`results/<experiment>/` count (its test cohorts included); a re-run that ran only some jobs
keeps the others' times from their last run.

    python -m liverbench.evaluation.dag_time --experiment results/demo \\
        --figure results/demo/figures/dag_time.png --csv results/demo/dag_time.csv
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from liverbench.cli import command  # noqa: E402
from liverbench.data.io import atomic_path  # noqa: E402
from liverbench.errors import InputError  # noqa: E402
from liverbench.evaluation.figures import palette, save_figure  # noqa: E402

METADATA = Path(".snakemake") / "metadata"


def _output_path(record_file: Path, metadata: Path) -> str | None:
    """The output a metadata record is about: its name is the path in URL-safe base64, split
    into folders named '@<piece>' where too long for one file name."""
    name = "".join(part.removeprefix("@") for part in record_file.relative_to(metadata).parts)
    try:
        return base64.urlsafe_b64decode(name).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def family_of(rule: str, cohorts: set[str]) -> str:
    """A test cohort's jobs form one family per cohort; the main run's, one per rule."""
    for cohort in cohorts:
        if rule.startswith(f"external_{cohort}_"):
            return f"external: {cohort}"
    return rule


def read_jobs(experiment: str | os.PathLike, metadata: str | os.PathLike = METADATA,
              cohorts: set[str] | None = None) -> pd.DataFrame:
    """One row per job that made an output under `experiment`: job (rule and first output),
    family, start, end (s from the first start), seconds, critical."""
    metadata, prefix = Path(metadata), str(Path(experiment)) + "/"
    jobs: dict[tuple[str, int], dict] = {}
    for record_file in sorted(p for p in metadata.rglob("*") if p.is_file()):
        output = _output_path(record_file, metadata)
        if output is None or not output.startswith(prefix):
            continue
        try:
            record = json.loads(record_file.read_text())
            key = (record["rule"], record["job_hash"])
            start, end = float(record["starttime"]), float(record["endtime"])
        except (ValueError, KeyError, TypeError):
            continue  # a record of another Snakemake version or an interrupted job
        job = jobs.setdefault(key, {"rule": key[0], "outputs": [], "inputs": set(),
                                    "start": start, "end": end})
        job["outputs"].append(output)
        job["inputs"].update(record.get("input") or [])
        job["start"], job["end"] = min(job["start"], start), max(job["end"], end)
    if not jobs:
        raise InputError(f"{metadata}: no record of a job writing under {prefix} (run the "
                         "workflow first, from the folder holding .snakemake/)")
    cohorts = cohorts if cohorts is not None else {
        p.name for p in (Path(experiment) / "external").glob("*") if p.is_dir()}
    frame = pd.DataFrame([{
        "job": f"{job['rule']}: {min(job['outputs'])}", "rule": job["rule"],
        "family": family_of(job["rule"], cohorts), "start": job["start"], "end": job["end"],
    } for job in jobs.values()])
    frame["seconds"] = frame["end"] - frame["start"]
    origin = frame["start"].min()
    frame[["start", "end"]] -= origin
    frame["critical"] = False
    frame.loc[critical_path(frame, list(jobs.values())), "critical"] = True
    return frame.sort_values("start").reset_index(drop=True)


def critical_path(frame: pd.DataFrame, jobs: list[dict]) -> list[int]:
    """Row labels of the longest chain of dependent jobs (by summed seconds), in run order."""
    maker = {output: index for index, job in enumerate(jobs) for output in job["outputs"]}
    order = sorted(range(len(jobs)), key=lambda i: frame.at[i, "start"])
    longest: dict[int, float] = {}
    previous: dict[int, int | None] = {}
    for index in order:
        parents = {maker[i] for i in jobs[index]["inputs"] if i in maker} - {index}
        best = max(parents, key=lambda p: longest.get(p, 0.0), default=None)
        previous[index] = best
        longest[index] = frame.at[index, "seconds"] + (longest.get(best, 0.0) if best is not None
                                                       else 0.0)
    chain = [max(longest, key=longest.get)]
    while previous[chain[-1]] is not None:
        chain.append(previous[chain[-1]])
    return chain[::-1]


def family_summary(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per family: jobs, seconds summed, seconds on the critical path; largest first."""
    critical = jobs[jobs["critical"]].groupby("family")["seconds"].sum()
    summary = jobs.groupby("family").agg(jobs=("job", "size"), seconds=("seconds", "sum"))
    summary["critical_seconds"] = critical.reindex(summary.index).fillna(0.0)
    return summary.sort_values("seconds", ascending=False)


def plot(jobs: pd.DataFrame, path: str | os.PathLike) -> None:
    """Left: seconds per family (the critical path's share dark); right: the timeline, one
    lane per family, the critical path outlined."""
    summary = family_summary(jobs)
    families = list(summary.index)
    colours = palette(families)
    figure, (bars, timeline) = plt.subplots(
        1, 2, figsize=(13, 0.4 * len(families) + 2.2), sharey=True,
        gridspec_kw={"width_ratios": [1, 2]},
    )
    lanes = range(len(families))
    bars.barh(lanes, summary["seconds"], color=[colours[f] for f in families], alpha=0.45,
              label="all jobs (wall s summed)")
    bars.barh(lanes, summary["critical_seconds"], color=[colours[f] for f in families],
              label="on the critical path")
    for lane, (_, row) in zip(lanes, summary.iterrows()):
        bars.text(row["seconds"], lane, f" {row['seconds']:.0f} s, {int(row['jobs'])} jobs",
                  va="center", fontsize="x-small")
    bars.set_yticks(list(lanes), families)
    bars.invert_yaxis()
    bars.set_xlabel("seconds (summed over the family's jobs)")
    bars.legend(fontsize="x-small", loc="lower right")
    bars.set_xlim(0, summary["seconds"].max() * 1.5)
    lane_of = {family: lane for lane, family in enumerate(families)}
    for job in jobs.itertuples():
        timeline.barh(lane_of[job.family], job.seconds, left=job.start, height=0.7,
                      color=colours[job.family], edgecolor="black" if job.critical else "none",
                      linewidth=1.2)
    span = jobs["end"].max()
    critical = jobs.loc[jobs["critical"], "seconds"].sum()
    timeline.set_xlabel("minutes from the first job's start")
    step = next(m for m in (1, 2, 5, 10, 20, 30, 60, 120) if span / 60 / m <= 10)
    ticks = list(range(0, int(span // 60) + 1, step))
    timeline.set_xticks([60 * t for t in ticks], [str(t) for t in ticks])
    timeline.set_xlim(0, span * 1.01)
    timeline.set_title(
        f"{len(jobs)} jobs, {span / 60:.1f} min from first start to last end; critical path "
        f"(outlined) {critical / 60:.1f} min of jobs", fontsize="small",
    )
    save_figure(figure, path)


def write(args: argparse.Namespace) -> None:
    jobs = read_jobs(args.experiment, args.metadata)
    plot(jobs, args.figure)
    with atomic_path(args.csv) as tmp:
        jobs.to_csv(tmp, index=False, float_format="%.2f")
    summary = family_summary(jobs)
    print(summary.to_string(float_format=lambda v: f"{v:.1f}"))
    chain = jobs[jobs["critical"]]
    print(f"critical path: {' -> '.join(chain['job'])} ({chain['seconds'].sum():.0f} s of "
          f"{jobs['end'].max():.0f} s from first start to last end)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiment", type=Path, required=True, help="results/<experiment>")
    parser.add_argument("--metadata", type=Path, default=METADATA,
                        help="Snakemake's records (default: .snakemake/metadata here)")
    parser.add_argument("--figure", type=Path, required=True)
    parser.add_argument("--csv", type=Path, required=True)
    parser.set_defaults(func=write)


PROG = "python -m liverbench.evaluation.dag_time"
main = command(PROG, __doc__.split("\n\n")[0], configure)

if __name__ == "__main__":
    raise SystemExit(main())
