"""The Slurm profile, and the smoke DAG through it on a real one-node Slurm.

The fast tests read the profile as Snakemake reads it. The slow test starts a real Slurm
on localhost (scripts/slurm_local.sh: slurmctld, slurmd, slurmdbd with MariaDB, munge),
runs the smoke-scale DAG for SLURM_METHODS through `--profile profiles/slurm`, and a local
run beside it, and checks that
- every job of the DAG ran inside a Slurm job (the job's own Slurm log shows it executing),
  each of those Slurm jobs is COMPLETED in `sacct`, in the partition and account that the
  site variables chose, and small jobs were bundled (fewer Slurm jobs than DAG jobs);
- the results equal the local run's. Deterministic outputs must be identical: the data stage
  (every NIfTI: voxels and geometry), the splits, and the predictions and metrics of
  DETERMINISTIC methods (runtime columns left out). A trained method is reproducible only
  for equal thread counts and kernels, so its predictions must overlap the local ones with
  Dice >= TRAINED_MIN_DICE and its per-pair DSC agree within TRAINED_DSC_TOLERANCE (with
  equal threads they were identical: DeepMedic at smoke scale, 2 threads, this machine).
By default only `identity` runs (the test must stay within a few minutes on 2 shared
cores); REGSEGBENCH_SLURM_TEST_METHODS=identity,deepmedic adds a trained method (~6 min).
It skips only where this machine cannot run Slurm: not root, or no apt-get to install it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from snakemake.profiles import ProfileConfigFileParser

from liverbench.runtime import RUNTIME_COLUMN

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
SCRIPT = ROOT / "scripts" / "slurm_local.sh"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"

SLURM_METHODS = os.environ.get("REGSEGBENCH_SLURM_TEST_METHODS", "identity").split(",")
DETERMINISTIC = {"identity"}  # no training, no randomness: identical results expected
DATA_STAGE = ("raw", "data", "preprocessed", "pairs")  # method-independent outputs
TRAINED_MIN_DICE = 0.98
TRAINED_DSC_TOLERANCE = 0.01
EXPERIMENT = "smoke"
PARTITION, ACCOUNT = "debug", "regsegbench"  # what scripts/slurm_local.sh creates
# The site variables the profile reads, set for this one-node, 2-CPU, GPU-less cluster.
SITE_ENV = {
    "SBATCH_PARTITION": PARTITION,
    "SBATCH_ACCOUNT": ACCOUNT,
    "REGSEGBENCH_SLURM_GPUS": "0",
    "REGSEGBENCH_SLURM_CPUS": "2",
    "REGSEGBENCH_SLURM_TRAIN_MEM_MB": "4000",
    "REGSEGBENCH_SLURM_TRAIN_RUNTIME": "30",
}
SITE_VARIABLES = [*SITE_ENV, "REGSEGBENCH_SLURM_GPU_PARTITION"]
def render_profile(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, object]:
    """The profile as Snakemake's parser turns it into command-line values."""
    for name in SITE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with PROFILE.open() as stream:
        return dict(ProfileConfigFileParser().parse(stream))


def assignments(values: list[str]) -> dict[str, str]:
    return dict(value.split("=", 1) for value in values)


def per_rule(values: list[str]) -> dict[str, dict[str, str]]:
    rules: dict[str, dict[str, str]] = {}
    for value in values:
        rule, assignment = value.split(":", 1)
        key, setting = assignment.split("=", 1)
        rules.setdefault(rule, {})[key] = setting
    return rules


def workflow_rules() -> dict[str, str]:
    """Every rule in workflow/rules/*.smk (whatever the config): {name: its text}."""
    found = {}
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = path.read_text()
        starts = [(m.start(), m[1]) for m in re.finditer(r"^\s*rule (\w+):", text, re.M)]
        for index, (start, name) in enumerate(starts):
            end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
            found[name] = text[start:end]
    return found


# --- the profile --------------------------------------------------------------------------


def test_profile_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    profile = render_profile(monkeypatch)
    assert profile["executor"] == "slurm"
    assert profile["slurm-init-seconds-before-status-checks"] == "2"
    assert int(profile["retries"]) >= 1
    defaults = assignments(profile["default-resources"])
    assert {"mem_mb", "runtime"} <= set(defaults)
    assert "slurm_partition" not in defaults and "slurm_account" not in defaults
    training = {
        rule: resources
        for rule, resources in per_rule(profile["set-resources"]).items()
        if "gpu" in resources
    }
    assert training, "no set-resources for training rules"
    for rule, resources in training.items():
        assert resources["gpu"] == "1", rule
        assert resources["cpus_per_task"] == "8", rule
        assert "attempt" in resources["mem_mb"], f"{rule}: memory does not grow on retry"
        assert int(resources["runtime"]) >= 60, rule
    threads = assignments(profile["set-threads"])
    assert set(training) <= set(threads) and set(threads.values()) == {"8"}
    assert profile["cores"] == "8"


def test_site_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    profile = render_profile(
        monkeypatch,
        SBATCH_PARTITION="cpu",
        SBATCH_ACCOUNT="lab42",
        REGSEGBENCH_SLURM_GPU_PARTITION="gpu",
        REGSEGBENCH_SLURM_GPUS="2",
        REGSEGBENCH_SLURM_CPUS="4",
        REGSEGBENCH_SLURM_TRAIN_MEM_MB="16000",
        REGSEGBENCH_SLURM_TRAIN_RUNTIME="90",
    )
    defaults = assignments(profile["default-resources"])
    assert defaults["slurm_partition"] == "cpu" and defaults["slurm_account"] == "lab42"
    for rule, resources in per_rule(profile["set-resources"]).items():
        if "group_slot" in resources:
            continue
        assert resources == {
            "gpu": "2",
            "cpus_per_task": "4",
            "mem_mb": "16000 * attempt",
            "runtime": "90",
            "slurm_partition": "gpu",
        }, rule
    assert profile["cores"] == "4"


def test_profile_names_real_rules_and_covers_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt rule name would be ignored by Snakemake without a word; catch it here."""
    profile = render_profile(monkeypatch)
    rules = workflow_rules()
    named = (
        set(per_rule(profile["set-resources"]))
        | set(assignments(profile["set-threads"]))
        | set(assignments(profile["groups"]))
    )
    assert not named - set(rules), f"profile names rules that do not exist: {named - set(rules)}"
    gpu_rules = {name for name, text in rules.items() if re.search(r"^\s*gpu\s*=", text, re.M)}
    training = {rule for rule, r in per_rule(profile["set-resources"]).items() if "gpu" in r}
    assert gpu_rules <= training, f"gpu rules without Slurm sizing: {gpu_rules - training}"
    grouped = set(assignments(profile["groups"]))
    assert not grouped & training, "training jobs must not be bundled with small jobs"
    group_names = set(assignments(profile["groups"]).values())
    assert group_names == set(assignments(profile["group-components"]))
    # Group members run one at a time inside the job: each takes the one local `group_slot`.
    assert assignments(profile["set-resource-scopes"]) == {"group_slot": "local"}
    assert assignments(profile["resources"]) == {"group_slot": "1"}
    resources = per_rule(profile["set-resources"])
    assert all(resources[rule].get("group_slot") == "1" for rule in grouped)


# --- a real Slurm -------------------------------------------------------------------------


def slurm_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to install and start a local Slurm (scripts/slurm_local.sh)"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "Slurm is not installed and apt-get is not available to install it"
    return None


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[None]:
    """A running one-node Slurm; stopped afterwards unless it was running before."""
    reason = slurm_unavailable()
    if reason:
        pytest.skip(reason)

    def script(action: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(SCRIPT), action], capture_output=True, text=True,
                              timeout=600)

    was_running = script("status").returncode == 0
    started = script("start")
    assert started.returncode == 0, f"could not start Slurm:\n{started.stderr[-4000:]}"
    yield
    if not was_running:
        script("stop")


@dataclass
class Workflow:
    workdir: Path
    command: list[str]
    process: subprocess.Popen
    start: float

    def wait(self) -> float:
        """Wait for the run to end; fail with its logs if it failed. Returns the wall time."""
        try:
            _, stderr = self.process.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        if self.process.returncode != 0:
            logs = "\n".join(
                f"== {path}\n{path.read_text()[-2000:]}"
                for path in sorted(self.workdir.rglob("*.log"))
                if "slurm_logs" in path.parts or "logs" in path.parts
            )
            pytest.fail(f"{' '.join(self.command)} failed:\n{stderr[-6000:]}\n{logs[-10000:]}")
        return time.monotonic() - self.start


def start_workflow(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Workflow:
    """Start the smoke DAG for SLURM_METHODS in `workdir`."""
    command = [
        str(SNAKEMAKE), "--snakefile", str(ROOT / "workflow" / "Snakefile"),
        "--directory", str(workdir), *args,
        "--config", f"experiment={EXPERIMENT}", "scale=smoke",
        f"methods=[{','.join(SLURM_METHODS)}]",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )  # fmt: skip
    return Workflow(workdir, command, process, time.monotonic())


JOB_BLOCK = re.compile(r"^\s*(local)?rule (\w+):\n((?:\s{4,}.*\n)*)", re.M)


def jobs_in(log_text: str, local: bool) -> set[tuple[str, str]]:
    """(rule, wildcards) of the `rule`/`localrule` blocks in a Snakemake log."""
    jobs = set()
    for match in JOB_BLOCK.finditer(log_text):
        if bool(match[1]) != local:
            continue
        wildcards = re.search(r"^\s*wildcards: (.*)$", match[3], re.M)
        jobs.add((match[2], wildcards[1] if wildcards else ""))
    return jobs


def sacct_records(job_ids: list[str]) -> dict[str, dict[str, str]]:
    fields = ["JobID", "State", "Partition", "Account", "Comment", "ExitCode"]
    deadline = time.monotonic() + 60
    while True:  # slurmdbd may lag behind slurmctld by a moment
        out = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o", ",".join(fields)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        records = {line.split("|")[0]: dict(zip(fields, line.split("|"))) for line in
                   out.splitlines() if line}
        done = all(records.get(j, {}).get("State") == "COMPLETED" for j in job_ids)
        if done or time.monotonic() > deadline:
            return records
        time.sleep(2)


def nifti_files(results: Path) -> list[Path]:
    """Every NIfTI image of a run (the pipeline's own uncompressed, outputs .nii.gz)."""
    return sorted(p.relative_to(results) for suffix in ("*.nii", "*.nii.gz")
                  for p in results.rglob(suffix))


def dice(a: Path, b: Path) -> float:
    mask_a, mask_b = (sitk.GetArrayFromImage(sitk.ReadImage(str(p))) > 0 for p in (a, b))
    total = mask_a.sum() + mask_b.sum()
    return 1.0 if total == 0 else 2.0 * (mask_a & mask_b).sum() / total


def assert_same_image(a: Path, b: Path) -> None:
    image_a, image_b = sitk.ReadImage(str(a)), sitk.ReadImage(str(b))
    for query in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection", "GetPixelID"):
        assert getattr(image_a, query)() == getattr(image_b, query)(), f"{a}: {query} differs"
    voxels_a, voxels_b = (sitk.GetArrayViewFromImage(i) for i in (image_a, image_b))
    assert np.array_equal(voxels_a, voxels_b), f"{a}: voxels differ from the local run"


@pytest.mark.usefixtures("slurm_cluster")
def test_smoke_dag_through_slurm_equals_local_run(tmp_path: Path) -> None:
    # The local reference runs beside the Slurm run: that one mostly waits on the scheduler.
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    local_run = start_workflow(local_dir, "--cores", SITE_ENV["REGSEGBENCH_SLURM_CPUS"])
    slurm_run = start_workflow(
        slurm_dir, "--profile", str(PROFILE.parent), "--slurm-keep-successful-logs",
        env=SITE_ENV,
    )  # fmt: skip
    try:
        slurm_seconds = slurm_run.wait()
    finally:
        local_run.wait()
    print(f"smoke DAG {SLURM_METHODS} through Slurm: {slurm_seconds:.0f} s")

    # Every job of the DAG ran inside a Slurm job.
    main_log = max((slurm_dir / ".snakemake" / "log").glob("*.snakemake.log")).read_text()
    planned = jobs_in(main_log, local=False)
    assert planned, "no jobs in the Snakemake log"
    assert {rule for rule, _ in jobs_in(main_log, local=True)} <= {"all"}, (
        "jobs ran on the submit host instead of in Slurm"
    )
    slurm_logs = sorted((slurm_dir / ".snakemake" / "slurm_logs").rglob("*.log"))
    executed: dict[tuple[str, str], str] = {}
    for path in slurm_logs:
        for job in jobs_in(path.read_text(), local=True):  # the job step runs it `local`ly
            executed[job] = path.stem
    assert set(executed) == planned, (
        f"not run in Slurm: {planned - set(executed)}; unexpected: {set(executed) - planned}"
    )
    job_ids = sorted({path.stem for path in slurm_logs})
    records = sacct_records(job_ids)
    for job_id in job_ids:
        record = records.get(job_id)
        assert record, f"Slurm job {job_id} has no accounting record"
        assert record["State"] == "COMPLETED", record
        assert (record["Partition"], record["Account"]) == (PARTITION, ACCOUNT), record
    assert len(job_ids) < len(planned), "small jobs were not grouped into fewer Slurm jobs"

    # The results equal the local run's (see the module docstring for what "equal" means).
    local, slurm = (d / "results" / EXPERIMENT for d in (local_dir, slurm_dir))
    files = nifti_files(local)
    assert nifti_files(slurm) == files
    exact = [f for f in files if f.parts[0] in DATA_STAGE] + [
        f for f in files if f.parts[0] == "predictions" and f.parts[1] in DETERMINISTIC
    ]
    assert any(f.parts[0] == "data" for f in exact), "no data-stage output to compare"
    for relative in exact:
        assert_same_image(local / relative, slurm / relative)
    assert json.loads((local / "splits.json").read_text()) == json.loads(
        (slurm / "splits.json").read_text()
    )
    for method in SLURM_METHODS:
        local_metrics = pd.read_csv(local / "metrics" / f"{method}.csv")
        slurm_metrics = pd.read_csv(slurm / "metrics" / f"{method}.csv")
        columns = [c for c in local_metrics.columns if not RUNTIME_COLUMN.search(c)]
        assert "dsc" in columns and len(local_metrics) > 0
        if method in DETERMINISTIC:
            pd.testing.assert_frame_equal(local_metrics[columns], slurm_metrics[columns])
            continue
        assert list(local_metrics["pair"]) == list(slurm_metrics["pair"])
        difference = (local_metrics["dsc"] - slurm_metrics["dsc"]).abs().max()
        assert difference <= TRAINED_DSC_TOLERANCE, f"{method}: DSC differs by {difference}"
        for pair in local_metrics["pair"]:
            relative = Path("predictions", method, f"{pair}.nii.gz")
            overlap = dice(local / relative, slurm / relative)
            assert overlap >= TRAINED_MIN_DICE, f"{relative}: Dice {overlap:.3f} to local"
