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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m liverbench.data.phantom", description=__doc__.split("\n")[0]
    )
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
    args = parser.parse_args(argv)
    if args.patients < 1:
        parser.error("--patients must be at least 1")
    if args.manifest and args.kind != "h108":
        parser.error("--manifest is for --kind h108")
    if args.out is None:
        if not args.manifest:
            parser.error("--out is required")
        args.out = args.manifest.parent
    if args.dataset_json_only and args.kind != "msd":
        parser.error("--dataset-json-only is for --kind msd")
    if args.only:
        try:
            index = index_of(args.only, args.kind)
        except ValueError as error:
            parser.error(str(error))
        if index >= args.patients:
            parser.error(f"{args.only} is not among the {args.patients} cases")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.manifest:
        write_manifest(args.out, case_ids(args.patients, "h108"), args.manifest)
    elif args.dataset_json_only:
        write_msd_dataset_json(args.out, args.patients)
    elif args.only:
        generate = generate_h108_patient if args.kind == "h108" else generate_msd_case
        generate(index_of(args.only, args.kind), args.seed, args.out, args.size)
    else:
        generate_cohort(args.out, args.patients, args.seed, args.kind, args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
