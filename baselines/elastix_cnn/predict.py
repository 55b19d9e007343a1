"""Elastix + CNN's predict step for a list of pairs: images, phase-1 masks and the pair's
pre-alignment in; the registered liver mask (original nCECT geometry), the final mapping
(`baselines.elastix_cnn.mapping`) and a runtime record out.

The runtime record's stages are the whole case, whichever DAG step ran each part: the pair
step's reading and pre-alignment (`pair.*`), phase 1's two nnU-Net segmentations (their
records' stages, `nnunet_cect.*` and `nnunet_ncect.*`), then this call's reading, elastix's
registration, transformix and writing. `seconds_core` is elastix's registration plus the two
nnU-Net forward passes: the compute the method cannot do without. elastix's one-off loading
is measured apart (`extra.seconds_startup_shared`).

A pair elastix cannot register (no convergence, a warped liver of implausible size, an empty
phase-1 mask) is a recorded failure (`liverbench.runtime.record_failure`): an empty mask, a
runtime record with the reason, and the identity as its mapping file (not scored), so the
other pairs and the table go on. A user parameter file elastix refuses
(`elastix_cnn.parameter_files`) is a configuration error instead: it stops the job naming the
file and line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from baselines.elastix_cnn import mapping, registration
from baselines.elastix_cnn.parameter_files import UserMaps, load
from baselines.elastix_cnn.parameters import parameter_maps
from baselines.elastix_cnn.settings import Settings
from liverbench.data.io import read_image, read_mask, write_image, write_transform
from liverbench.errors import PairFailure
from liverbench.runtime import (
    RuntimeRecord,
    Stages,
    Stopwatch,
    inherit_pair_step,
    inherit_record,
    read_record,
    record_failure,
)

METHOD = "elastix_cnn"


@dataclass(frozen=True)
class PairFiles:
    """One pair's inputs (original images, phase-1 masks and runtime records) and outputs."""

    pair: str
    cect: Path
    ncect: Path
    cect_liver: Path  # nnU-Net's CECT liver: the moving mask, and what is propagated
    ncect_liver: Path  # the coarse nCECT liver: the fixed mask, dilated
    prediction: Path
    runtime: Path
    mapping: Path  # the final mapping (.h5): nCECT world point -> CECT world point
    prealign: Path | None = None  # the pair's pre-alignment (.tfm): elastix's initial transform
    cect_runtime: Path | None = None  # phase 1's runtime records, added to this method's time
    ncect_runtime: Path | None = None
    pair_timing: Path | None = None  # the pair step's stages (reading, pre-alignment)


def register_pairs(jobs: list[PairFiles], settings: Settings, threads: int,
                   transforms: Path) -> None:
    """Every pair in one process: elastix loads once (timed apart), each pair is timed."""
    registration.configure_threads(threads)
    with Stopwatch() as startup:
        _load_elastix()
    print(f"elastix loaded in {startup.seconds:.1f} s ({threads} threads)", flush=True)
    user = user_maps(settings, threads)
    for files in jobs:
        start = time.perf_counter()
        try:
            register_pair(files, settings, threads, transforms / files.pair, startup.seconds,
                          user)
        except PairFailure as error:  # elastix failed, or a phase-1 mask is empty
            record_failure(METHOD, files.pair, str(error), read_image(files.ncect),
                           files.prediction, files.runtime,
                           seconds_case=time.perf_counter() - start, threads=threads)
            write_transform(sitk.Transform(3, sitk.sitkIdentity), files.mapping)


def user_maps(settings: Settings, threads: int) -> UserMaps | None:
    """The user's parameter files read by elastix's reader, overrides applied, each file's
    digest and each override logged; None when the config's schedule is used."""
    if settings.parameter_files is None:
        return None
    user = load(settings.parameter_files, threads)
    for entry in user.digests:
        print(f"elastix parameter file {entry['file']} sha256 {entry['sha256']}", flush=True)
    for line in user.overridden:
        print(f"pipeline override: {line}", flush=True)
    return user


def register_pair(files: PairFiles, settings: Settings, threads: int, folder: Path,
                  startup_seconds: float = 0.0, user: UserMaps | None = None) -> None:
    """Phases 2-4 for one pair, then its final mapping; parameter maps, result transform and
    log go to `folder`. `user`: the user's parameter maps (`user_maps`), read once per job."""
    pair = files.pair
    if user is None:
        user = user_maps(settings, threads)
    stages, core = Stages(), ["registration"]
    if files.pair_timing is not None:  # the originals as read and the pre-alignment
        inherit_pair_step(stages, files.pair_timing, used=("read", "prealign"))
    for name, path in (("nnunet_cect", files.cect_runtime), ("nnunet_ncect", files.ncect_runtime)):
        if path is not None:
            core += inherit_record(stages, read_record(path), prefix=f"{name}.")
    with stages("read"):
        cect = read_image(files.cect)
        ncect = read_image(files.ncect)
        cect_liver = read_mask(files.cect_liver, cect, files.cect)
        ncect_coarse = read_mask(files.ncect_liver, ncect, files.ncect)
    with stages("masks"):
        initial, shift = None, None
        if files.prealign is not None:
            initial, shift = mapping.elastix_start(mapping.read_prealign(files.prealign), ncect,
                                                   ncect_coarse, cect_liver,
                                                   settings.centre_livers)
        fixed_mask = registration.dilate_mm(ncect_coarse, settings.fixed_mask_dilation_mm)
        moving_mask = registration.dilate_mm(cect_liver, settings.moving_mask_dilation_mm)
    maps = user.maps if user else parameter_maps(settings, ncect.GetSpacing(),
                                                 cect.GetSpacing(), prealigned=initial is not None)
    result = registration.register(ncect, cect, fixed_mask, moving_mask, maps,
                                   log_dir=folder, name=pair, initial=initial,
                                   parameter_files=user.files if user else ())
    stages.add("registration", result.seconds)
    with stages("transformix"):
        warped = registration.transform_mask(cect_liver, result.transform_maps, ncect)
    registration.check_warped(warped, cect_liver, settings.min_volume_ratio, pair)
    with stages("write"):
        write_image(warped, files.prediction)
    registration.write_parameter_maps(maps, folder, "parameters")
    registration.write_parameter_maps(result.transform_maps, folder, "TransformParameters")
    # An evaluation output, not part of the method: timed apart, outside the stages.
    with Stopwatch() as final_mapping:
        grid = mapping.Grid.of(ncect).coarse(settings.mapping_spacing_mm)
        field = registration.deformation_field(result.transform_maps, cect_liver, grid, pair)
        write_transform(mapping.field_transform(field, grid), files.mapping)
    voxels = int(sitk.GetArrayViewFromImage(warped).sum())
    print(f"{pair}: elastix {result.seconds:.1f} s, transformix "
          f"{stages.seconds['transformix']:.2f} s, mapping {final_mapping.seconds:.2f} s, "
          f"{voxels} liver voxels", flush=True)
    RuntimeRecord.from_stages(
        METHOD, pair, stages, core, device="cpu", threads=threads,
        extra={
            "seconds_startup_shared": round(startup_seconds, 3),
            "seconds_mapping": round(final_mapping.seconds, 3),
            "prealigned": files.prealign is not None,
            "liver_centroid_shift_mm": None if shift is None else [round(float(v), 2)
                                                                   for v in shift],
            "nnunet_included": files.cect_runtime is not None,
            "parameter_files": user.digests if user else None,
        },
    ).write(files.runtime)


def _load_elastix() -> None:
    """Load itk's elastix modules (lazy, several seconds) before any pair is timed."""
    import itk

    itk.ParameterObject.New()
    itk.ElastixRegistrationMethod  # noqa: B018 (attribute access triggers the lazy load)
    itk.TransformixFilter  # noqa: B018
