"""Elastix + CNN for a list of pairs: masks in, registered liver mask and runtime record out.

The runtime record splits the method's time the way the paper discusses it: nnU-Net (CECT and
nCECT segmentation, phase 1, from its own records) and elastix (registration + transformix).
`seconds_method` is their sum for the pair; `seconds_total` adds the per-pair IO of every
call. elastix's one-off loading is measured apart (`seconds_startup_shared`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from baselines.elastix_cnn import registration
from baselines.elastix_cnn.parameters import parameter_maps
from baselines.elastix_cnn.settings import Settings
from liverbench.data.io import read_image, read_mask, write_image
from liverbench.data.splits import parse_pair
from liverbench.runtime import RuntimeRecord, Stopwatch

METHOD = "elastix_cnn"


@dataclass(frozen=True)
class PairPaths:
    """Where a pair's inputs are and its outputs go (files named `{pair}.*`)."""

    cases: Path
    cect_liver: Path
    ncect_liver: Path
    cect_runtime: Path | None
    ncect_runtime: Path | None
    out: Path
    runtime: Path
    transforms: Path


def register_pairs(pairs: list[str], paths: PairPaths, settings: Settings, threads: int) -> None:
    registration.configure_threads(threads)
    with Stopwatch() as startup:
        _load_elastix()
    print(f"elastix loaded in {startup.seconds:.1f} s ({threads} threads)", flush=True)
    for pair in pairs:
        register_pair(pair, paths, settings, threads, startup.seconds)


def register_pair(pair: str, paths: PairPaths, settings: Settings, threads: int,
                  startup_seconds: float = 0.0) -> None:
    moving, fixed = parse_pair(pair)
    cect_path = paths.cases / moving / "cect.nii.gz"
    ncect_path = paths.cases / fixed / "ncect.nii.gz"
    with Stopwatch() as total:
        cect = read_image(cect_path)
        ncect = read_image(ncect_path)
        cect_liver = read_mask(paths.cect_liver / f"{pair}.nii.gz", cect, cect_path)
        ncect_coarse = read_mask(paths.ncect_liver / f"{pair}.nii.gz", ncect, ncect_path)
        fixed_mask = registration.dilate_mm(ncect_coarse, settings.fixed_mask_dilation_mm)
        moving_mask = registration.dilate_mm(cect_liver, settings.moving_mask_dilation_mm)
        maps = parameter_maps(settings, ncect.GetSpacing(), cect.GetSpacing())
        folder = paths.transforms / pair
        result = registration.register(ncect, cect, fixed_mask, moving_mask, maps,
                                       log_dir=folder, name=pair)
        with Stopwatch() as transformix:
            warped = registration.transform_mask(cect_liver, result.transform_maps, ncect)
        registration.check_warped(warped, cect_liver, settings.min_volume_ratio, pair)
        write_image(warped, paths.out / f"{pair}.nii.gz")
        registration.write_parameter_maps(maps, folder, "parameters")
        registration.write_parameter_maps(result.transform_maps, folder, "TransformParameters")

    nnunet_cect = _phase_one(paths.cect_runtime, pair)
    nnunet_ncect = _phase_one(paths.ncect_runtime, pair)
    known = nnunet_cect is not None and nnunet_ncect is not None
    seconds_nnunet = (nnunet_cect["seconds_method"] + nnunet_ncect["seconds_method"]
                      if known else None)
    seconds_elastix = result.seconds + transformix.seconds
    seconds_total = total.seconds + (nnunet_cect["seconds_total"] + nnunet_ncect["seconds_total"]
                                     if known else 0.0)
    voxels = int(sitk.GetArrayViewFromImage(warped).sum())
    print(f"{pair}: elastix {result.seconds:.1f} s, transformix {transformix.seconds:.2f} s, "
          f"{voxels} liver voxels", flush=True)
    RuntimeRecord(
        METHOD, pair, seconds_elastix + (seconds_nnunet or 0.0), seconds_total, device="cpu",
        threads=threads,
        extra={
            "seconds_nnunet": seconds_nnunet,
            "seconds_elastix": round(seconds_elastix, 3),
            "seconds_nnunet_cect": nnunet_cect["seconds_method"] if known else None,
            "seconds_nnunet_ncect": nnunet_ncect["seconds_method"] if known else None,
            "seconds_registration": round(result.seconds, 3),
            "seconds_transformix": round(transformix.seconds, 3),
            "seconds_pair_call": round(total.seconds, 3),
            "seconds_startup_shared": round(startup_seconds, 3),
            "nnunet_included": known,
        },
    ).write(paths.runtime / f"{pair}.json")


def _phase_one(folder: Path | None, pair: str) -> dict | None:
    if folder is None:
        return None
    path = folder / f"{pair}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: runtime record of the nnU-Net segmentation not found")
    return json.loads(path.read_text())


def _load_elastix() -> None:
    """Load itk's elastix modules (lazy, several seconds) before any pair is timed."""
    import itk

    itk.ParameterObject.New()
    itk.ElastixRegistrationMethod  # noqa: B018 (attribute access triggers the lazy load)
    itk.TransformixFilter  # noqa: B018
