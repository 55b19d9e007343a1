"""The conda environments in envs/ agree with requirements.txt and with what the rules import.

No conda channel can be reached on the machines this project is built on, so the
environments are never solved here. What can be checked without conda is checked:
- every envs/*.yaml parses, has channels and dependencies, and pins every package;
- every pin equals the one in requirements.txt (the venv the tests run in), and an env pins
  every requirements.txt package that its packages pull in, so no unpinned dependency can
  drift (e.g. nnunetv2 -> timm -> torchvision, which otherwise upgrades torch);
- every rule that calls a project CLI (`python -m package`) names an env with `conda:`, and
  that env lists every third-party package the CLI's modules import (found with `ast`,
  following imports of the project's own packages, which are not listed: each env's
  post-deployment script installs the project into it, checked here too).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as metadata
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "envs"
RULES = ROOT / "workflow" / "rules"
PROJECT_PACKAGES = sorted(
    path.name for path in ROOT.iterdir() if (path / "__init__.py").is_file()
)
# Conda packages that are not on PyPI under the same name, and the PyPI name they stand for.
CONDA_TO_PYPI = {"pytorch": "torch", "pyyaml": "pyyaml", "simpleitk": "simpleitk"}
# Conda packages every env may list without a requirements.txt pin.
CONDA_BASE = {"python", "pip"}


def requirement_pins() -> dict[str, str]:
    """requirements.txt as {canonical name: version}."""
    pins = {}
    for number, line in enumerate((ROOT / "requirements.txt").read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert match, f"requirements.txt:{number}: not a `name==version` pin: {line!r}"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


@dataclass
class Env:
    path: Path
    python: str | None
    pins: dict[str, str]  # canonical name -> version, conda and pip entries together
    problems: list[str]


def parse_env(path: Path) -> Env:
    """Read one environment file, recording every entry that is not an exact pin."""
    data = yaml.safe_load(path.read_text())
    problems: list[str] = []
    if not isinstance(data, dict) or not isinstance(data.get("dependencies"), list):
        return Env(path, None, {}, ["no `dependencies:` list"])
    if not data.get("channels"):
        problems.append("no `channels:` (conda would use whatever the user has configured)")
    python = None
    pins: dict[str, str] = {}
    for entry in data["dependencies"]:
        if isinstance(entry, dict):
            for spec in entry.get("pip", []):
                if str(spec).startswith("-"):  # --index-url and the like
                    continue
                match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", str(spec).strip())
                if not match:
                    problems.append(f"pip entry {spec!r} is not an exact `name==version` pin")
                    continue
                pins[canonicalize_name(match[1])] = match[2]
            continue
        match = re.fullmatch(r"(?:[\w\-]+::)?([A-Za-z0-9_.\-]+)\s*(?:={1,2}\s*([^\s=]+))?", entry)
        if not match:
            problems.append(f"conda entry {entry!r} is not `name=version`")
            continue
        name, version = match[1].lower(), match[2]
        if name == "python":
            python = version
        elif name in CONDA_BASE:
            continue
        elif version is None:
            problems.append(f"conda entry {entry!r} has no version")
        else:
            pins[canonicalize_name(CONDA_TO_PYPI.get(name, name))] = version
    if python is None:
        problems.append("python is not pinned")
    return Env(path, python, pins, problems)


def env_files() -> list[Path]:
    return sorted(ENVS.glob("*.yaml"))


def pulled_in(names: set[str], pins: dict[str, str]) -> dict[str, str]:
    """requirements.txt packages that installing `names` brings along: {package: via}.

    Walks the installed distributions' metadata (the venv holds exactly the pinned versions),
    ignoring optional extras.
    """
    found: dict[str, str] = {}
    stack = [(name, name) for name in names]
    seen = set(names)
    while stack:
        name, via = stack.pop()
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency in seen:
                continue
            seen.add(dependency)
            if dependency in pins:
                found[dependency] = f"{via} -> {dependency}"
            stack.append((dependency, f"{via} -> {dependency}"))
    return found


# --- rules and their imports ------------------------------------------------------------


@dataclass
class Rule:
    name: str
    file: Path
    conda: str | None
    modules: list[str]  # modules run with `python -m`


def rules() -> list[Rule]:
    """Every rule of workflow/rules/*.smk with its conda env and the CLIs its shell runs."""
    found = []
    for path in sorted(RULES.glob("*.smk")):
        text = path.read_text()
        starts = [(m.start(), m[1]) for m in re.finditer(r"^\s*rule (\w+):", text, re.M)]
        for index, (start, name) in enumerate(starts):
            end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
            block = text[start:end]
            conda = re.search(r"conda:\s*\n?\s*[rf]?[\"']([^\"']+)[\"']", block)
            modules = re.findall(r"python3? -m ([A-Za-z_][\w.]*)", block)
            found.append(Rule(name, path, conda[1] if conda else None, modules))
    return found


def module_file(module: str) -> Path | None:
    """The source file of a project module (a package's __init__.py), if it exists."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _in_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imported_modules(path: Path, module: str) -> Iterator[str]:
    """Absolute names of every module `path` imports (anywhere in the file)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if _in_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield target
            # `from package import submodule` imports the submodule too
            yield from (f"{target}.{alias.name}" for alias in node.names)


def third_party_imports(entry: str) -> dict[str, str]:
    """Top-level third-party imports reachable from running `python -m entry`: {name: file}."""
    found: dict[str, str] = {}
    todo = [entry, f"{entry}.__main__"]
    parts = entry.split(".")
    todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages' __init__
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_file(module)
        if path is None:
            continue
        for name in imported_modules(path, module):
            top = name.split(".")[0]
            if top in PROJECT_PACKAGES:
                todo.append(name)
                pieces = name.split(".")
                todo += [".".join(pieces[:i]) for i in range(1, len(pieces))]
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, str(path.relative_to(ROOT)))
    return found


@functools.cache
def _import_providers() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def distributions_of(import_name: str) -> set[str]:
    """The installed distributions that provide a top-level import name."""
    return {canonicalize_name(d) for d in _import_providers().get(import_name, [])}


# --- tests --------------------------------------------------------------------------------


INSTALL_SCRIPT = ENVS / "install-project.sh"


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.name)
def test_every_env_installs_the_project(path: Path) -> None:
    """Snakemake runs `envs/NAME.post-deploy.sh` after creating `envs/NAME.yaml`: the one script."""
    script = path.with_name(f"{path.stem}.post-deploy.sh")
    assert script.is_file(), f"{script.relative_to(ROOT)} is missing"
    assert script.resolve() == INSTALL_SCRIPT, f"{script.name} does not link {INSTALL_SCRIPT.name}"


def test_install_script_installs_the_checkout_editable_without_dependencies() -> None:
    text = INSTALL_SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")  # Snakemake runs the shebang's interpreter
    assert '"$CONDA_PREFIX/bin/python" -m pip install' in text
    assert "--no-deps -e \"$root\"" in text


def test_install_script_refuses_a_directory_that_is_not_the_project(tmp_path: Path) -> None:
    """Run from elsewhere (e.g. `--directory`), it stops with a message, installing nothing."""
    result = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], cwd=tmp_path, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "CONDA_PREFIX": str(tmp_path / "no-env")}, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "REGSEGBENCH_ROOT" in result.stderr and str(tmp_path) in result.stderr


def test_there_are_envs_and_rules() -> None:
    assert env_files(), "no envs/*.yaml"
    assert any(rule.modules for rule in rules()), "no rule calls `python -m <package>`"


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.name)
def test_env_pins_match_requirements(path: Path) -> None:
    pins = requirement_pins()
    env = parse_env(path)
    problems = list(env.problems)
    wanted_python = f"{sys.version_info.major}.{sys.version_info.minor}"
    if env.python is not None and env.python.rstrip(".*") != wanted_python:
        problems.append(f"python={env.python}, but the project is tested on {wanted_python}")
    for name, version in env.pins.items():
        if name not in pins:
            problems.append(f"{name}=={version} is not pinned in requirements.txt")
        elif pins[name] != version:
            problems.append(f"{name}=={version}, requirements.txt has {pins[name]}")
    for name, via in sorted(pulled_in(set(env.pins), pins).items()):
        if name not in env.pins:
            problems.append(f"{name} is pulled in ({via}) but not pinned (requirements.txt: "
                            f"{name}=={pins[name]})")
    assert not problems, f"{path.relative_to(ROOT)}:\n  " + "\n  ".join(problems)


def test_every_cli_rule_names_an_existing_env() -> None:
    problems = []
    for rule in rules():
        if not rule.modules:
            continue
        if rule.conda is None:
            problems.append(f"{rule.file.name}: rule {rule.name} has no `conda:` directive")
        elif not (rule.file.parent / rule.conda).resolve().is_file():
            problems.append(f"{rule.file.name}: rule {rule.name}: {rule.conda} does not exist")
        elif (rule.file.parent / rule.conda).resolve().parent != ENVS:
            problems.append(f"{rule.file.name}: rule {rule.name}: {rule.conda} is not in envs/")
    assert not problems, "\n".join(problems)


# Imported only when a user opts in (regsegnet.inference: onnxruntime | openvino, documented
# in docs/regsegnet.md): not part of any env; asking for one that is missing is a named error.
OPTIONAL_IMPORTS = {"onnx", "onnxruntime", "openvino"}


def test_every_import_of_a_rule_is_in_its_env() -> None:
    problems = []
    for rule in rules():
        if not rule.modules or rule.conda is None:
            continue
        env_path = (rule.file.parent / rule.conda).resolve()
        if not env_path.is_file():
            continue  # reported by the test above
        listed = set(parse_env(env_path).pins)
        for module in rule.modules:
            if not (module_file(module) or module_file(f"{module}.__main__")):
                problems.append(f"rule {rule.name} runs `python -m {module}`, which is not "
                                "a project module")
                continue
            for name, where in sorted(third_party_imports(module).items()):
                if name in OPTIONAL_IMPORTS:
                    continue
                providers = distributions_of(name)
                if not providers:
                    problems.append(f"rule {rule.name}: {where} imports {name}, which no "
                                    "installed distribution provides")
                elif not providers & listed:
                    problems.append(f"rule {rule.name} ({env_path.name}): {where} imports "
                                    f"{name} (from {'/'.join(sorted(providers))}), not listed")
    assert not problems, "\n".join(sorted(set(problems)))


def test_snakemake_lint_finds_every_rule_with_env_and_log(tmp_path: Path) -> None:
    """`snakemake --lint --use-conda` (which needs no conda) has no env or log complaint."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "--lint", "--use-conda",
         "--snakefile", str(ROOT / "workflow" / "Snakefile"), "--directory", str(tmp_path),
         "--config", "scale=smoke"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert "Lints for" in output or result.returncode == 0, output[-3000:]
    for title in ("Specify a conda environment", "No log directive"):
        assert title not in output, output[-3000:]


def test_the_checks_catch_drift(tmp_path: Path) -> None:
    """The parser sees a wrong pin, a missing pin and an unpinned pull-in."""
    drifted = tmp_path / "drift.yaml"
    drifted.write_text(
        "channels: [conda-forge]\n"
        "dependencies:\n  - python=3.11\n  - pip\n"
        "  - pip:\n      - numpy==1.0.0\n      - scipy\n      - pandas==3.1.1\n"
    )
    env = parse_env(drifted)
    assert env.pins["numpy"] == "1.0.0" and env.pins["numpy"] != requirement_pins()["numpy"]
    assert any("scipy" in problem for problem in env.problems)
    assert "numpy" in pulled_in({"pandas"}, requirement_pins())


def test_import_scan_follows_project_packages(tmp_path: Path) -> None:
    """A project CLI's third-party imports include those of the project modules it imports."""
    found = third_party_imports("liverbench.data")
    assert "numpy" in found and "SimpleITK" in found
    assert not set(found) & set(PROJECT_PACKAGES)
