"""Command line: generate a synthetic cohort, one case of it, or its manifest.

    python -m liverbench.data.phantom --out DIR --patients N --seed S            # DIR/P001 ...
    python -m liverbench.data.phantom --out DIR --patients N --seed S --only P007
    python -m liverbench.data.phantom --patients N --manifest DIR/manifest.csv [--out DIR]
    python -m liverbench.data.phantom --kind msd --out DIR --patients N --seed S  # MSD layout
    python -m liverbench.data.phantom --kind msd --out DIR --patients N --seed S --only liver_3
    python -m liverbench.data.phantom --kind msd --out DIR --patients N --dataset-json-only

`--only` writes that case and nothing else (one DAG job per case); files are byte-identical
to those of a whole-cohort run with the same seed. The manifest's paths are relative to the
CSV's folder; the cohort folder defaults to that folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liverbench.cli import run_cli
from liverbench.data.phantom.acquisition import SIZES
from liverbench.data.phantom.cohort import (
    KINDS,
    case_ids,
    generate_cohort,
    generate_h108_patient,
    generate_msd_case,
    index_of,
    write_manifest,
    write_msd_dataset_json,
)
from liverbench.errors import InputError

PROG = "python -m liverbench.data.phantom"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="cohort folder (with --manifest: its folder)")
    parser.add_argument("--patients", type=int, required=True, help="cohort size N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=KINDS, default="h108")
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--only", metavar="ID", help="generate just this case (P007, liver_3)")
    action.add_argument(
        "--manifest", type=Path, metavar="CSV", help="h108: write the manifest, generate nothing"
    )
    action.add_argument(
        "--dataset-json-only", action="store_true", help="msd: write dataset.json only"
    )
    parser.set_defaults(func=generate)
    return parser


def check(args: argparse.Namespace) -> None:
    """Argument combinations argparse cannot express, as named errors."""
    if args.patients < 1:
        raise InputError("--patients: must be at least 1")
    if args.manifest and args.kind != "h108":
        raise InputError("--manifest: is for --kind h108")
    if args.out is None and not args.manifest:
        raise InputError("--out: is required")
    if args.dataset_json_only and args.kind != "msd":
        raise InputError("--dataset-json-only: is for --kind msd")
    if args.only and index_of(args.only, args.kind) >= args.patients:
        raise InputError(f"--only: {args.only} is not among the {args.patients} cases")


def generate(args: argparse.Namespace) -> None:
    check(args)
    out = args.out if args.out is not None else args.manifest.parent
    if args.manifest:
        write_manifest(out, case_ids(args.patients, "h108"), args.manifest)
    elif args.dataset_json_only:
        write_msd_dataset_json(out, args.patients)
    elif args.only:
        one = generate_h108_patient if args.kind == "h108" else generate_msd_case
        one(index_of(args.only, args.kind), args.seed, out, args.size)
    else:
        generate_cohort(out, args.patients, args.seed, args.kind, args.size)


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
