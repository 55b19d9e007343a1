"""Runtime records: how long a method took for one pair, on what, with how much memory.

Every method writes one JSON record per prediction with the same keys, so the evaluation can
compare runtimes without knowing anything about the method that produced them. A pair a
method could not register or segment is a recorded failure (`record_failure`), never a
crashed rule: one bad pair must not cost the whole table.
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from liverbench.data.io import write_image, write_json
from liverbench.errors import InputError

RUNTIME_KEYS = (
    "method",
    "pair",
    "seconds_core",
    "seconds_case",
    "stages",
    "device",
    "threads",
    "peak_memory_mb",
)
# Columns of any table that record how a run went (seconds, memory, device, threads, timed
# stages), not what it computed: two runs of one configuration differ there and nowhere else
# (scripts/fault_injection.py, tests/test_slurm.py compare the rest).
RUNTIME_COLUMN = re.compile(r"second|runtime|time|memory|device|threads|cpu|stages", re.I)
OK = "ok"
FAILED = "failed"
# The pair step's stages (liverbench.data pair), as the records of the methods that use the
# pair name them: `pair.read`, `pair.prealign`, `pair.working_grid`.
PAIR_STAGE = "pair."
PAIR_STEP = ("read", "prealign", "working_grid")


def peak_memory_mb() -> float:
    """Peak resident memory of this process (and finished children), in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 1024**2  # kB on Linux, bytes on macOS
    return max(own, children) * scale


_PEAK_WRAPPER = """
import atexit, runpy, sys
out, module = sys.argv[1], sys.argv[2]
def report():
    with open('/proc/self/status') as status:
        kib = next(line.split()[1] for line in status if line.startswith('VmHWM:'))
    with open(out, 'w') as handle:
        handle.write(kib)
atexit.register(report)
sys.argv = [module, *sys.argv[3:]]
runpy.run_module(module, run_name='__main__', alter_sys=True)
"""


def module_peak_mb(module: str, args: Sequence[str], env: Mapping[str, str] | None = None
                   ) -> float:
    """Run `python -m module args` to its end (an error if it fails) and return its own peak
    resident memory in MiB, as the process reads it at exit (Linux: VmHWM). Not ru_maxrss of
    the child: Linux starts that at the parent's resident size, which a test or benchmark
    holding large arrays would add to every figure."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".kib") as peak:
        result = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, peak.name, module, *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env=None if env is None else {**os.environ, **env})
        if result.returncode:
            raise RuntimeError(f"python -m {module} failed:\n{result.stderr}")
        return int(peak.read()) / 1024


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_threads() -> int:
    """Threads the process was given (OMP_NUM_THREADS, as Snakemake sets it), else all cores."""
    return int(os.environ.get("OMP_NUM_THREADS", "0")) or (os.cpu_count() or 1)


class Stages:
    """The timed steps of one case, by name, in the order they ran (seconds add up when a
    name repeats). `with stages("network"): ...` times a step; `include` folds in the steps
    another record or an upstream DAG step timed for this case, under a prefix."""

    def __init__(self, seconds: Mapping[str, float] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.include(seconds or {})

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + float(seconds)

    def include(self, seconds: Mapping[str, float], prefix: str = "") -> None:
        for name, value in seconds.items():
            self.add(f"{prefix}{name}", value)

    def total(self) -> float:
        return sum(self.seconds.values())

    def sum(self, names: Sequence[str]) -> float:
        unknown = [name for name in names if name not in self.seconds]
        if unknown:
            raise KeyError(f"no stage {', '.join(unknown)} among {list(self.seconds)}")
        return sum(self.seconds[name] for name in names)


def write_stages(stages: Stages, path: str | os.PathLike) -> None:
    """An upstream DAG step's timing for one case (the pair step's), for the methods that use
    its outputs to fold into their own `seconds_case`."""
    write_json({"stages": _rounded(stages.seconds)}, path)


def read_stages(path: str | os.PathLike) -> dict[str, float]:
    """The stages written by `write_stages`; errors name the file."""
    path = Path(path)
    try:
        stages = json.loads(path.read_text())["stages"]
    except FileNotFoundError as error:
        raise InputError(f"{path}: stage timing not found") from error
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a stage timing ({{'stages': {{name: seconds}}}})") from error
    if not isinstance(stages, dict) or not all(
            isinstance(v, (int, float)) for v in stages.values()):
        raise InputError(f"{path}: stages must map names to seconds")
    return {str(name): float(value) for name, value in stages.items()}


def inherit_pair_step(stages: Stages, path: str | os.PathLike,
                      used: Sequence[str] = PAIR_STEP) -> None:
    """Fold the pair step's stages that a method uses (`used`: elastix and rigid take the
    originals as read and the pre-alignment, not the working grid) into its `stages`."""
    step = read_stages(path)
    stages.include({name: step[name] for name in used if name in step}, prefix=PAIR_STAGE)


def inherit_record(stages: Stages, record: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Fold another method's record for this case (a CNN mask this method needs, or the
    method whose mapping it carries) into `stages` under `prefix`; returns that record's core
    stages as named here, for this method's own core."""
    stages.include(record["stages"], prefix=prefix)
    return [f"{prefix}{name}" for name in record["core_stages"]]


def _rounded(seconds: Mapping[str, float]) -> dict[str, float]:
    return {name: round(value, 4) for name, value in seconds.items()}


@dataclass
class RuntimeRecord:
    """One method call on one pair, in ONE timing scope for every method (docs/evaluation.md):

    - `seconds_case`: from the original images as read to the mask written in original nCECT
      geometry: reading, the pair's pre-alignment, resampling to the working grid, the
      network or registration, mapping back, writing, and any segmentation the method's
      inputs need (Elastix + CNN's nnU-Net masks), whichever DAG step ran it;
    - `seconds_core`: the network forward passes or the registration alone (`core_stages`);
    - `stages`: the breakdown, name -> seconds, adding up to `seconds_case`.

    Model loading and warm-up are one-offs per process, before any pair is timed (`extra`).
    `from_stages` is the one way methods build it, so the two scopes cannot drift apart."""

    method: str
    pair: str
    seconds_core: float | None
    seconds_case: float | None
    stages: dict[str, float] = field(default_factory=dict)
    core_stages: list[str] = field(default_factory=list)
    device: str = "cpu"
    threads: int = field(default_factory=lambda: default_threads())
    peak_memory_mb: float = field(default_factory=peak_memory_mb)
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = OK  # FAILED: the method gave up on this pair, for `reason`
    reason: str = ""

    @classmethod
    def from_stages(cls, method: str, pair: str, stages: Stages, core: Sequence[str],
                    **fields: Any) -> RuntimeRecord:
        """`seconds_case` is every stage, `seconds_core` the `core` ones (none: 0, a method
        without a network or a registration)."""
        return cls(method, pair, seconds_core=round(stages.sum(core), 4),
                   seconds_case=round(stages.total(), 4), stages=_rounded(stages.seconds),
                   core_stages=list(core), **fields)

    def write(self, path: str | os.PathLike) -> None:
        record = asdict(self)
        record["cpu"] = cpu_name()
        write_json(record, path)


class Stopwatch:
    """`with Stopwatch() as watch: ...; watch.seconds` — perf_counter based."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def record_failure(method: str, pair: str, reason: str, reference: sitk.Image,
                   prediction: str | os.PathLike, runtime: str | os.PathLike,
                   seconds_case: float | None = None, **record: Any) -> None:
    """Write what a failed pair leaves: an EMPTY mask on the nCECT's grid (so the workflow's
    outputs exist and the evaluation scores it as the failure it is: DSC 0) and a runtime
    record with status `failed` and the one-line `reason`. Its core time is null: a failure
    has no comparable runtime (`seconds_case`, if given, is how long it took to give up)."""
    empty = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(reference)
    write_image(empty, prediction)
    RuntimeRecord(method, pair, None, seconds_case, status=FAILED,
                  reason=" ".join(str(reason).split()), **record).write(runtime)
    print(f"{pair}: FAILED ({reason})", file=sys.stderr, flush=True)


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """A runtime record as written by `RuntimeRecord.write`, checked: valid JSON with every
    key of RUNTIME_KEYS and a known status (missing: ok); errors name the file."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise InputError(f"{path}: runtime record not found") from error
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: runtime record is not valid JSON ({error})") from error
    missing = [key for key in RUNTIME_KEYS if key not in record]
    if missing:
        raise InputError(f"{path}: runtime record lacks {', '.join(missing)}")
    if record.setdefault("status", OK) not in (OK, FAILED):
        raise InputError(f"{path}: unknown status {record['status']!r}")
    return record
