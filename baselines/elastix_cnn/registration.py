"""CECT -> nCECT registration with itk-elastix, and the liver mask carried by transformix.

Images travel between SimpleITK (the project's IO) and itk (elastix) through numpy with their
full geometry. Failures never become empty masks: elastix errors, an empty or implausibly
sized warped liver raise `RegistrationError` with the pair and the reason.

Threads: elastix takes ITK's global default thread count, set by `configure_threads` before
elastix runs (the registration filter's own thread argument crashes with two-metric maps).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from baselines.elastix_cnn.mapping import Grid, on_grid
from baselines.elastix_cnn.parameter_files import ParameterFileError, refused
from baselines.elastix_cnn.parameters import ParameterMap, for_labels
from liverbench.errors import PairFailure

AIR_HU = -1000.0


class RegistrationError(PairFailure):
    """elastix failed, or its result is not a usable liver mask; the message says which.

    An input error: the images or phase-1 masks of the pair (named first) cannot be registered,
    so the command line reports it in one line rather than as a crash."""


def configure_threads(threads: int) -> None:
    """Bound ITK's (and so elastix's) worker threads; call before the first registration."""
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    import itk

    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(threads)


def to_itk(image: sitk.Image, dtype: type = np.float32):
    """A SimpleITK image as an itk image of `dtype`, geometry included."""
    import itk

    result = itk.image_from_array(sitk.GetArrayFromImage(image).astype(dtype))
    result.SetOrigin(image.GetOrigin())
    result.SetSpacing(image.GetSpacing())
    result.SetDirection(itk.matrix_from_array(np.reshape(image.GetDirection(), (3, 3))))
    return result


def to_sitk(image, reference: sitk.Image) -> sitk.Image:
    """An itk image on `reference`'s grid as a SimpleITK image with that geometry."""
    import itk

    array = itk.array_from_image(image)
    if array.shape != tuple(reversed(reference.GetSize())):
        raise RegistrationError(f"transformix output has shape {array.shape}, expected the "
                                f"fixed image's {tuple(reversed(reference.GetSize()))}")
    result = sitk.GetImageFromArray(array)
    result.CopyInformation(reference)
    return result


def ct_for_elastix(image: sitk.Image) -> sitk.Image:
    """CT with air at 0 (HU + 1000, clipped below): the centre-of-gravity initialisation then
    weighs the body, not the air around it; mutual information is unaffected by the shift."""
    array = np.clip(sitk.GetArrayFromImage(image).astype(np.float32), AIR_HU, None) - AIR_HU
    result = sitk.GetImageFromArray(array)
    result.CopyInformation(image)
    return result


def dilate_mm(mask: sitk.Image, millimetres: float) -> sitk.Image:
    """Grow a binary mask by a physical distance (exact Euclidean distance, anisotropic grids)."""
    if millimetres <= 0:
        return mask
    distance = sitk.SignedMaurerDistanceMap(mask, insideIsPositive=False, squaredDistance=False,
                                            useImageSpacing=True)
    grown = sitk.Cast(distance <= millimetres, sitk.sitkUInt8)
    grown.CopyInformation(mask)
    return grown


@dataclass
class Registration:
    """elastix's result transform (the initial map if any, then one map per stage: the chain
    transformix applies) and the time it took."""

    transform_maps: list[dict[str, list[str]]]
    seconds: float


def register(
    fixed: sitk.Image,
    moving: sitk.Image,
    fixed_mask: sitk.Image,
    moving_mask: sitk.Image,
    parameter_maps: Sequence[ParameterMap],
    log_dir: Path | None = None,
    name: str = "",
    initial: ParameterMap | None = None,
    parameter_files: Sequence[str] = (),
) -> Registration:
    """Register `moving` (CECT) to `fixed` (nCECT), the metric restricted by both masks,
    starting from the `initial` transform map (the pre-alignment) when given.

    `parameter_files`: where `parameter_maps` came from (the user's files, in order): an
    elastix error about one of their keys or values is then `ParameterFileError` naming the
    file and line (a configuration error, for every pair), not this pair's failure."""
    import itk

    parameters = _parameter_object(parameter_maps)
    extra = {} if initial is None else {
        "initial_transform_parameter_object": _parameter_object([initial])}
    with contextlib.ExitStack() as stack:
        if log_dir is None:  # a log anyway: elastix's exception only points to it
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="elastix.")))
        log_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        try:
            _, transform = itk.elastix_registration_method(
                to_itk(ct_for_elastix(fixed)), to_itk(ct_for_elastix(moving)),
                parameter_object=parameters,
                fixed_mask=to_itk(fixed_mask, np.uint8),
                moving_mask=to_itk(moving_mask, np.uint8),
                log_to_console=False, log_to_file=True, output_directory=str(log_dir),
                log_file_name="elastix.log", **extra,
            )
        except RuntimeError as error:
            reason = f"{name}: elastix failed: {_elastix_reason(error, log_dir)}"
            problem = refused(reason, log_dir / "elastix.log", parameter_files) if (
                parameter_files) else None
            if problem:
                raise ParameterFileError(problem) from error
            raise RegistrationError(reason) from error
        seconds = time.perf_counter() - started
    maps = [
        {key: list(transform.GetParameterMap(index)[key])
         for key in transform.GetParameterMap(index).keys()}
        for index in range(transform.GetNumberOfParameterMaps())
    ]
    for parameter_map in maps:
        values = parameter_map.get("TransformParameters", [])
        if any(not np.isfinite(float(v)) for v in values):
            raise RegistrationError(f"{name}: elastix did not converge (non-finite transform "
                                    f"parameters in {parameter_map['Transform'][0]})")
    return Registration(maps, seconds)


def transform_mask(mask: sitk.Image, transform_maps: Sequence[dict[str, list[str]]],
                   fixed: sitk.Image) -> sitk.Image:
    """Carry a binary mask of the moving image onto the fixed grid (nearest neighbour)."""
    import itk

    warped = itk.transformix_filter(to_itk(mask, np.float32),
                                    transform_parameter_object=_parameter_object(
                                        for_labels(transform_maps)),
                                    log_to_console=False)
    binary = sitk.Cast(to_sitk(warped, fixed) > 0.5, sitk.sitkUInt8)
    binary.CopyInformation(fixed)
    return binary


def deformation_field(transform_maps: Sequence[dict[str, list[str]]], moving: sitk.Image,
                      grid: Grid, name: str = "") -> np.ndarray:
    """transformix's deformation field of the whole chain on `grid`, (z, y, x, 3) in mm:
    d(p) = T(p) - p, with T(p) the moving point of fixed point p."""
    import itk

    # transformix also resamples `moving` on the way (unused): nearest neighbour keeps it cheap.
    # It writes deformationField.* into its output directory (the working directory unless
    # told): a scratch folder, so nothing lands beside the user's files.
    with tempfile.TemporaryDirectory(prefix="transformix-") as scratch:
        field = itk.transformix_deformation_field(
            to_itk(moving, np.float32),
            transform_parameter_object=_parameter_object(
                on_grid(for_labels(transform_maps), grid)
            ),
            output_directory=scratch,
            log_to_console=False)
        array = np.asarray(itk.array_from_image(field), dtype=np.float64)
    if not np.isfinite(array).all():
        raise RegistrationError(f"{name}: transformix's deformation field has non-finite values")
    return array


def check_warped(warped: sitk.Image, moving_mask: sitk.Image, min_ratio: float,
                 name: str = "") -> None:
    """Refuse an empty or implausibly sized warped liver: a registration that went astray."""
    def volume_ml(mask: sitk.Image) -> float:
        voxel = float(np.prod(mask.GetSpacing()))
        return float(sitk.GetArrayViewFromImage(mask).sum()) * voxel / 1000.0

    moved, original = volume_ml(warped), volume_ml(moving_mask)
    if moved == 0:
        raise RegistrationError(f"{name}: the warped liver mask is empty (elastix did not "
                                "converge, or the liver left the nCECT field of view)")
    ratio = moved / original
    if not min_ratio <= ratio <= 1 / min_ratio:
        raise RegistrationError(
            f"{name}: elastix did not converge to a plausible result: the warped liver is "
            f"{moved:.0f} ml, the CECT liver {original:.0f} ml (ratio {ratio:.2f}, allowed "
            f"{min_ratio:.2f}..{1 / min_ratio:.2f})"
        )


def write_parameter_maps(maps: Sequence[dict[str, list[str]]], folder: Path, stem: str) -> None:
    """Write maps as elastix parameter files `{stem}.{i}.txt`, with elastix's own writer."""
    import itk

    folder.mkdir(parents=True, exist_ok=True)
    for index, parameter_map in enumerate(maps):
        path = folder / f"{stem}.{index}.txt"
        tmp = folder / f".{stem}.{index}.tmp.txt"
        itk.ParameterObject.WriteParameterFile(
            {key: tuple(values) for key, values in parameter_map.items()}, str(tmp))
        os.replace(tmp, path)


def _parameter_object(maps: Sequence[dict[str, Sequence[str]]]):
    """An itk-elastix ParameterObject holding `maps`, in order."""
    import itk

    parameters = itk.ParameterObject.New()
    for parameter_map in maps:
        parameters.AddParameterMap({key: tuple(values) for key, values in parameter_map.items()})
    return parameters


def _elastix_reason(error: RuntimeError, log_dir: Path) -> str:
    """The useful line of elastix's error: its log's error message, else the exception's."""
    if (log_dir / "elastix.log").is_file():
        lines = (log_dir / "elastix.log").read_text(errors="replace").splitlines()
        for index, line in enumerate(lines):
            if "Description:" in line:
                return " ".join(part.strip() for part in lines[index:index + 3]).strip()
    return str(error).strip().splitlines()[-1]
