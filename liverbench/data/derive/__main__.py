"""Command line: derive H108-like patients from contrast CTs with liver masks.

    python -m liverbench.data.derive --source Task03_Liver --out DIR --seed S [--patients N]
    python -m liverbench.data.derive --source cases.csv --out DIR --seed S --only ID [ID ...]

`--source` is an MSD Task03_Liver folder or a CSV (patient_id,cect,cect_liver[,cect_tumour]).
Without `--only`, writes DIR/<id>/ for the first N cases (sorted ids; all by default) and
DIR/manifest.csv; with it, those cases only (they must be among the first N), byte-identical
to the same cases of a whole run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liverbench.cli import run_cli
from liverbench.data.derive.cohort import derive_cohort

PROG = "python -m liverbench.data.derive"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="MSD folder or CSV")
    parser.add_argument("--out", type=Path, required=True, help="the derived cohort's folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--patients", type=int, help="the first N cases (sorted ids)")
    parser.add_argument("--only", nargs="+", metavar="ID", help="derive just these cases")
    parser.set_defaults(func=derive)
    return parser


def derive(args: argparse.Namespace) -> None:
    derive_cohort(args.source, args.out, args.seed, args.patients, args.only)


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
