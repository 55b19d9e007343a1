"""Prediction: register each test pair, carry the ORIGINAL CECT liver onto the ORIGINAL nCECT.

Per pair the network's composed field (on the working grid) and the pair's pre-alignment make
the final mapping (`regsegnet.mapping`: nCECT world point -> CECT world point); the original
CECT liver (the annotation, or a method's CECT segmentation) is resampled through it straight
onto the original nCECT grid, interpolated once (linear, then >= 0.5) — exactly as transformix
carries elastix's mask and as the `rigid` row carries its own. No working-grid mask is
thresholded on the way, so RegSegNet loses nothing to the coarse grid at the liver's edges.
It also writes, if asked, the warped CECT (working grid) and the mapping file.

One process serves all pairs of a method (torch's import and the model load are paid once).
Per pair the runtime record's `seconds_core` is the network alone (the cascades and the
warps, synchronised on a GPU); `seconds_case` adds the pair step's stages (reading the
originals, the pre-alignment, the working grid: `pair.*`, from `--pair-timings`) and this
call's own (read, map back to the original nCECT, write). The one-off process costs (model
load, one warm-up pass on zeros before any pair is timed) are in `extra`, never in a pair's
time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from liverbench.data.io import (
    ImageError,
    read_grid,
    read_mask,
    read_transform,
    write_image,
    write_transform,
)
from liverbench.data.preprocess import resample_mask
from liverbench.errors import InputError
from liverbench.runtime import RuntimeRecord, Stages, Stopwatch, inherit_pair_step
from liverbench.settings import SettingsError
from regsegnet import backends
from regsegnet.checkpoint import load_model
from regsegnet.data import Pair, PairFiles, make_batch, read_pair
from regsegnet.hardware import peak_device_memory_mb, select_device, synchronize
from regsegnet.mapping import final_mapping
from regsegnet.settings import ANNOTATION


@dataclass
class Registered:
    warped: np.ndarray  # warped CECT
    field: np.ndarray  # composed displacement of the cascades used: (3, Z, Y, X), voxels
    seconds_network: float


class Predictor:
    """A trained RegSegNet, ready to register pairs with its first `cascades` cascades."""

    def __init__(
        self, model_path: str | os.PathLike, device: str = "auto", cascades: int | None = None,
        inference: str = "eager",
    ) -> None:
        self.device = select_device(device)
        self.model, self.settings, self.meta = load_model(model_path, self.device)
        self.cascades = cascades if cascades is not None else self.model.num_cascades
        if not 1 <= self.cascades <= self.model.num_cascades:
            raise SettingsError(
                f"{model_path}: has {self.model.num_cascades} cascades; cannot use {self.cascades}"
            )
        self.shape = tuple(self.meta["shape"])
        self.inference = inference
        self.model = backends.prepare(self.model, inference, self.shape)
        self.warmup_seconds = self._warm_up()

    def _warm_up(self) -> float:
        """One forward pass on zeros of the working shape, before any pair is timed: the
        allocator, kernels and caches of the first call are a one-off per process, reported
        once (`warmup_seconds`), not inside the first pair's time."""
        zeros = backends.prepare_inputs(torch.zeros((1, 1, *self.shape), device=self.device),
                                        self.inference)
        with Stopwatch() as warmup, torch.no_grad():
            self.model(zeros, zeros, cascades=self.cascades, warp_last=False)
            synchronize(self.device)
        return warmup.seconds

    @torch.no_grad()
    def register(self, pair: Pair) -> Registered:
        """The composed field, timed (the network); the warped CECT, a picture for the
        report, is made after the clock stops."""
        batch = make_batch([pair]).to(self.device)
        moving, fixed = (backends.prepare_inputs(t, self.inference)
                         for t in (batch.moving, batch.fixed))
        synchronize(self.device)
        with Stopwatch() as network:
            field = self.model(moving, fixed, cascades=self.cascades, warp_last=False).field
            synchronize(self.device)
        warped = self.model.transform.image(batch.moving, field)
        return Registered(
            warped=warped[0, 0].cpu().numpy(),
            field=field[0].cpu().numpy(),
            seconds_network=network.seconds,
        )


@dataclass(frozen=True)
class PairJob:
    """One test pair as the command line lists it: inputs, and where its outputs go."""

    pair: str
    files: PairFiles  # moving, moving_liver, fixed on the working grid (no nCECT liver)
    prealign: Path  # the pair's pre-alignment (ITK transform, nCECT world -> CECT world)
    original_ncect: Path  # the mask is written in this geometry
    prediction: Path
    runtime: Path
    warped: Path | None = None  # the warped CECT on the working grid, if wanted
    mapping: Path | None = None  # the final mapping (ITK transform file), if wanted
    moving_mask: Path | None = None  # a CECT segmentation replacing the annotated CECT liver
    cect_liver: Path | None = None  # the annotated CECT liver, original CECT geometry
    pair_timing: Path | None = None  # the pair step's stages, inherited into seconds_case


def check_moving_masks(jobs: Sequence[PairJob], moving_mask: str) -> None:
    """The CECT liver source of the settings and the files given must agree."""
    given = [job.moving_mask is not None for job in jobs]
    if moving_mask == ANNOTATION and any(given):
        raise InputError(
            f"--moving-masks given, but regsegnet.moving_mask is {ANNOTATION!r} (the pair's "
            f"annotated CECT liver); set it to the method that made them"
        )
    if moving_mask != ANNOTATION and not all(given):
        raise InputError(
            f"regsegnet.moving_mask = {moving_mask!r} needs the CECT liver segmentations of that "
            f"method (--moving-masks FILE ..., one per pair); none given. Use "
            f"'{ANNOTATION}' for the pair's annotated CECT liver"
        )


def moving_mask_file(job: PairJob, moving_mask: str) -> Path | None:
    """None for the pair's annotated CECT liver; else the CECT segmentation of its patient."""
    if job.moving_mask is not None and not job.moving_mask.is_file():
        raise ImageError(
            f"{job.moving_mask}: CECT liver segmentation by {moving_mask!r} not found "
            f"(regsegnet.moving_mask = {moving_mask!r})"
        )
    return job.moving_mask


def original_liver_file(job: PairJob, moving_mask: str) -> Path:
    """The full-resolution CECT liver the mapping carries: a method's CECT segmentation, or
    the annotation (`--cect-liver`)."""
    path = moving_mask_file(job, moving_mask) or job.cect_liver
    if path is None:
        raise InputError(f"{job.pair}: give the pair's original CECT liver (--cect-liver), "
                         "which the final mapping carries onto the original nCECT")
    return path


def _image_like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    image.CopyInformation(reference)
    return image


def predict_pairs(
    model_path: str | os.PathLike,
    jobs: Sequence[PairJob],
    *,
    method_name: str = "regsegnet",
    cascades: int | None = None,
    device: str = "auto",
    moving_mask: str = ANNOTATION,
    inference: str = "eager",
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True),
) -> list[RuntimeRecord]:
    """Write each job's mask (on its original nCECT), runtime record and, if asked, warped
    CECT (on the working grid) and final mapping."""
    check_moving_masks(jobs, moving_mask)
    with Stopwatch() as startup:
        predictor = Predictor(model_path, device, cascades, inference)
    log(
        f"{method_name}: {predictor.cascades} of {predictor.model.num_cascades} cascades on "
        f"{predictor.device} ({torch.get_num_threads()} threads, {inference}), "
        f"model {model_path}, "
        f"CECT liver from {moving_mask}"
    )
    records = []
    for job in jobs:
        stages = Stages()
        if job.pair_timing is not None:
            inherit_pair_step(stages, job.pair_timing)
        with stages("read"):
            mask_path = moving_mask_file(job, moving_mask)
            prealign = read_transform(job.prealign)
            pair = read_pair(job.pair, job.files, predictor.shape, moving_mask_path=mask_path,
                             prealign=prealign)
            original = read_grid(job.original_ncect)  # its geometry: the header alone
            liver = read_mask(original_liver_file(job, moving_mask))
        result = predictor.register(pair)
        stages.add("network", result.seconds_network)
        with stages("map_back"):
            mapping = final_mapping(result.field, pair.reference, prealign)
            mask = resample_mask(liver, original, mapping)
        with stages("write"):
            write_image(mask, job.prediction)
        # evaluation outputs, not the method's work: untimed
        if job.warped is not None:
            write_image(_image_like(result.warped, pair.reference), job.warped)
        if job.mapping is not None:
            write_transform(mapping, job.mapping)
        extra = {
            "cascades": predictor.cascades,
            "inference": inference,
            "moving_mask": moving_mask,
            "working_shape": list(predictor.shape),
            "warmup_seconds": predictor.warmup_seconds,
            "process_startup_seconds": startup.seconds,  # model load, once per process
        }
        gpu_peak = peak_device_memory_mb(predictor.device)
        if gpu_peak is not None:
            extra["peak_gpu_memory_mb"] = gpu_peak
        record = RuntimeRecord.from_stages(
            method_name, job.pair, stages, ["network"], device=str(predictor.device),
            threads=torch.get_num_threads(), extra=extra,
        )
        record.write(job.runtime)
        records.append(record)
        log(f"{job.pair}: network {record.seconds_core:.3f} s, case {record.seconds_case:.3f} s")
    return records
