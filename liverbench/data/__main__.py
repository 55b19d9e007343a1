"""Data-stage CLI: one subcommand per DAG step, each usable without Snakemake.

    python -m liverbench.data standardize-h108 --manifest M.csv --patient P --out DIR
    python -m liverbench.data standardize-msd --root Task03_Liver --case liver_0 --out DIR
    python -m liverbench.data preprocess --case DIR --out DIR --settings '{"shape": ...}'
    python -m liverbench.data pair --moving-case DIR --fixed-case DIR --out DIR --settings ...
    python -m liverbench.data splits --patients P1 P2 ... --fractions 35 5 20 --seed S ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from liverbench.data import adapters
from liverbench.data.io import ImageError, read_image, read_mask, write_image, write_json
from liverbench.data.preprocess import (
    WorkingGrid,
    preprocess_image,
    resample_mask,
    working_reference,
)
from liverbench.data.splits import make_pairs, make_splits


def load_settings(text: str) -> dict:
    """`--settings` is a JSON string or the path of a JSON/YAML file."""
    path = Path(text)
    if not text.lstrip().startswith("{") and path.is_file():
        import yaml

        return yaml.safe_load(path.read_text())
    return json.loads(text)


def preprocess_case(case_dir: Path, out_dir: Path, grid: WorkingGrid) -> None:
    """Each CT (and its liver mask) onto its own working grid, centred on its body."""
    for phase in ("cect", "ncect"):
        image_path = case_dir / f"{phase}.nii.gz"
        if not image_path.exists() and phase == "ncect":
            continue  # MSD cases have a CECT only
        image = read_image(image_path)
        mask_path = case_dir / f"{phase}_liver.nii.gz"
        mask = read_mask(mask_path, image, image_path)
        reference = working_reference(image, grid)
        write_image(preprocess_image(image, grid, reference), out_dir / f"{phase}.nii.gz")
        write_image(resample_mask(mask, reference), out_dir / f"{phase}_liver.nii.gz")


def make_pair(moving_case: Path, fixed_case: Path, out_dir: Path, grid: WorkingGrid) -> None:
    """Moving CECT and fixed nCECT on the fixed nCECT's working grid (world coordinates)."""
    fixed = read_image(fixed_case / "ncect.nii.gz")
    fixed_liver = read_mask(fixed_case / "ncect_liver.nii.gz", fixed, fixed_case / "ncect.nii.gz")
    moving = read_image(moving_case / "cect.nii.gz")
    moving_path = moving_case / "cect.nii.gz"
    moving_liver = read_mask(moving_case / "cect_liver.nii.gz", moving, moving_path)
    reference = working_reference(fixed, grid)
    write_image(preprocess_image(moving, grid, reference), out_dir / "moving.nii.gz")
    write_image(resample_mask(moving_liver, reference), out_dir / "moving_liver.nii.gz")
    write_image(preprocess_image(fixed, grid, reference), out_dir / "fixed.nii.gz")
    write_image(resample_mask(fixed_liver, reference), out_dir / "fixed_liver.nii.gz")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m liverbench.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("standardize-h108", help="check and standardize one manifest patient")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--patient", required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("standardize-msd", help="standardize one MSD Task03_Liver case")
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--case", required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("preprocess", help="a standardized case onto working grids")
    p.add_argument("--case", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--settings", required=True, help="the config's preprocess section (JSON)")

    p = sub.add_parser("pair", help="moving CECT and fixed nCECT on the fixed working grid")
    p.add_argument("--moving-case", type=Path, required=True)
    p.add_argument("--fixed-case", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--settings", required=True, help="the config's preprocess section (JSON)")

    p = sub.add_parser("splits", help="patient-level splits and pair lists -> JSON")
    p.add_argument("--patients", nargs="+", required=True)
    p.add_argument("--fractions", nargs=3, type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--inter-per-patient", type=int, required=True)
    p.add_argument("--manifest", type=Path, help="take fixed splits from its `split` column")
    p.add_argument("--out", type=Path, required=True)

    args = parser.parse_args(argv)
    try:
        run(args)
    except (ImageError, adapters.ManifestError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> None:
    if args.command == "standardize-h108":
        rows = {
            row.patient_id: row
            for row in adapters.read_manifest(args.manifest, check_files=[args.patient])
        }
        if args.patient not in rows:
            raise adapters.ManifestError(f"{args.manifest}: no patient {args.patient!r}")
        adapters.standardize_h108(rows[args.patient], args.out)
    elif args.command == "standardize-msd":
        adapters.standardize_msd(args.root, args.case, args.out)
    elif args.command == "preprocess":
        preprocess_case(args.case, args.out, WorkingGrid.from_config(load_settings(args.settings)))
    elif args.command == "pair":
        grid = WorkingGrid.from_config(load_settings(args.settings))
        make_pair(args.moving_case, args.fixed_case, args.out, grid)
    elif args.command == "splits":
        fixed = {}
        if args.manifest:
            rows = adapters.read_manifest(args.manifest, check_files=())
            fixed = {r.patient_id: r.split for r in rows if r.split}
        splits = make_splits(args.patients, args.fractions, args.seed, fixed)
        splits["pairs"] = make_pairs(splits, args.inter_per_patient, args.seed)
        write_json(splits, args.out)


if __name__ == "__main__":
    sys.exit(main())
