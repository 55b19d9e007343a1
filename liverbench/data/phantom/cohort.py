"""Synthetic patients and cohorts, written in the layouts real data come in.

H108-like SPECT-CT patients (`DIR/P001/cect.nii.gz ...`, with the true motion
`true_motion.nii.gz` and the drawn parameters `truth.json`) and an MSD Task03_Liver-like CECT
cohort (`DIR/dataset.json`, `imagesTr/`, `labelsTr/`). Every random draw of a patient comes
from generators seeded with (seed, kind, index, stream) only, so one patient generated alone
is byte-identical to the same patient generated within its cohort, and a change in how, say,
the SPECT is drawn leaves the anatomy of every patient as it was.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from liverbench.data.io import atomic_path, write_image, write_json
from liverbench.data.phantom import acquisition as acq
from liverbench.data.phantom import appearance
from liverbench.data.phantom.anatomy import (
    LIVER_LABELS,
    TUMOUR_LABELS,
    Anatomy,
    Label,
    rasterise,
    sample_anatomy,
)
from liverbench.data.phantom.motion import liver_shift, sample_frame, sample_motion, true_field
from liverbench.data.phantom.shapes import Grid, sample_linear, smooth_noise
from liverbench.layout import TRUTH_FILE, image_file

H108_FILES = ("cect", "cect_liver", "ncect", "ncect_liver", "spect", "ncect_lungs")
PATIENT_FILES = H108_FILES + (TRUTH_FILE,)  # the images of a patient folder (and manifest)
TRUTH_RECORD = "truth.json"  # the drawn motion and SPECT parameters of a patient
NCECT_ABOVE_LIVER_MM = 5.0  # the nCECT is centred this far above the liver: lung bases
LUNG_SHUNT_FRACTION = (0.02, 0.10)  # drawn uniformly per patient
SPECT_COUNTS = (1.0e6, 3.0e6)  # total SPECT counts, drawn uniformly
KINDS = ("h108", "msd")
_KIND_CODE = {"h108": 0, "msd": 1}
# append only: a stream's seed is its position
_STREAMS = ("anatomy", "texture", "placement", "cect", "motion", "ncect", "spect")
_STREAMS += ("frame", "ncect_texture")


def patient_id(index: int) -> str:
    """H108 ids are 1-based and zero-padded: index 0 is P001."""
    return f"P{index + 1:03d}"


def patient_ids(n: int) -> list[str]:
    return [patient_id(i) for i in range(n)]


def msd_case_id(index: int) -> str:
    return f"liver_{index}"


def case_ids(n: int, kind: str = "h108") -> list[str]:
    return patient_ids(n) if kind == "h108" else [msd_case_id(i) for i in range(n)]


def index_of(case: str, kind: str = "h108") -> int:
    """Inverse of `patient_id` / `msd_case_id`; a ValueError names a malformed id."""
    pattern = r"P(\d{3,})" if kind == "h108" else r"liver_(\d+)"
    match = re.fullmatch(pattern, case)
    if not match or (kind == "h108" and int(match.group(1)) < 1):
        example = "P001" if kind == "h108" else "liver_0"
        raise ValueError(f"{case!r} is not a {kind} case id (like {example})")
    return int(match.group(1)) - (1 if kind == "h108" else 0)


def _rngs(seed: int, kind: str, index: int) -> dict[str, np.random.Generator]:
    return {
        name: np.random.default_rng([seed, _KIND_CODE[kind], index, k])
        for k, name in enumerate(_STREAMS)
    }


@dataclass
class SimulatedCase:
    """A generated case in memory: the images to write, label maps and ground truth."""

    images: dict[str, sitk.Image]
    labels: dict[str, sitk.Image]  # `Label` maps on the grid of each CT
    truth: dict[str, float | list[float]] = field(default_factory=dict)


def _anatomy_volume(rngs, size: acq.Size) -> tuple[Anatomy, sitk.Image, Grid, np.ndarray]:
    """Anatomy, its label image (CECT world), its grid (body coordinates) and the
    body->world offset."""
    anatomy = sample_anatomy(rngs["anatomy"])
    labels, grid = rasterise(anatomy, size.anatomy_mm)
    place = rngs["placement"]
    offset = np.array([place.uniform(-10, 10), place.uniform(-40, 10), place.uniform(-400, 0)])
    offset = np.round(offset, 1)
    return anatomy, acq.anatomy_image(labels, grid, offset), grid, offset


def _texture(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """Tissue texture (smooth noise, unit SD) on the anatomy grid. Each scan draws its own:
    a shared one would give intensity-based registration a pattern no real pair has."""
    coarse = Grid(
        grid.origin,
        (3.0,) * 3,
        tuple(int(np.ceil(n * grid.spacing[0] / 3)) + 1 for n in grid.shape),
    )
    texture = sample_linear(smooth_noise(rng, coarse, 2.5), coarse, grid.full())
    return texture.astype(np.float32)


def _size(size: str) -> acq.Size:
    if size not in acq.SIZES:
        raise ValueError(f"size must be one of {sorted(acq.SIZES)}, got {size!r}")
    return acq.SIZES[size]


def _scan_centre(rng: np.random.Generator, world_centre: np.ndarray, jitter: float) -> np.ndarray:
    return world_centre + rng.uniform(-jitter, jitter, 3)


def simulate_patient(
    index: int, seed: int, size: str = "demo", breathing_mm: float | None = None
) -> SimulatedCase:
    """One H108-like patient: the CECT; the nCECT and SPECT in another scanner's frame, after
    repositioning and breathing; masks, label maps, the true motion and its parameters.

    `breathing_mm` replaces the drawn breathing shift (cranial > 0), all else unchanged.
    """
    sizes = _size(size)
    rngs = _rngs(seed, "h108", index)
    anatomy, labels, grid, offset = _anatomy_volume(rngs, sizes)
    centre = offset + np.array([0.0, 0.0, anatomy.liver_centre_z])  # body axis, liver height

    rng = rngs["cect"]
    cect_geometry = acq.scan_geometry(rng, sizes.cect, _scan_centre(rng, centre, 8.0))
    cect_look = appearance.portal_venous(rng, anatomy)
    texture = _texture(rngs["texture"], grid)
    cect = acq.render_ct(rng, labels, texture, cect_look, sizes.cect, cect_geometry)
    cect_labels = acq.resample_labels(labels, cect_geometry)

    frame = sample_frame(rngs["frame"])
    motion = sample_motion(rngs["motion"], anatomy, offset, grid, frame, breathing_mm)
    rng = rngs["ncect"]
    above = centre + [0.0, 0.0, motion.breathing_mm + NCECT_ABOVE_LIVER_MM]
    ncect_geometry = acq.scan_geometry(
        rng, sizes.ncect, _scan_centre(rng, motion.ncect_point(above), 6.0)
    )
    ncect_look = appearance.unenhanced(rng, anatomy)
    texture = _texture(rngs["ncect_texture"], grid)
    ncect = acq.render_ct(
        rng, labels, texture, ncect_look, sizes.ncect, ncect_geometry, motion.transform
    )
    ncect_labels = acq.resample_labels(labels, ncect_geometry, motion.transform)

    spect, lsf, counts = _spect(
        rngs["spect"], anatomy, labels, grid, ncect_labels, ncect_geometry, motion
    )
    images = {
        "cect": cect,
        "cect_liver": _mask(cect_labels, LIVER_LABELS),
        "ncect": ncect,
        "ncect_liver": _mask(ncect_labels, LIVER_LABELS),
        "spect": spect,
        "ncect_lungs": _mask(ncect_labels, (Label.LUNG,)),
        TRUTH_FILE: true_field(motion, ncect_geometry),
    }
    truth = {"lung_shunt_fraction": lsf, "spect_total_counts": counts, **motion.record()}
    shift = liver_shift(truth, images["cect_liver"], images["ncect_liver"])
    truth |= {"liver_shift_mm": shift.tolist(), "tumours": len(anatomy.tumours)}
    return SimulatedCase(images, {"cect": cect_labels, "ncect": ncect_labels}, truth)


def _spect(rng, anatomy, labels, grid, ncect_labels, ncect_geometry, motion):
    """99mTc-MAA SPECT in the nCECT frame, with a drawn lung shunt fraction.

    Half the patients get a lobar injection: one side of the liver parenchyma is perfused,
    the other takes 15-40 % of its uptake (tumours, fed by the arteries, keep theirs). The
    lung concentration is set so that lung activity / (lung + liver activity) equals the
    drawn LSF, over the lung volume the nCECT sees (its lung mask is what an LSF measurement
    integrates over).
    """
    uptake = appearance.maa_uptake(rng, anatomy)
    label_array = sitk.GetArrayViewFromImage(labels)
    activity = uptake[label_array]
    liver = np.isin(label_array, LIVER_LABELS)
    if rng.random() < 0.5:
        parenchyma = np.isin(label_array, (Label.LIVER, Label.PORTAL_BRANCH, Label.HEPATIC_VEIN))
        activity *= _lobar_perfusion(rng, anatomy, grid, parenchyma)
    voxel_ml = float(np.prod(labels.GetSpacing())) / 1000.0
    liver_activity = float(activity[liver].sum(dtype=np.float64)) * voxel_ml
    lung_voxels = float((sitk.GetArrayViewFromImage(ncect_labels) == Label.LUNG).sum())
    lung_ml = lung_voxels * float(np.prod(ncect_labels.GetSpacing())) / 1000.0
    lsf = float(rng.uniform(*LUNG_SHUNT_FRACTION))
    activity[label_array == Label.LUNG] = lung_concentration(lsf, liver_activity, lung_ml)
    geometry = acq.spect_geometry(*ncect_geometry)
    total = float(rng.uniform(*SPECT_COUNTS))
    spect = acq.render_spect(rng, activity, labels, geometry, motion.transform, total)
    return spect, lsf, total


def lung_concentration(lsf: float, liver_activity: float, lung_ml: float) -> float:
    """The lung activity concentration that makes lung / (lung + liver) activity equal the
    lung shunt fraction `lsf`, spread over `lung_ml` (liver_activity: concentration x ml)."""
    return lsf / (1 - lsf) * liver_activity / max(lung_ml, 1.0)


def _lobar_perfusion(rng, anatomy: Anatomy, grid: Grid, where: np.ndarray) -> np.ndarray:
    """Relative perfusion: 1 on one side of a plane through the liver (the treated lobe),
    15-40 % on the other, with a soft edge of a few mm; 1 outside `where`."""
    normal = np.array([1.0, rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3)])
    normal *= rng.choice([-1.0, 1.0]) / np.linalg.norm(normal)
    centre = [anatomy.liver.centre[0] + 15.0, anatomy.liver.centre[1], anatomy.liver_centre_z]
    full = grid.full()
    side = sum(n * (c - c0) for n, c, c0 in zip(normal, (full.x, full.y, full.z), centre))
    low = rng.uniform(0.15, 0.4)
    weight = low + (1 - low) / (1 + np.exp(-side / 4.0))
    return np.where(where, weight, 1.0).astype(np.float32)


def _mask(labels: sitk.Image, values) -> sitk.Image:
    array = np.isin(sitk.GetArrayViewFromImage(labels), values).astype(np.uint8)
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(labels)
    return mask


def simulate_msd_case(index: int, seed: int, size: str = "demo") -> SimulatedCase:
    """One MSD-like case: portal-venous CECT from another scanner, liver + tumour labels."""
    sizes = _size(size)
    rngs = _rngs(seed, "msd", index)
    anatomy, labels, grid, offset = _anatomy_volume(rngs, sizes)
    rng = rngs["cect"]
    centre = offset + np.array([0.0, 0.0, anatomy.liver_centre_z])
    geometry = acq.scan_geometry(rng, sizes.msd, _scan_centre(rng, centre, 12.0))
    look = appearance.portal_venous(rng, anatomy)
    texture = _texture(rngs["texture"], grid)
    image = acq.render_ct(rng, labels, texture, look, sizes.msd, geometry)
    ct_labels = acq.resample_labels(labels, geometry)
    array = sitk.GetArrayViewFromImage(ct_labels)
    msd = np.isin(array, LIVER_LABELS).astype(np.uint8) + np.isin(array, TUMOUR_LABELS)
    label = sitk.GetImageFromArray(msd.astype(np.uint8))
    label.CopyInformation(image)
    return SimulatedCase(
        {"image": image, "label": label}, {"cect": ct_labels}, {"tumours": len(anatomy.tumours)}
    )


# ------------------------------------------------------------------------------ writing


def generate_h108_patient(index: int, seed: int, out_dir: Path, size: str = "demo") -> Path:
    """Write patient `index` (0-based; id `patient_id(index)`) to `out_dir/<id>/`:
    PATIENT_FILES as NIfTI and the truth record TRUTH_RECORD."""
    case = simulate_patient(index, seed, size)
    folder = Path(out_dir) / patient_id(index)
    for name in PATIENT_FILES:
        write_image(case.images[name], image_file(str(folder), name))
    write_json(case.truth, folder / TRUTH_RECORD)
    return folder


def generate_msd_case(index: int, seed: int, out_dir: Path, size: str = "demo") -> Path:
    """Write `imagesTr/liver_<index>.nii.gz` and `labelsTr/...` under `out_dir`."""
    case = simulate_msd_case(index, seed, size)
    name = f"{msd_case_id(index)}.nii.gz"
    write_image(case.images["image"], Path(out_dir) / "imagesTr" / name)
    write_image(case.images["label"], Path(out_dir) / "labelsTr" / name)
    return Path(out_dir) / "imagesTr" / name


def msd_dataset_json(n: int) -> dict:
    """dataset.json as published with MSD Task03_Liver (training part only)."""
    return {
        "name": "Liver",
        "description": "Synthetic liver and tumour CECT (regsegbench phantom), MSD layout",
        "reference": "regsegbench liverbench.data.phantom",
        "licence": "generated data, same licence as regsegbench",
        "release": "1.0",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "liver", "2": "cancer"},
        "numTraining": n,
        "numTest": 0,
        "training": [
            {"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"}
            for c in case_ids(n, "msd")
        ],
        "test": [],
    }


def write_msd_dataset_json(out_dir: Path, n: int) -> Path:
    path = Path(out_dir) / "dataset.json"
    write_json(msd_dataset_json(n), path)
    return path


def generate_cohort(out: Path, n: int, seed: int, kind: str = "h108", size: str = "demo") -> None:
    """All `n` cases of a cohort. For MSD, also its dataset.json."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    for index in range(n):
        if kind == "h108":
            generate_h108_patient(index, seed, out, size)
        else:
            generate_msd_case(index, seed, out, size)
    if kind == "msd":
        write_msd_dataset_json(out, n)


def write_manifest(out_dir: Path, ids: list[str], path: Path) -> Path:
    """A manifest CSV of H108-like patients in `out_dir`; paths relative to the CSV's folder.

    Relative paths keep a cohort and its manifest movable together.
    """
    path = Path(path)
    base = path.resolve().parent
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["patient_id", *PATIENT_FILES])
    for case in ids:
        folder = Path(out_dir).resolve() / case
        rows = [os.path.relpath(image_file(str(folder), name), base) for name in PATIENT_FILES]
        writer.writerow([case, *(Path(r).as_posix() for r in rows)])
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())
    return path
