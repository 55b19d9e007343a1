"""Dense inference: tiled over the whole volume, post-processed, mapped back to the nCECT.

The volume is padded with air by the network's margin and cut into tiles whose output
patches abut; tile offsets are multiples of the pooling alignment, so the tiles together give
exactly what one forward over the whole padded volume gives (only memory differs). The liver
is the largest connected component of the argmax, mapped onto the original nCECT grid.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Iterable, Sequence

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

from baselines.deepmedic.checkpoint import load_model
from baselines.deepmedic.model import DeepMedic, torch_device
from baselines.deepmedic.sampling import Volume, volume_of
from baselines.deepmedic.settings import Settings
from liverbench.data.io import read_image, write_image
from liverbench.data.preprocess import WorkingGrid, preprocess_image, to_original
from liverbench.runtime import RuntimeRecord, Stages, Stopwatch

log = logging.getLogger(__name__)

METHOD = "deepmedic"


def tile_output_size(model: DeepMedic, segment: Sequence[int], shape: Sequence[int]) -> list[int]:
    """Output size of one tile per axis, from the inference segment (DeepMedic's convention:
    the normal pathway's input size), never larger than needed to cover the volume."""
    geometry = model.geometry
    sizes = []
    for seg, extent in zip(segment, shape):
        wanted = max(1, seg - geometry.pathway_receptive_field + 1)
        sizes.append(min(geometry.valid_output_size(wanted), geometry.valid_output_size(extent)))
    return sizes


def pad_for_tiles(volume: Volume, margin: int, tile: Sequence[int]) -> np.ndarray:
    """The image padded with air: `margin` before, and after up to a whole number of tiles."""
    widths = [
        (margin, math.ceil(extent / t) * t - extent + margin)
        for extent, t in zip(volume.image.shape, tile)
    ]
    return np.pad(volume.image, widths, constant_values=volume.air)


@torch.no_grad()
def tiled_probabilities(model: DeepMedic, volume: Volume, segment: Sequence[int],
                        device: torch.device | str = "cpu") -> np.ndarray:
    """Liver probability for every voxel of the volume, computed tile by tile."""
    model.eval()
    shape = volume.image.shape
    tile = tile_output_size(model, segment, shape)
    margin = model.geometry.margin
    padded = torch.from_numpy(pad_for_tiles(volume, margin, tile))
    counts = [math.ceil(extent / t) for extent, t in zip(shape, tile)]
    out = np.empty([n * t for n, t in zip(counts, tile)], dtype=np.float32)
    for index in itertools.product(*(range(n) for n in counts)):
        start = [i * t for i, t in zip(index, tile)]
        window = padded[tuple(slice(s, s + t + 2 * margin) for s, t in zip(start, tile))]
        logits = model(window[None, None].to(device))
        out[tuple(slice(s, s + t) for s, t in zip(start, tile))] = (
            torch.softmax(logits, dim=1)[0, 1].cpu().numpy()
        )
    return out[: shape[0], : shape[1], : shape[2]]


@torch.no_grad()
def full_probabilities(model: DeepMedic, volume: Volume, segment: Sequence[int],
                       device: torch.device | str = "cpu") -> np.ndarray:
    """The same as `tiled_probabilities`, in one forward over the whole padded volume (the
    reference the tiling is tested against; needs memory for the whole volume)."""
    model.eval()
    shape = volume.image.shape
    tile = tile_output_size(model, segment, shape)
    padded = torch.from_numpy(pad_for_tiles(volume, model.geometry.margin, tile))
    logits = model(padded[None, None].to(device))
    probabilities = torch.softmax(logits, dim=1)[0, 1].cpu().numpy()
    return probabilities[: shape[0], : shape[1], : shape[2]]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest 6-connected component (the liver is one organ); uint8."""
    components, count = ndimage.label(mask)
    if count <= 1:
        return mask.astype(np.uint8)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return (components == sizes.argmax()).astype(np.uint8)


def segment(model: DeepMedic, volume: Volume, segment_size: Sequence[int],
            device: torch.device | str = "cpu") -> np.ndarray:
    """Binary liver mask on the volume's own grid (argmax, then largest component)."""
    return liver_of(tiled_probabilities(model, volume, segment_size, device))


def liver_of(probabilities: np.ndarray) -> np.ndarray:
    """The liver of a probability map: p >= 0.5, largest connected component."""
    return largest_component(probabilities >= 0.5)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


PathLike = str | os.PathLike
# One test pair: its id, the original nCECT, the mask and runtime to write.
PairJob = tuple[str, PathLike, PathLike, PathLike]


def predict_cases(model_path: PathLike, settings: Settings, grid: WorkingGrid,
                  jobs: Iterable[PairJob]) -> None:
    """For each (pair, nCECT, prediction, runtime): put the original nCECT on its working grid
    (`grid`, as the training images were), segment it and write its mask in the original
    nCECT's geometry, with the pair's runtime record. Stages: read, working_grid, network,
    map_back (largest component, onto the original grid), write; `seconds_core` is the
    network. The model load and one warm-up forward happen before any pair is timed."""
    device = torch_device(settings.device)
    with Stopwatch() as loading:
        model, _ = load_model(model_path, device)
        _warm_up(model, settings.segment_infer, device)
    for pair, ncect_path, output, runtime in jobs:
        stages = Stages()
        with stages("read"):
            original = read_image(ncect_path)
        with stages("working_grid"):
            volume = volume_of(preprocess_image(original, grid), None, str(ncect_path))
        with stages("network"):
            probabilities = tiled_probabilities(model, volume, settings.segment_infer, device)
        with stages("map_back"):
            image = sitk.GetImageFromArray(liver_of(probabilities))
            image.CopyInformation(volume.reference)
            mapped = to_original(image, original)
        with stages("write"):
            write_image(mapped, output)
        liver_ml = float(sitk.GetArrayViewFromImage(mapped).sum()) * np.prod(mapped.GetSpacing())
        record = RuntimeRecord.from_stages(
            METHOD, pair, stages, ["network"], device=device_name(device),
            threads=torch.get_num_threads(),
            extra={"model_load_and_warm_up_seconds": loading.seconds,
                   "liver_volume_ml": liver_ml / 1000.0},
        )
        record.write(runtime)
        log.info("%s: %.2f s network, %.2f s case", pair, record.seconds_core,
                 record.seconds_case)


def _warm_up(model: DeepMedic, segment_size: Sequence[int], device: torch.device) -> None:
    """One forward on a blank tile so that first-call costs are not timed."""
    geometry = model.geometry
    size = [geometry.input_size(s) for s in tile_output_size(model, segment_size, segment_size)]
    with torch.no_grad():
        model(torch.zeros(1, model.architecture.in_channels, *size, device=device))
