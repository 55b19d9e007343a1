"""The user's own elastix parameter files (`elastix_cnn.parameter_files`), used as they are.

    elastix_cnn:
      parameter_files: [params/rigid.txt, params/bspline.txt]   # from the working directory

Each file is one elastix parameter map; elastix runs them in the given order, each stage
starting from the previous result (after the pair's pre-alignment, as with the default
schedule). Relative paths are from the working directory (Snakemake's, the repository root
when run as documented), like every other path of the DAG.

- `check_file` reads a file with elastix's own grammar (the rules of elastix's
  `ParameterFileParser`, and no parenthesis inside an entry) before anything runs, so a malformed
  line is refused as `file:line: problem` when the config is resolved, not mid-run.
- `load` reads the files with itk-elastix's reader (`ParameterObject.ReadParameterFile`) and
  sets the few keys the pipeline must control (`OVERRIDES`), returning a log line per change.
- `refused` turns an elastix error about a key or a value of the user's maps into
  `file:line: elastix refused ...`: a configuration error that stops the job, not a pair's
  failure.
- `digests` (file, SHA-256) go to the runtime records and the run's log.

Importing this module does not import itk; only `load` does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from liverbench.errors import InputError

ParameterMap = dict[str, list[str]]

# key -> (value, why): what the pipeline sets in every user map. Anything else is the user's.
OVERRIDES: dict[str, tuple[list[str], str]] = {
    "WriteResultImage": (["false"], "the liver mask is carried by transformix from the result "
                         "transform; elastix's own resampled CECT is never read, and would "
                         "cost a full resampling and an image file per stage and pair"),
    "HowToCombineTransforms": (["Compose"], "the chain must be T(p) = stage(prealignment(p)): "
                               "the pair's pre-alignment is elastix's initial transform and the "
                               "final mapping is scored as that composition"),
    "UseDirectionCosines": (["true"], "the nCECT and CECT come from different scanners with "
                            "their own axes; the pre-alignment, the masks and the mapping are "
                            "in world coordinates"),
}
# elastix's own values where a file does not give the key: setting it then changes nothing,
# and is not logged.
ELASTIX_DEFAULTS = {"WriteResultImage": ["true"], "HowToCombineTransforms": ["Compose"],
                    "UseDirectionCosines": ["true"]}
# Threads come from the rule's `threads` (ITK's global default) and itk-elastix ignores this
# key: it is set only where a file gives it, so that the maps kept per pair tell the truth.
THREADS_KEY = "MaximumNumberOfThreads"

_NAME_CHARACTERS = re.compile(r"[.,:;!@#$%^&'()*+|<>?-]")  # what elastix refuses in names
_COMPONENT_NOT_CREATED = re.compile(r"could not be created: (\S+)")
_KEY_IN_ERROR = (re.compile(r'parameter "(\w+)"'), re.compile(r"\bThe (\w+) parameter\b"))
_NOT_SPECIFIED = re.compile(r"component has not been specified: (\w+)")


class ParameterFileError(InputError):
    """A user parameter file elastix cannot use; the message is `file:line: problem`."""


@dataclass(frozen=True)
class Entry:
    line: int
    values: tuple[str, ...]
    text: str  # the line without its comment


@dataclass
class UserMaps:
    """The user's maps as elastix will run them (overrides applied), and where they came from."""

    files: list[str]
    maps: list[ParameterMap] = field(default_factory=list)
    overridden: list[str] = field(default_factory=list)  # one log line per changed key
    digests: list[dict[str, str]] = field(default_factory=list)  # file and SHA-256, as read


def problem(path: str) -> str | None:
    """Why `path` cannot be used as a parameter file (`file: ...` or `file:line: ...`), or None."""
    file = Path(path)
    if not file.is_file():
        where = "" if file.is_absolute() else f" (relative paths are from the working " \
                                               f"directory, {Path.cwd()})"
        return f"{path}: file not found{where}"
    try:
        check_file(path)
    except ParameterFileError as error:
        return str(error)
    return None


def check_file(path: str | Path) -> dict[str, Entry]:
    """Parse a parameter file the way elastix does; `file:line: problem` if it would refuse it.
    Returns its entries by key. Only the ASCII structure matters: comments in another
    encoding (elastix reads bytes) are accepted."""
    return parse(Path(path).read_text(encoding="utf-8", errors="replace"), str(path))


def parse(text: str, name: str) -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.replace("\t", " ").split("//", 1)[0].strip()
        if not line:
            continue
        where = f"{name}:{number}"
        if not line.startswith("("):
            raise ParameterFileError(f"{where}: not a (Key value ...) entry or a // comment: "
                                     f"{raw.strip()!r}")
        if not line.endswith(")"):
            raise ParameterFileError(f"{where}: no closing parenthesis: {raw.strip()!r}")
        words = _split(line[1:-1], where)
        if len(words) < 2:
            raise ParameterFileError(f"{where}: needs a parameter name and at least one value: "
                                     f"{raw.strip()!r}")
        key, *values = words
        if _NAME_CHARACTERS.search(key) or key.startswith('"'):
            raise ParameterFileError(f"{where}: {key!r} is not a parameter name (elastix "
                                     "refuses . , : ; ! @ # $ % ^ & ' ( ) * + | < > ? - in "
                                     "names)")
        if key in entries:
            raise ParameterFileError(f"{where}: {key} is given twice (first on line "
                                     f"{entries[key].line})")
        entries[key] = Entry(number, tuple(v.strip('"') for v in values), line)
    return entries


def _split(inner: str, where: str) -> list[str]:
    """Words of an entry: quoted strings whole, the rest split at spaces."""
    if inner.count('"') % 2:
        raise ParameterFileError(f'{where}: odd number of quotes (") in ({inner})')
    words: list[str] = []
    for index, part in enumerate(inner.split('"')):
        if index % 2:  # inside quotes
            words.append(f'"{part}"')
        else:
            if "(" in part or ")" in part:
                raise ParameterFileError(f"{where}: a parenthesis inside the entry ({inner})")
            words.extend(part.split())
    return words


def digests(files: Sequence[str]) -> list[dict[str, str]]:
    """Each file's name as given and the SHA-256 of its content."""
    return [{"file": str(name), "sha256": hashlib.sha256(Path(name).read_bytes()).hexdigest()}
            for name in files]


def iterations(files: Sequence[str]) -> int:
    """Resolutions x iterations summed over the files (elastix's defaults 3 and 500 where a
    file does not say): the scheduler's runtime estimate."""
    total = 0
    for name in files:
        entries = check_file(name)
        resolutions = entries.get("NumberOfResolutions", Entry(0, ("3",), ""))
        steps = entries.get("MaximumNumberOfIterations", Entry(0, ("500",), ""))
        try:
            total += int(resolutions.values[0]) * max(int(v) for v in steps.values)
        except ValueError:
            total += 3 * 500  # elastix refuses it later, with the line
    return total


def load(files: Sequence[str], threads: int) -> UserMaps:
    """The files read by itk-elastix's own reader, in order, with the pipeline's overrides."""
    import itk

    result = UserMaps([str(name) for name in files], digests=digests(files))
    for name in files:
        check_file(name)
        parameters = itk.ParameterObject.New()
        try:
            parameters.ReadParameterFile(str(name))
        except RuntimeError as error:  # elastix's reader quotes the line it refuses
            raise ParameterFileError(_reader_error(name, str(error))) from None
        if parameters.GetNumberOfParameterMaps() != 1:
            raise ParameterFileError(f"{name}: expected one parameter map, elastix read "
                                     f"{parameters.GetNumberOfParameterMaps()}")
        read = parameters.GetParameterMap(0)
        parameter_map = {key: list(read[key]) for key in read.keys()}
        wanted = dict(OVERRIDES)
        if THREADS_KEY in parameter_map:
            wanted[THREADS_KEY] = ([str(threads)], "itk-elastix ignores it; elastix runs on "
                                   "the rule's threads (ITK's global default)")
        for key, (value, why) in wanted.items():
            before = parameter_map.get(key)
            parameter_map[key] = list(value)
            if (before or ELASTIX_DEFAULTS.get(key)) != value:  # a change in what elastix does
                given = " ".join(before) if before else "not given"
                result.overridden.append(f"{name}: {key} {given} -> {' '.join(value)} ({why})")
        result.maps.append(parameter_map)
    return result


def _reader_error(name: str, message: str) -> str:
    """elastix's reader error as `file:line: problem`: its quoted line found in the file."""
    lines = [part.strip() for part in message.splitlines() if part.strip()]
    quoted = next((part[1:-1] for part in lines if part.startswith('"') and part.endswith('"')),
                  None)
    hint = next((part for part in lines if quoted and not part.startswith(('"', "ITK ERROR",
                                                                         "Please", "/"))), "")
    text = Path(name).read_text(encoding="utf-8", errors="replace").splitlines()
    number = next((i for i, line in enumerate(text, 1) if quoted and line.strip() == quoted),
                  None)
    where = f"{name}:{number}" if number else name
    detail = hint or (lines[-1] if lines else message)
    return f"{where}: elastix's reader refuses {quoted!r}: {detail}" if quoted else \
        f"{where}: elastix's reader refuses the file: {detail}"


def refused(reason: str, log: Path | None, files: Sequence[str]) -> str | None:
    """`file:line: elastix refused ...` when elastix's error (its message, then its log's error
    lines) names a key or a component of the user's files; None when it is about the pair."""
    lines, stage = [reason], None
    if log is not None and log.is_file():
        logged = log.read_text(errors="replace").splitlines()
        lines += [line.strip() for line in logged if line.startswith(("ERROR", "Description"))]
        stage = sum("start of ParameterMap" in line for line in logged)  # maps elastix began
    entries = [check_file(name) for name in files]
    for line in lines:
        created = _COMPONENT_NOT_CREATED.findall(line)
        keys = [key for pattern in _KEY_IN_ERROR for key in pattern.findall(line)]
        found = [(i, e[key]) for key in keys for i, e in enumerate(entries) if key in e]
        found += [(i, entry) for component in created for i, e in enumerate(entries)
                  for entry in e.values() if component in entry.values]
        if found:  # several files may hold it: the one elastix was running (or about to)
            hint = None if stage is None else stage - (0 if created else 1)
            index, entry = next((f for f in found if f[0] == hint), found[0])
            return f"{files[index]}:{entry.line}: elastix refused {entry.text}: {_clean(line)}"
        missing = _NOT_SPECIFIED.findall(line)
        if missing:
            index = min(max(stage or 0, 0), len(files) - 1)
            return f"{files[index]}: elastix needs a ({missing[0]} ...) entry: {_clean(line)}"
    return None


def _clean(line: str) -> str:
    """elastix's message without its prefixes (pair, 'Description', object addresses)."""
    line = line.split("elastix failed: ", 1)[-1].strip()
    return re.sub(r"^(Description: )?(ITK ERROR: )?(\w+\(0x[0-9a-f]+\): )?(ERROR: )?", "", line)
