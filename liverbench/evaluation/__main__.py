"""`python -m liverbench.evaluation {evaluate,tables,figures,provenance} ...`: one entry point
for the evaluation CLIs (each is also runnable as its own module)."""

from __future__ import annotations

import importlib
import sys

COMMANDS = ("evaluate", "tables", "figures", "provenance")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m liverbench.evaluation {{{','.join(COMMANDS)}}} ...",
              file=sys.stderr)
        return 2
    module = importlib.import_module(f"liverbench.evaluation.{argv[0]}")
    return module.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
