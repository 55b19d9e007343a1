"""Liver masks from a trained nnU-Net model, in the geometry of the input image.

nnU-Net's predictor does its own preprocessing (resampling to the plans' spacing,
normalisation) and maps the segmentation back to the input's voxel grid; this module only
hands it arrays the way nnU-Net's SimpleITK reader would, runs those steps one by one so each
is timed, and puts the input's geometry back on the result. Call `environment.configure` first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from nnunetv2.inference.data_iterators import PreprocessAdapterFromNpy
from nnunetv2.inference.export_prediction import (
    convert_predicted_logits_to_segmentation_with_correct_shape,
)
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from baselines.nnunet.settings import Settings
from baselines.nnunet.train import FINAL, FOLD, resolve_device
from liverbench.data.io import read_image, write_image
from liverbench.runtime import RuntimeRecord, Stages, Stopwatch

LIVER = 1


class Segmenter:
    """A loaded nnU-Net model; `segment(image)` returns a uint8 0/1 liver mask on its grid."""

    def __init__(self, model_folder: str | os.PathLike, device: torch.device, *,
                 mirroring: bool = False, tile_step_size: float = 0.5,
                 largest_component: bool = True, checkpoint: str = FINAL,
                 fold: int | str = FOLD, liver_labels: Sequence[int] = (LIVER,)) -> None:
        folder = Path(model_folder)
        weights = folder / f"fold_{fold}" / checkpoint
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: no trained nnU-Net model (train it first)")
        self.liver_labels = list(liver_labels)
        self.predictor = nnUNetPredictor(
            tile_step_size=tile_step_size, use_gaussian=True, use_mirroring=mirroring,
            perform_everything_on_device=device.type == "cuda", device=device, verbose=False,
            verbose_preprocessing=False, allow_tqdm=False,
        )
        self.predictor.initialize_from_trained_model_folder(str(folder), use_folds=(fold,),
                                                            checkpoint_name=checkpoint)
        self.largest_component = largest_component

    def segment(self, image: sitk.Image, stages: Stages | None = None) -> sitk.Image:
        """The liver mask of `image`, timing nnU-Net's own steps into `stages` (if given):
        `preprocess` (resampling to the plans' spacing, normalisation), `network` (the
        sliding-window forward passes), `resample_back` (to the input's grid, largest
        component) — the steps of nnU-Net's `predict_single_npy_array`, run one by one."""
        stages = stages if stages is not None else Stages()
        predictor = self.predictor
        # SimpleITK's array order (z, y, x) and spacing reversed to match: what nnU-Net's
        # SimpleITKIO reader gives its preprocessing during training.
        array = sitk.GetArrayFromImage(image).astype(np.float32)[None]
        properties = {"spacing": list(reversed(image.GetSpacing()))}
        with stages("preprocess"):
            case = next(PreprocessAdapterFromNpy(
                [array], [None], [properties], [None], predictor.plans_manager,
                predictor.dataset_json, predictor.configuration_manager,
                num_threads_in_multithreaded=1, verbose=False))
        with stages("network"):
            logits = predictor.predict_logits_from_preprocessed_data(case["data"]).cpu()
        with stages("resample_back"):
            labels = convert_predicted_logits_to_segmentation_with_correct_shape(
                logits, predictor.plans_manager, predictor.configuration_manager,
                predictor.label_manager, case["data_properties"])
            liver = np.isin(np.asarray(labels), self.liver_labels)  # MSD: liver and tumour
            mask = sitk.GetImageFromArray(liver.astype(np.uint8))
            mask.CopyInformation(image)
            return keep_largest_component(mask) if self.largest_component else mask


def keep_largest_component(mask: sitk.Image) -> sitk.Image:
    """nnU-Net's "remove all but the largest component" postprocessing: the liver is one
    organ, and stray islands far from it cost tens of millimetres of surface distance."""
    components = sitk.RelabelComponent(sitk.ConnectedComponent(mask), sortByObjectSize=True)
    largest = sitk.Cast(components == 1, sitk.sitkUInt8)
    largest.CopyInformation(mask)
    return largest


def predict_pairs(
    record: dict,
    settings: Settings,
    method: str,
    jobs: Sequence[tuple[str, Path, Path, Path]],
    threads: int,
) -> None:
    """Segment one image per pair, timed; `jobs`: (pair, image, prediction, runtime record).

    The image is the pair's original nCECT (method nnunet_ncect) or CECT (phase 1 of
    elastix_cnn); its mask is written in that image's geometry. The model is loaded and run
    once on the first image before timing starts (reported once, in `extra`). Stages: read,
    nnU-Net's preprocess, network and resample_back, write; `seconds_core` is the network.
    """
    device = resolve_device(settings.device)
    mirroring = settings.use_mirroring(device.type)
    with Stopwatch() as loading:
        segmenter = Segmenter(record["model_folder"], device, mirroring=mirroring,
                              tile_step_size=settings.tile_step_size,
                              largest_component=settings.largest_component,
                              checkpoint=Path(record["checkpoint"]).name,
                              fold=record.get("fold", FOLD),
                              liver_labels=record.get("liver_labels", [LIVER]))
    with Stopwatch() as warmup:
        segmenter.segment(read_image(jobs[0][1]))
    print(f"model loaded in {loading.seconds:.1f} s, warm-up {warmup.seconds:.1f} s", flush=True)
    for pair, path, prediction, runtime in jobs:
        stages = Stages()
        with stages("read"):
            image = read_image(path)
        mask = segmenter.segment(image, stages)
        with stages("write"):
            write_image(mask, prediction)
        voxels = int(sitk.GetArrayViewFromImage(mask).sum())
        print(f"{pair}: {path} -> {voxels} liver voxels, network "
              f"{stages.seconds['network']:.2f} s, case {stages.total():.2f} s", flush=True)
        RuntimeRecord.from_stages(
            method, pair, stages, ["network"], device=device.type, threads=threads,
            extra={"image": str(path), "model": record["model_folder"],
                   "configuration": record["configuration"], "mirroring": mirroring,
                   "largest_component": settings.largest_component,
                   "seconds_model_load_shared": round(loading.seconds, 3),
                   "seconds_warmup_shared": round(warmup.seconds, 3)},
        ).write(runtime)
