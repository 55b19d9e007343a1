"""Data-stage CLI: one subcommand per DAG step, each usable without Snakemake.

    python -m liverbench.data standardize-h108 --patient P --sources cect=F cect_liver=F \\
        ncect=F ncect_liver=F [spect=F ncect_lungs=F] --out DIR
        (a mask F may be RTSTRUCT_OR_SEG::LABEL, e.g. cect_liver=rt.dcm::Liver)
    python -m liverbench.data standardize-msd --root Task03_Liver --case liver_0 --out DIR
    python -m liverbench.data preprocess --case DIR --out DIR --settings '{"shape": ...}'
    python -m liverbench.data pair --moving F --moving-liver F --fixed F --fixed-liver F \\
        --out DIR --settings '{"shape": ...}' --prealign-settings '{"mode": "rigid"}' \\
        --prealign-out DIR/prealign.tfm --timing-out DIR/timing.json
    python -m liverbench.data splits --patients P1 P2 ... --fractions 35 5 20 --seed S ...

`--settings` is the config's `preprocess` section, `--prealign-settings` its `prealign` section
(docs/registration.md), each as JSON or a JSON/YAML file. A manifest
(H108-style CSV) is read once by the workflow, which hands each patient's files to
standardize-h108; `splits` is the same computation the workflow records in splits.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liverbench.cli import run_cli
from liverbench.data import adapters
from liverbench.data.io import read_image, read_mask, write_image, write_json, write_transform
from liverbench.data.prealign import Settings as PrealignSettings
from liverbench.data.prealign import prealign
from liverbench.data.preprocess import (
    WorkingGrid,
    preprocess_image,
    resample_mask,
    working_reference,
)
from liverbench.data.splits import SPLITS, plan_splits
from liverbench.errors import InputError
from liverbench.layout import CASE_FILES, image_file
from liverbench.runtime import Stages, write_stages
from liverbench.settings import read_settings

PROG = "python -m liverbench.data"


def preprocess_case(case_dir: Path, out_dir: Path, grid: WorkingGrid) -> None:
    """Each CT (and its liver mask) onto its own working grid, centred on its body."""
    for phase in ("cect", "ncect"):
        image_path = Path(image_file(str(case_dir), phase))
        if not image_path.exists() and phase == "ncect":
            continue  # MSD cases have a CECT only
        image = read_image(image_path)
        reference = working_reference(image, grid)  # before the mask is read: its peak memory
        write_image(preprocess_image(image, grid, reference), image_file(str(out_dir), phase))
        mask = read_mask(image_file(str(case_dir), f"{phase}_liver"), image, image_path)
        write_image(resample_mask(mask, reference), image_file(str(out_dir), f"{phase}_liver"))
        del image, mask  # the next phase's images are read into their place


def make_pair(
    moving: Path, moving_liver: Path, fixed: Path, fixed_liver: Path, out_dir: Path,
    grid: WorkingGrid, settings: PrealignSettings, prealign_out: Path,
) -> Stages:
    """Pre-align the moving CECT to the fixed nCECT (original images), write the transform,
    and put both on the fixed nCECT's working grid, the CECT resampled THROUGH the
    pre-alignment. Returns the timed stages a method using the pair inherits (`read`,
    `prealign`, `working_grid`); the nCECT liver on the working grid is ground truth for
    training and evaluation, no method's input, and is not timed."""
    stages = Stages()
    with stages("read"):
        fixed_image = read_image(fixed)
    with stages("working_grid"):  # before the CECT is read: the body search's peak memory
        reference = working_reference(fixed_image, grid)
    with stages("read"):
        moving_image = read_image(moving)
        moving_mask = read_mask(moving_liver, moving_image, moving)
    with stages("prealign"):
        transform = prealign(fixed_image, moving_image, settings)
        write_transform(transform, prealign_out)
    out = str(out_dir)
    with stages("working_grid"):
        write_image(preprocess_image(moving_image, grid, reference, transform),
                    image_file(out, "moving"))
        write_image(resample_mask(moving_mask, reference, transform),
                    image_file(out, "moving_liver"))
        write_image(preprocess_image(fixed_image, grid, reference), image_file(out, "fixed"))
    del moving_image, moving_mask
    fixed_mask = read_mask(fixed_liver, fixed_image, fixed)
    write_image(resample_mask(fixed_mask, reference), image_file(out, "fixed_liver"))
    return stages


def _grid(args: argparse.Namespace) -> WorkingGrid:
    return WorkingGrid.from_config(read_settings(args.settings, "preprocess"))


def _standardize_h108(args: argparse.Namespace) -> None:
    paths, labels = {}, {}
    for item in args.sources:
        name, sep, text = item.partition("=")
        if not sep or name not in adapters.IMAGE_COLUMNS:
            raise InputError(f"--sources: {item!r} is not NAME=PATH with NAME one of "
                             f"{list(adapters.IMAGE_COLUMNS)}")
        try:
            path, label = adapters.column_source(name, text)
        except InputError as error:
            raise InputError(f"--sources: {name}: {error}") from None
        paths[name] = Path(path)
        if label is not None:
            labels[name] = label
    missing = [c for c in CASE_FILES if c not in paths]
    if missing:
        raise InputError(f"--sources: patient {args.patient!r} lacks {missing}")
    adapters.standardize_h108(adapters.ManifestRow(args.patient, paths, labels=labels),
                              args.out)


def _standardize_msd(args: argparse.Namespace) -> None:
    adapters.standardize_msd(args.root, args.case, args.out)


def _preprocess(args: argparse.Namespace) -> None:
    preprocess_case(args.case, args.out, _grid(args))


def _pair(args: argparse.Namespace) -> None:
    settings = PrealignSettings.from_text(args.prealign_settings, section="prealign")
    stages = make_pair(args.moving, args.moving_liver, args.fixed, args.fixed_liver, args.out,
                       _grid(args), settings, args.prealign_out)
    write_stages(stages, args.timing_out)
    print(f"pre-alignment ({settings.mode}): {stages.seconds['prealign']:.2f} s; "
          f"pair step {stages.total():.2f} s")


def _splits(args: argparse.Namespace) -> None:
    fixed = {}
    if args.manifest:
        rows = adapters.read_manifest(args.manifest, check_files=())
        fixed = {row.patient_id: row.split for row in rows if row.split}
    write_json(plan_splits(args.patients, args.fractions, args.seed, args.inter_per_patient,
                           fixed), args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("standardize-h108", help="check and standardize one patient's files")
    p.add_argument("--patient", required=True)
    p.add_argument("--sources", nargs="+", required=True, metavar="NAME=PATH",
                   help="the patient's manifest columns: cect, cect_liver, ncect, ncect_liver "
                        "[, spect, ncect_lungs]; a mask may be an RTSTRUCT ROI or DICOM-SEG "
                        "segment, PATH::LABEL")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_standardize_h108)

    p = sub.add_parser("standardize-msd", help="standardize one MSD Task03_Liver case")
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--case", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_standardize_msd)

    p = sub.add_parser("preprocess", help="a standardized case onto working grids")
    p.add_argument("--case", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--settings", required=True, help="the config's preprocess section (JSON)")
    p.set_defaults(func=_preprocess)

    p = sub.add_parser("pair", help="pre-align moving CECT to fixed nCECT, both on the fixed "
                                    "working grid")
    for name in ("moving", "moving-liver", "fixed", "fixed-liver"):
        p.add_argument(f"--{name}", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--settings", required=True, help="the config's preprocess section (JSON)")
    p.add_argument("--prealign-settings", required=True,
                   help="the config's prealign section (JSON)")
    p.add_argument("--prealign-out", type=Path, required=True,
                   help="the pre-alignment transform file (.tfm), nCECT -> CECT world")
    p.add_argument("--timing-out", type=Path, required=True,
                   help="the pair step's stages (JSON), which the methods using it inherit")
    p.set_defaults(func=_pair)

    p = sub.add_parser("splits", help=f"patient-level splits {SPLITS} and pair lists -> JSON")
    p.add_argument("--patients", nargs="+", required=True)
    p.add_argument("--fractions", nargs=3, type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--inter-per-patient", type=int, required=True)
    p.add_argument("--manifest", type=Path, help="take fixed splits from its `split` column")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_splits)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
