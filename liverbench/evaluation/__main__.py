"""`python -m liverbench.evaluation {evaluate,tables,figures,provenance} ...`: one entry point
for the evaluation CLIs (each is also runnable as its own module, as the rules do)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from liverbench.cli import run_cli
from liverbench.evaluation import evaluate, figures, provenance, tables

COMMANDS = {"evaluate": evaluate, "tables": tables, "figures": figures, "provenance": provenance}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m liverbench.evaluation")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.configure(sub.add_parser(name, help=module.DESCRIPTION,
                                        description=module.DESCRIPTION))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("python -m liverbench.evaluation", build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
