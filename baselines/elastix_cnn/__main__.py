"""Command line: `python -m baselines.elastix_cnn register ...` (phases 2-4 of Elastix + CNN).

    python -m baselines.elastix_cnn register --settings '{...}' --threads 2 \
        --pairs P003__P003 ... \
        --cect EXP/data/h108/P003/cect.nii.gz ... --ncect EXP/data/h108/P003/ncect.nii.gz ... \
        --cect-liver EXP/elastix_cnn/cect_liver/P003__P003.nii.gz ... \
        --ncect-liver EXP/predictions/nnunet_ncect/P003__P003.nii.gz ... \
        --cect-runtimes EXP/elastix_cnn/cect_liver_runtime/P003__P003.json ... \
        --ncect-runtimes EXP/runtime/nnunet_ncect/P003__P003.json ... \
        --prealign EXP/pairs/P003__P003/prealign.tfm ... \
        --pair-timings EXP/pairs/P003__P003/timing.json ... \
        --predictions EXP/predictions/elastix_cnn/P003__P003.nii.gz ... \
        --mappings EXP/mappings/elastix_cnn/P003__P003.h5 ... \
        --runtimes EXP/runtime/elastix_cnn/P003__P003.json ... \
        --transforms-dir EXP/elastix_cnn/transforms

Every per-pair list is aligned with `--pairs`. Phase 1 (nnU-Net liver masks of each pair's
original CECT and nCECT) comes from `python -m baselines.nnunet predict`; its runtime records'
stages are added to this method's when given (both lists, or neither), as are the pair step's
reading and pre-alignment (`--pair-timings`). Per pair: the dilated
nCECT mask restricts the fixed image, the CECT liver the moving one; elastix registers CECT
to nCECT (rigid, then B-spline), starting from the pair's pre-alignment when given;
transformix carries the CECT liver to the nCECT grid, and writes the final mapping
(pre-alignment, rigid, B-spline) as a displacement field. The input parameter maps, elastix's
result transform and its log are kept in `{transforms-dir}/{pair}/`. With
`parameter_files` in the settings, elastix runs the user's own parameter files instead of the
schedule (docs/elastix_cnn.md, "Your own elastix parameter maps"). All pairs run in one
process: loading elastix costs seconds once, and every pair is timed on its own. Bad input
exits with status 2 and one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from baselines.elastix_cnn.settings import Settings
from liverbench.cli import aligned, run_cli

PROG = "python -m baselines.elastix_cnn"
PER_PAIR = {  # option -> (PairFiles field, help)
    "cect": ("cect", "the moving patient's original CECT"),
    "ncect": ("ncect", "the fixed patient's original nCECT"),
    "cect_liver": ("cect_liver", "nnU-Net's CECT liver mask (moving mask, and what is "
                   "propagated)"),
    "ncect_liver": ("ncect_liver", "the coarse nCECT liver mask (fixed mask, dilated)"),
    "prealign": ("prealign", "the pair's pre-alignment, an ITK transform file nCECT world -> "
                 "CECT world: elastix's initial transform (optional: without it, elastix's "
                 "centre-of-gravity initialisation, as published)"),
    "predictions": ("prediction", "the registered liver mask to write (nCECT geometry)"),
    "mappings": ("mapping", "the final mapping to write (.h5 ITK transform, nCECT world -> "
                 "CECT world)"),
    "runtimes": ("runtime", "the runtime record to write (JSON)"),
    "cect_runtimes": ("cect_runtime", "runtime record of the CECT segmentation (phase 1; "
                      "optional)"),
    "ncect_runtimes": ("ncect_runtime", "runtime record of the nCECT segmentation (phase 1; "
                       "optional)"),
    "pair_timings": ("pair_timing", "the pair step's stages (timing.json): its reading and "
                     "pre-alignment count in the case's time (optional; with --prealign)"),
}
OPTIONAL = ("prealign", "cect_runtimes", "ncect_runtimes", "pair_timings")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    register = commands.add_parser("register", help="register and propagate, per pair")
    register.add_argument("--settings", help="the elastix_cnn config section (JSON, or a "
                          "JSON/YAML file)")
    register.add_argument("--threads", type=int, help="elastix threads (default: settings)")
    register.add_argument("--pairs", nargs="+", required=True, help="pair ids MOVING__FIXED")
    for name, (_, text) in PER_PAIR.items():
        register.add_argument(f"--{name.replace('_', '-')}", nargs="+", type=Path,
                              required=name not in OPTIONAL, help=f"per pair: {text}")
    register.add_argument("--transforms-dir", type=Path, required=True,
                          help="parameter maps, result transform and elastix log per pair")
    register.set_defaults(func=_register)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, build_parser(), argv)


def _register(args: argparse.Namespace) -> None:
    settings = Settings.from_text(args.settings, section="elastix_cnn")
    names = [name for name in PER_PAIR if getattr(args, name) is not None]
    if (args.cect_runtimes is None) != (args.ncect_runtimes is None):
        raise ValueError("--cect-runtimes, --ncect-runtimes: give both phase-1 lists, or neither")
    from baselines.elastix_cnn.predict import PairFiles, register_pairs

    fields = ["pair", *(PER_PAIR[name][0] for name in names)]
    jobs = [PairFiles(**dict(zip(fields, row))) for row in aligned(args, "pairs", *names)]
    register_pairs(jobs, settings, args.threads or settings.threads, args.transforms_dir)


if __name__ == "__main__":
    sys.exit(main())
