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
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from liverbench.data.io import write_image, write_json
from liverbench.errors import InputError

RUNTIME_KEYS = (
    "method",
    "pair",
    "seconds_method",
    "seconds_total",
    "device",
    "threads",
    "peak_memory_mb",
)
OK = "ok"
FAILED = "failed"


def peak_memory_mb() -> float:
    """Peak resident memory of this process (and finished children), in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 1024**2  # kB on Linux, bytes on macOS
    return max(own, children) * scale


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


@dataclass
class RuntimeRecord:
    """One method call on one pair. `seconds_method` is what the method counts as its own
    work, `seconds_total` the whole call. What each method counts differs today (RegSegNet:
    the network alone; Elastix + CNN: elastix, transformix and phase 1's two nnU-Net
    predictions; workflow/report/runtime.rst): one scope for all is issue 12's."""

    method: str
    pair: str
    seconds_method: float
    seconds_total: float
    device: str = "cpu"
    threads: int = field(default_factory=lambda: default_threads())
    peak_memory_mb: float = field(default_factory=peak_memory_mb)
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = OK  # FAILED: the method gave up on this pair, for `reason`
    reason: str = ""

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
                   seconds_total: float | None = None, **record: Any) -> None:
    """Write what a failed pair leaves: an EMPTY mask on the nCECT's grid (so the workflow's
    outputs exist and the evaluation scores it as the failure it is: DSC 0) and a runtime
    record with status `failed` and the one-line `reason`. The method's time is null: a
    failure has no comparable runtime."""
    empty = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(reference)
    write_image(empty, prediction)
    RuntimeRecord(method, pair, None, seconds_total, status=FAILED,  # type: ignore[arg-type]
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
