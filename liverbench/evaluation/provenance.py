"""Provenance of a run: software versions, machine, threads, seeds and the full config.

    python -m liverbench.evaluation.provenance --config results/EXP/config.resolved.json \\
        --out-json provenance.json --out-md provenance.md [--out-html provenance.html]

The config is a file (the workflow writes the resolved config as `Layout.resolved_config`
only when it changes), so the record is rebuilt when the run's configuration changes.

A table of runtimes means little without the machine and library versions behind it; this
record travels with every report. The user's own elastix parameter files
(`elastix_cnn.parameter_files`) are recorded by name and SHA-256 of their content: the config
holds only their names.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import html
import importlib.metadata as metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from liverbench.cli import command
from liverbench.data.io import write_json, write_text
from liverbench.errors import InputError
from liverbench.runtime import cpu_name

PACKAGES = (
    "torch", "torchvision", "monai", "nnunetv2", "dynamic-network-architectures", "itk-elastix",
    "itk", "SimpleITK", "snakemake", "numpy", "scipy", "pandas", "matplotlib", "seaborn",
    "PyYAML", "jsonschema", "pydicom", "highdicom", "scikit-image", "tabulate",
)
NNUNET_FOLDER_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
THREAD_VARIABLES = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "nnUNet_def_n_proc", "nnUNet_n_proc_DA",
    "CUDA_VISIBLE_DEVICES",
)


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed distribution versions (None where not installed), without importing them."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def gpu_info() -> dict[str, Any]:
    """CUDA devices seen by torch, if torch is installed (importing it costs a second or two)."""
    try:
        import torch
    except Exception as error:  # noqa: BLE001 - any import failure means "no torch here"
        return {"available": False, "reason": f"torch not importable ({type(error).__name__})"}
    if not torch.cuda.is_available():
        return {"available": False, "torch_cuda": torch.version.cuda,
                "torch_threads": torch.get_num_threads()}
    return {
        "available": True,
        "torch_cuda": torch.version.cuda,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "torch_threads": torch.get_num_threads(),
    }


def git_commit(root: str | os.PathLike) -> str | None:
    """HEAD commit (read-only `git rev-parse`), with '-dirty' for uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, check=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def find_seeds(config: Any, prefix: str = "") -> dict[str, Any]:
    """Every config key whose name contains 'seed', with its dotted path."""
    seeds: dict[str, Any] = {}
    if isinstance(config, Mapping):
        for key, value in config.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if "seed" in str(key).lower() and not isinstance(value, (Mapping, list)):
                seeds[path] = value
            seeds.update(find_seeds(value, path))
    elif isinstance(config, list):
        for index, value in enumerate(config):
            seeds.update(find_seeds(value, f"{prefix}[{index}]"))
    return seeds


def elastix_parameter_files(config: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """`elastix_cnn.parameter_files` (paths from the working directory, like the run's) with
    each file's SHA-256 (None where it is gone); None when the config's schedule is used."""
    section = config.get("elastix_cnn")
    files = section.get("parameter_files") if isinstance(section, Mapping) else None
    if not files:
        return None
    return [{"file": str(name), "sha256": hashlib.sha256(Path(name).read_bytes()).hexdigest()
             if Path(name).is_file() else None} for name in files]


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """A config file as a dict: JSON, or YAML (.yaml/.yml)."""
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise InputError(f"{path}: not valid YAML ({error})") from error
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise InputError(f"{path}: config must be a mapping")
    return data


def collect(config: Mapping[str, Any], with_gpu: bool = True) -> dict[str, Any]:
    """The whole provenance record."""
    root = Path(__file__).resolve().parents[2]
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "gpu": gpu_info() if with_gpu else {"available": None, "reason": "not probed"},
        "thread_environment": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        # the user's nnU-Net folders, which nnU-Net then uses (docs/nnunet.md); unset: the
        # pipeline's own under results/<experiment>/nnunet
        "nnunet_folders": {name: os.environ.get(name) for name in NNUNET_FOLDER_VARIABLES},
        "packages": package_versions(),
        "git_commit": git_commit(root),
        "seeds": find_seeds(config),
        "elastix_parameter_files": elastix_parameter_files(config),
        "config": dict(config),
    }


def to_markdown(record: Mapping[str, Any]) -> str:
    gpu = record["gpu"]
    gpu_text = ", ".join(gpu.get("devices", [])) if gpu.get("available") else (
        f"none ({gpu.get('reason', 'CUDA not available')})")
    lines = [
        "# Provenance", "",
        f"- created: {record['created']}",
        f"- git commit: {record['git_commit'] or 'unknown'}",
        f"- Python {record['python']} on {record['platform']}",
        f"- CPU: {record['cpu']} ({record['cpu_usable']} of {record['cpu_count']} cores usable)",
        f"- GPU: {gpu_text}",
        "", "## Threads", "",
    ]
    lines += [f"- {k}: {v if v is not None else 'unset'}"
              for k, v in record["thread_environment"].items()]
    lines += ["", "## nnU-Net folders", ""]
    lines += [f"- {k}: {v or 'unset: the pipeline folders'}"
              for k, v in record["nnunet_folders"].items()]
    lines += ["", "## Packages", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v or 'not installed'} |" for k, v in record["packages"].items()]
    lines += ["", "## Seeds", ""]
    lines += [f"- {k}: {v}" for k, v in record["seeds"].items()] or ["- none in the config"]
    if record.get("elastix_parameter_files"):
        lines += ["", "## elastix parameter files", "", "| file | sha256 |", "|---|---|"]
        lines += [f"| {entry['file']} | {entry['sha256'] or 'missing'} |"
                  for entry in record["elastix_parameter_files"]]
    lines += ["", "## Config", "", "```json",
              json.dumps(record["config"], indent=2, sort_keys=True, default=str), "```", ""]
    return "\n".join(lines)


def to_html(record: Mapping[str, Any]) -> str:
    """The Markdown record as a self-contained page (tables for packages, <pre> for config)."""
    def rows(items: Mapping[str, Any]) -> str:
        return "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                       for k, v in items.items())

    machine = {key: record[key] for key in ("created", "git_commit", "python", "platform",
                                             "cpu", "cpu_count", "cpu_usable")}
    machine["gpu"] = json.dumps(record["gpu"])
    sections = [
        ("Machine", rows(machine)),
        ("Threads", rows({k: v or "unset" for k, v in record["thread_environment"].items()})),
        ("nnU-Net folders", rows({k: v or "unset: the pipeline folders"
                                  for k, v in record["nnunet_folders"].items()})),
        ("Packages", rows({k: v or "not installed" for k, v in record["packages"].items()})),
        ("Seeds", rows(record["seeds"])),
    ]
    if record.get("elastix_parameter_files"):
        sections.append(("elastix parameter files", rows(
            {e["file"]: e["sha256"] or "missing" for e in record["elastix_parameter_files"]})))
    body = "".join(f"<h2>{title}</h2><table>{content}</table>" for title, content in sections)
    config = html.escape(json.dumps(record["config"], indent=2, sort_keys=True, default=str))
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Provenance</title><style>'
        "body{font-family:sans-serif;margin:1.5em}td{border:1px solid #bbb;padding:.2em .6em}"
        "table{border-collapse:collapse}</style></head><body><h1>Provenance</h1>"
        f"{body}<h2>Config</h2><pre>{config}</pre></body></html>\n"
    )


def write_provenance(
    config: Mapping[str, Any], out_json: str | os.PathLike, out_md: str | os.PathLike,
    with_gpu: bool = True, out_html: str | os.PathLike | None = None,
) -> dict[str, Any]:
    record = collect(config, with_gpu=with_gpu)
    write_json(record, out_json)
    write_text(to_markdown(record), out_md)
    if out_html:
        write_text(to_html(record), out_html)
    return record


def run(args: argparse.Namespace) -> None:
    write_provenance(load_config(args.config), args.out_json, args.out_md,
                     with_gpu=not args.no_gpu, out_html=args.out_html)
    print("\n".join(p for p in (args.out_json, args.out_md, args.out_html) if p))


DESCRIPTION = "Provenance record: versions, machine, threads, seeds and the resolved config."
PROG = "python -m liverbench.evaluation.provenance"


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add this command's arguments and handler (also a subcommand of liverbench.evaluation)."""
    parser.add_argument("--config", required=True,
                        help="the resolved config file (JSON, or YAML)")
    parser.add_argument("--out-json", required=True)
    parser.add_argument("--out-md", required=True)
    parser.add_argument("--out-html", help="also a self-contained HTML page (for the report)")
    parser.add_argument("--no-gpu", action="store_true", help="do not import torch")
    parser.set_defaults(func=run)
    return parser


main = command(PROG, DESCRIPTION, configure)


if __name__ == "__main__":
    sys.exit(main())
