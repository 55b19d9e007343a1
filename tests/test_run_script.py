"""How the project is run: `./run`, the experiment `./run report` resolves, the default profile.

Fast: no workflow runs. `./run` is driven with a stand-in venv (its python is the real one,
its snakemake records its arguments); the profile is rendered and parsed by Snakemake's own
code, and one dry run of a two-rule workflow shows Snakemake applying its GPU limit.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.cli import parse_args
from snakemake.profiles import ProfileConfigFileParser

from liverbench import experiment as exp

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "default" / "config.yaml"
WORKFLOW_EXPERIMENT = yaml.safe_load((ROOT / "config.yaml").read_text())["experiment"]


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


# --- the experiment of a Snakemake command line ---------------------------------------------


def test_experiment_defaults_to_config_yaml() -> None:
    assert exp.experiment([]) == WORKFLOW_EXPERIMENT
    assert exp.experiment(["--cores", "2", "-n", "--report", "x.html"]) == WORKFLOW_EXPERIMENT


def test_config_overrides_beat_config_files_which_merge_in_order(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", {"experiment": "first"})
    second = write(tmp_path / "b.yaml", {"experiment": "second"})
    seed_only = write(tmp_path / "c.yaml", {"seed": 7})
    assert exp.experiment(["--configfile", str(first)]) == "first"
    assert exp.experiment(["--configfile", str(first), str(second)]) == "second"
    assert exp.experiment(["--configfiles", str(second), str(seed_only)]) == "second"
    assert exp.experiment(["--configfile", str(second), "--config", "experiment=cli"]) == "cli"
    assert exp.experiment(["-C", "scale=smoke", "experiment=short", "--cores", "1"]) == "short"


def test_a_repeated_option_replaces_the_earlier_one_as_in_snakemake(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", {"experiment": "first"})
    seed_only = write(tmp_path / "c.yaml", {"seed": 7})
    argv = ["--configfile", str(first), "--configfile", str(seed_only)]
    assert exp.experiment(argv) == WORKFLOW_EXPERIMENT
    assert exp.experiment(["--config", "experiment=a", "--config", "seed=1"]) == WORKFLOW_EXPERIMENT


def test_the_scale_block_is_applied_like_the_workflow_does(tmp_path: Path) -> None:
    """The name comes from liverbench.config.resolve, the Snakefile's own resolution."""
    scaled = write(tmp_path / "s.yaml", {"scales": {"smoke": {"experiment": "from_scale"}}})
    assert exp.experiment(["--configfile", str(scaled), "--config", "scale=smoke"]) == "from_scale"


def test_replace_workflow_config_starts_from_the_config_files(tmp_path: Path) -> None:
    full = yaml.safe_load((ROOT / "config.yaml").read_text())
    full["experiment"] = "replaced"
    path = write(tmp_path / "full.yaml", full)
    assert exp.experiment(["--replace-workflow-config", "--configfile", str(path)]) == "replaced"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--configfile", "/nonexistent/c.yaml"], "/nonexistent/c.yaml"),
        (["--config", "experiment=has space"], "experiment"),
        (["--config", "experiment"], "name=value"),
        (["--config", "experiment=007"], "experiment"),  # 7, an int, as Snakemake reads it
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys) -> None:
    assert exp.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{exp.PROG}: ") and message in err


def test_cli_prints_only_the_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "liverbench.experiment", "--config", "experiment=t_cli", "-n"],
        capture_output=True, text=True, timeout=120, cwd="/",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "t_cli\n"


# --- ./run --------------------------------------------------------------------------------


def stub_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A venv ./run takes as set up: stamps current, python real, snakemake recording argv."""
    venv, calls = tmp_path / "venv", tmp_path / "calls.txt"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    calls.unlink(missing_ok=True)
    for name, body in {
        "python": f'exec {sys.executable} "$@"',
        "snakemake": f'printf "%s\\n" "$@" > {calls}',
    }.items():
        (venv / "bin" / name).write_text(f"#!/bin/sh\n{body}\n")
        (venv / "bin" / name).chmod(0o755)
    for stamp, source in (("requirements", "requirements.txt"), ("project", "pyproject.toml")):
        digest = hashlib.sha1((ROOT / source).read_bytes()).hexdigest()[:16]
        (venv / f".{stamp}-{digest}").touch()
    return venv, calls


def run_script(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    venv, calls = stub_venv(tmp_path)
    result = subprocess.run(
        [str(ROOT / "run"), *args], capture_output=True, text=True, timeout=120,
        cwd=tmp_path, env={**os.environ, "VENV": str(venv)},
    )  # fmt: skip
    return result, calls.read_text().splitlines() if calls.exists() else []


def test_run_report_writes_into_the_experiment_the_arguments_name(tmp_path: Path) -> None:
    extra = write(tmp_path / "e.yaml", {"experiment": "from_file"})
    result, argv = run_script(tmp_path, "report", "--configfile", str(extra), "-C", "seed=3")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # set up already: nothing installed, nothing printed
    assert argv == ["--cores", "all", "--report", "results/from_file/report.html",
                    "--configfile", str(extra), "-C", "seed=3"]  # fmt: skip
    result, argv = run_script(tmp_path, "report", "--config", "experiment=t1")
    assert argv[:4] == ["--cores", "all", "--report", "results/t1/report.html"]


def test_run_report_stops_on_a_bad_config(tmp_path: Path) -> None:
    result, argv = run_script(tmp_path, "report", "--config", "experiment=a b")
    assert result.returncode == 2 and argv == []
    assert "python -m liverbench.experiment: " in result.stderr


def test_run_demo_passes_arguments_and_help_lists_commands(tmp_path: Path) -> None:
    result, argv = run_script(tmp_path, "demo", "-n", "--config", "scale=smoke")
    assert result.returncode == 0 and argv == ["--cores", "all", "-n", "--config", "scale=smoke"]
    result, _ = run_script(tmp_path, "help")
    assert result.returncode == 0
    assert [line.split()[2] for line in result.stdout.splitlines() if "./run " in line] == [
        "demo", "test", "setup", "lint", "report"]
    assert run_script(tmp_path, "no-such-command")[0].returncode == 1


# --- profiles/default: the workflow profile Snakemake reads by itself ------------------------


@pytest.fixture
def command_line(monkeypatch):
    """Set the Snakemake command line (the profile reads it) with no GPU or profile in the env."""
    for name in ("SNAKEMAKE_PROFILE", "REGSEGBENCH_GPUS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU, whatever this machine has

    def set_argv(*args: str) -> None:
        monkeypatch.setattr(sys, "argv", ["snakemake", *args])

    return set_argv


def render_profile() -> dict:
    with PROFILE.open() as stream:
        return dict(ProfileConfigFileParser().parse(stream))


def test_profile_limits_gpu_jobs_on_a_local_run(command_line, monkeypatch) -> None:
    command_line("--cores", "all")
    assert render_profile() == {"show-failed-logs": "True", "resources": ["gpu=0"]}
    monkeypatch.setenv("REGSEGBENCH_GPUS", "2")
    assert render_profile()["resources"] == ["gpu=2"]


@pytest.mark.parametrize(
    "args",
    [("--profile", "profiles/slurm"), ("--profile=x",), ("--executor", "slurm"), ("-e", "x")],
)
def test_profile_sets_no_resources_when_jobs_run_elsewhere(command_line, args) -> None:
    command_line(*args)
    assert render_profile() == {"show-failed-logs": "True"}


def test_profile_sets_no_resources_under_a_profile_from_the_environment(
    command_line, monkeypatch
) -> None:
    command_line("--cores", "1")
    monkeypatch.setenv("SNAKEMAKE_PROFILE", "mysite")
    assert "resources" not in render_profile()


def test_snakemake_reads_the_profile_by_itself_and_keeps_slurms_resources(
    command_line, monkeypatch
) -> None:
    """From the repository root, as ./run runs it; profiles/slurm keeps its group_slot limit."""
    monkeypatch.chdir(ROOT)
    command_line("-n")
    _, args = parse_args(["-n"])
    assert args.show_failed_logs and {k: v.value for k, v in args.resources.items()} == {"gpu": 0}
    command_line("-n", "--profile", "profiles/slurm")
    _, args = parse_args(["-n", "--profile", "profiles/slurm"])
    assert args.show_failed_logs and args.executor == "slurm"
    assert {k: v.value for k, v in args.resources.items()} == {"group_slot": 1}


def test_gpu_limit_lowers_requests_and_blocks_nothing(tmp_path: Path) -> None:
    """Snakemake semantics relied on: a request above the limit (even 0) runs, lowered to it."""
    (tmp_path / "Snakefile").write_text(
        "rule all:\n    input: 'cpu.txt', 'gpu.txt'\n"
        "rule cpu:\n    output: 'cpu.txt'\n    resources: gpu=0\n    shell: 'touch {output}'\n"
        "rule gpu:\n    output: 'gpu.txt'\n    resources: gpu=2\n    shell: 'touch {output}'\n"
    )
    (tmp_path / "profiles").symlink_to(ROOT / "profiles")
    unset = ("SNAKEMAKE_PROFILE", "REGSEGBENCH_GPUS")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    snakemake = str(Path(sys.executable).parent / "snakemake")
    result = subprocess.run(
        [snakemake, "--cores", "1"], cwd=tmp_path, capture_output=True, text=True,
        env={**env, "CUDA_VISIBLE_DEVICES": ""}, timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "workflow specific profile profiles/default" in output
    assert (tmp_path / "gpu.txt").is_file() and (tmp_path / "cpu.txt").is_file()
    assert "gpu=2" not in output and output.count("gpu=0") == 2
