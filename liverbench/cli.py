"""One error convention for every command line of the project.

Bad input (a missing or corrupt file, an unknown key, a value out of range) ends a command with
exit status 2 and one line on stderr, `<command>: <file or key>: <problem>`, no traceback; a
bug still shows its traceback. Every `__main__` calls `run_cli`:

    def main(argv=None) -> int:
        return run_cli("python -m regsegnet", build_parser(), argv)

where each sub-parser sets `func` (`parser.set_defaults(func=handler)`) to a handler taking
the parsed arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from liverbench.errors import InputError

EXIT_BAD_INPUT = 2  # argparse's own status for a bad command line

# ValueError covers the libraries' own bad-input errors (json, numpy shapes of a bad file);
# FileNotFoundError a path that does not exist.
BAD_INPUT = (InputError, ValueError, FileNotFoundError)


def fail(prog: str, error: BaseException) -> int:
    """Print `prog: message` to stderr and return the bad-input exit status."""
    message = str(error) if not isinstance(error, FileNotFoundError) or not error.filename \
        else f"{error.filename}: {error.strerror or 'not found'}"
    print(f"{prog}: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run_cli(prog: str, parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the chosen handler (`args.func`), map bad input to exit status 2."""
    args = parser.parse_args(argv)
    command = " ".join(filter(None, (prog, getattr(args, "command", None))))
    try:
        args.func(args)
    except BAD_INPUT as error:
        return fail(command, error)
    return 0


def aligned(args: argparse.Namespace, *names: str) -> list[tuple]:
    """Zip per-pair argument lists that must have one entry per pair, in the same order."""
    lists = {name: getattr(args, name) or [] for name in names}
    lengths = {len(value) for value in lists.values()}
    if len(lengths) > 1:
        counts = ", ".join(f"--{name.replace('_', '-')}: {len(v)}" for name, v in lists.items())
        raise InputError(f"per-pair arguments differ in length ({counts})")
    return list(zip(*lists.values()))


def command(
    prog: str, description: str, configure: Callable[[argparse.ArgumentParser], object]
) -> Callable[[Sequence[str] | None], int]:
    """The `main` of a one-command CLI whose arguments and handler `configure(parser)` adds
    (the same `configure` can add them to a subcommand of a grouping CLI)."""

    def main(argv: Sequence[str] | None = None) -> int:
        parser = argparse.ArgumentParser(
            prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        configure(parser)
        return run_cli(prog, parser, argv)

    return main


def per_pair_command(
    prog: str, description: str, names: Sequence[str], predict: Callable[..., None]
) -> Callable[[Sequence[str] | None], int]:
    """The `main` of a method whose every argument is a per-pair list (`--pairs`, inputs,
    outputs, aligned): `predict(*row)` runs once per pair, in `--pairs` order."""

    def configure(parser: argparse.ArgumentParser) -> None:
        for name in names:
            parser.add_argument(f"--{name.replace('_', '-')}", nargs="+", required=True)
        parser.set_defaults(func=lambda args: [predict(*row) for row in aligned(args, *names)])

    return command(prog, description, configure)
