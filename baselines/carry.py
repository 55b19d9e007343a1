"""Carrying a CECT liver mask onto the original nCECT through a transform, in one resampling
(linear, then >= 0.5), timed.

- `carry_liver`: what the two lower bounds share; identity gives the identity (scanner
  geometry), rigid the pair's pre-alignment, and the transform is written as their mapping.
- `python -m baselines.carry`: the mask source as a design factor (docs/evaluation.md). A
  registration method computes its final mapping once; this command carries ANOTHER CECT
  liver through that same mapping (e.g. the nnU-Net CECT segmentation where the method
  carried the annotation, or the annotation where Elastix + CNN carried nnU-Net's), so a
  reader sees how much of a method's error is the CECT segmentation's:

    python -m baselines.carry --method regsegnet_cnnmask --pairs P1__P1 ... \\
        --cect-liver F... --ncect F... --mappings F... --source-runtimes F... \\
        [--extra-runtimes F...] --predictions F... --runtimes F...

  The runtime is the source method's stages plus, with `--extra-runtimes`, those of the
  segmentation that made the carried mask (nnU-Net on the CECT), plus the carry itself; a
  pair the source method failed on fails here too, with its reason.
"""

from __future__ import annotations

import argparse
import sys

import SimpleITK as sitk

from liverbench.cli import aligned, command
from liverbench.data.io import read_image, read_mask, read_transform, write_image, write_transform
from liverbench.data.preprocess import resample_mask
from liverbench.runtime import (
    FAILED,
    PAIR_STAGE,
    RuntimeRecord,
    Stages,
    inherit_pair_step,
    inherit_record,
    read_record,
    record_failure,
)

PROG = "python -m baselines.carry"
MASK_STAGE = "cect_mask."  # the carried CECT segmentation's stages


def carry_liver(
    method: str, pair: str, cect_path: str, liver_path: str, ncect_path: str,
    transform_path: str | None, prediction: str, runtime: str, mapping: str,
    pair_timing: str | None = None,
) -> None:
    """The pair's mask, runtime record and mapping; `transform_path` None is the identity.
    With the pair step's timing (`pair_timing`), its stages count too, and the pre-alignment
    is the row's core (it is rigid's registration); identity has no core work."""
    stages = Stages()
    if pair_timing is not None:
        inherit_pair_step(stages, pair_timing, used=("read", "prealign"))
    with stages("read"):
        ncect = read_image(ncect_path)
        cect = read_image(cect_path)
        liver = read_mask(liver_path, cect, cect_path)
        transform = (read_transform(transform_path) if transform_path is not None
                     else sitk.Transform(3, sitk.sitkIdentity))
    with stages("map_back"):
        mask = resample_mask(liver, ncect, transform)
    with stages("write"):
        write_image(mask, prediction)
    write_transform(transform, mapping)  # an evaluation output, not the method's work
    core = [f"{PAIR_STAGE}prealign"] if pair_timing is not None else []
    RuntimeRecord.from_stages(method, pair, stages, core, threads=1).write(runtime)


def carry_through_mapping(
    method: str, pair: str, liver_path: str, ncect_path: str, mapping_path: str,
    source_runtime: str, extra_runtime: str | None, prediction: str, runtime: str,
) -> None:
    """`liver_path` (a CECT liver in CECT geometry) carried through the source method's final
    mapping onto the original nCECT; the runtime record is the source method's stages, the
    carried mask's own segmentation (`extra_runtime`, prefixed `cect_mask.`) and the carry."""
    source = read_record(source_runtime)
    ncect = read_image(ncect_path)
    if source["status"] == FAILED:
        record_failure(method, pair, f"the registration failed: {source.get('reason', '')}",
                       ncect, prediction, runtime)
        return
    stages = Stages()
    core = inherit_record(stages, source)
    if extra_runtime:
        core += inherit_record(stages, read_record(extra_runtime), prefix=MASK_STAGE)
    with stages("carry"):
        mask = resample_mask(read_mask(liver_path), ncect, read_transform(mapping_path))
        write_image(mask, prediction)
    RuntimeRecord.from_stages(method, pair, stages, core, device=source.get("device", "cpu"),
                              threads=source.get("threads", 1),
                              extra={"mapping_of": source.get("method")}).write(runtime)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", required=True, help="the row's method id")
    for name in ("pairs", "cect_liver", "ncect", "mappings", "source_runtimes", "predictions",
                 "runtimes"):
        parser.add_argument(f"--{name.replace('_', '-')}", nargs="+", required=True)
    parser.add_argument("--extra-runtimes", nargs="+", default=None,
                        help="runtime records of the carried mask's segmentation, per pair")

    def run(args: argparse.Namespace) -> None:
        if args.extra_runtimes is None:  # no segmentation to add: None for every pair
            args.extra_runtimes = [None] * len(args.pairs)
        rows = aligned(args, "pairs", "cect_liver", "ncect", "mappings", "source_runtimes",
                       "extra_runtimes", "predictions", "runtimes")
        for row in rows:
            carry_through_mapping(args.method, *row)
        print(f"{args.method}: {len(rows)} pair(s) carried", flush=True)

    parser.set_defaults(func=run)


main = command(PROG, __doc__, configure)


if __name__ == "__main__":
    sys.exit(main())
