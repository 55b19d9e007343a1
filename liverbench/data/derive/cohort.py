"""Derived patients: a real CECT and its liver mask as they are, and the rest simulated.

Per source case: the de-enhanced CECT (`appearance`) moved by the phantom's motion model
(`motion`), imaged by another scanner (`ncect`), its masks pulled through the same motion,
and a SPECT (`spect`): the file set the phantom writes (`layout.PHANTOM_FILES` and
`truth.json`). Every draw of a patient comes from generators seeded with (seed, a CRC-32 of
its id, stream) only, so one patient derived alone is byte-identical to the same patient
derived within its cohort, whatever else the source holds.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from liverbench.data.adapters import as_hu
from liverbench.data.derive.appearance import NonContrast, de_enhance, parenchyma_hu
from liverbench.data.derive.motion import derive_motion
from liverbench.data.derive.ncect import ncect_geometry, pull_mask, render_ncect
from liverbench.data.derive.sources import read_case, source_cases
from liverbench.data.derive.spect import render_spect
from liverbench.data.derive.tissues import find_tissues
from liverbench.data.io import ImageError, geometry_summary, same_geometry, write_image, write_json
from liverbench.data.phantom.cohort import TRUTH_RECORD, SimulatedCase, write_manifest
from liverbench.data.phantom.motion import liver_shift, sample_frame, true_field
from liverbench.errors import InputError
from liverbench.layout import PHANTOM_FILES, TRUTH_FILE, image_file

MANIFEST = "manifest.csv"
_KIND_CODE = 2  # the phantom's kinds are 0 (h108) and 1 (msd)
# append only: a stream's seed is its position
_STREAMS = ("appearance", "frame", "motion", "ncect", "spect")


def _rngs(seed: int, case_id: str) -> dict[str, np.random.Generator]:
    key = zlib.crc32(case_id.encode("utf-8"))
    return {
        name: np.random.default_rng([seed, _KIND_CODE, key, k])
        for k, name in enumerate(_STREAMS)
    }


def derive_patient(
    case_id: str,
    cect: sitk.Image,
    liver: sitk.Image,
    seed: int,
    tumour: sitk.Image | None = None,
) -> SimulatedCase:
    """One H108-like patient from a CECT, its liver mask (> 0) and optional tumour mask.

    `images` holds every `layout.PHANTOM_FILES` image; `labels` is empty (a real CT has no
    organ label map); `truth` the drawn parameters (motion, HU, scanner, SPECT).
    """
    rngs = _rngs(seed, case_id)
    cect = as_hu(cect)
    liver = _binary(liver, cect, "liver")
    tumour = None if tumour is None else _binary(tumour, cect, "tumour")
    tissues = find_tissues(cect, liver, tumour)
    look = NonContrast.sample(rngs["appearance"], parenchyma_hu(tissues))
    non_contrast, vessels = de_enhance(tissues, look)
    motion = derive_motion(rngs["motion"], sample_frame(rngs["frame"]), tissues)
    geometry, scan = ncect_geometry(rngs["ncect"], tissues, motion)
    ncect, noise = render_ncect(rngs["ncect"], non_contrast, tissues, geometry, motion)
    del non_contrast
    ncect_liver = pull_mask(tissues.liver, tissues, geometry, motion)
    ncect_lungs = pull_mask(tissues.lungs, tissues, geometry, motion)
    spect, uptake = render_spect(rngs["spect"], tissues, vessels, ncect_lungs, geometry, motion)
    images = {
        "cect": cect,
        "cect_liver": liver,
        "ncect": ncect,
        "ncect_liver": ncect_liver,
        "spect": spect,
        "ncect_lungs": ncect_lungs,
        TRUTH_FILE: true_field(motion, geometry),
    }
    truth = {**motion.record(), **uptake, **look.record(), **scan, "ncect_noise_sd_hu": noise}
    truth["liver_shift_mm"] = liver_shift(truth, liver, ncect_liver).tolist()
    return SimulatedCase(images, {}, truth)


def _binary(mask: sitk.Image, cect: sitk.Image, what: str) -> sitk.Image:
    if not same_geometry(mask, cect):
        raise ImageError(f"{what} mask geometry ({geometry_summary(mask)}) differs from the "
                         f"CECT's ({geometry_summary(cect)})")
    binary = sitk.Cast(mask > 0, sitk.sitkUInt8)
    binary.CopyInformation(mask)
    return binary


def write_patient(source: str | os.PathLike, case_id: str, out: str | os.PathLike,
                  seed: int) -> Path:
    """Derive source case `case_id` and write `out/<case_id>/`: PHANTOM_FILES as NIfTI and
    TRUTH_RECORD (the drawn parameters, the seed and the source files)."""
    case = read_case(source, case_id)
    derived = derive_patient(case_id, case.cect, case.liver, seed, case.tumour)
    folder = Path(out) / case_id
    for name in PHANTOM_FILES:
        write_image(derived.images[name], image_file(str(folder), name))
    write_json({**derived.truth, "seed": seed, "source": case.paths}, folder / TRUTH_RECORD)
    return folder


def derive_cohort(
    source: str | os.PathLike,
    out: str | os.PathLike,
    seed: int,
    patients: int | None = None,
    only: Sequence[str] | None = None,
) -> list[Path]:
    """Derive the first `patients` cases of `source` (all by default) into `out`, and write
    `out/manifest.csv`; with `only`, just those cases (among the first `patients`) and no
    manifest (one workflow job per patient)."""
    ids = source_cases(source, patients)
    chosen = ids
    if only:
        unknown = [case for case in only if case not in ids]
        if unknown:
            raise InputError(f"--only: {unknown} not among the {len(ids)} cases of {source}")
        chosen = list(dict.fromkeys(only))
    folders = [write_patient(source, case, out, seed) for case in chosen]
    if not only:
        write_manifest(Path(out), ids, Path(out) / MANIFEST)
    return folders
