"""What the two lower bounds share: the original CECT liver carried onto the original nCECT
by one given transform, in one resampling (linear, then >= 0.5), timed, with the transform
written as the method's mapping. identity gives the identity (scanner geometry), rigid the
pair's pre-alignment."""

from __future__ import annotations

import SimpleITK as sitk

from liverbench.data.io import read_image, read_mask, read_transform, write_image, write_transform
from liverbench.data.preprocess import resample_mask
from liverbench.runtime import RuntimeRecord, Stopwatch


def carry_liver(
    method: str, pair: str, cect_path: str, liver_path: str, ncect_path: str,
    transform_path: str | None, prediction: str, runtime: str, mapping: str,
) -> None:
    """The pair's mask, runtime record and mapping; `transform_path` None is the identity."""
    with Stopwatch() as total:
        ncect = read_image(ncect_path)
        cect = read_image(cect_path)
        liver = read_mask(liver_path, cect, cect_path)
        transform = (read_transform(transform_path) if transform_path is not None
                     else sitk.Transform(3, sitk.sitkIdentity))
        with Stopwatch() as work:
            mask = resample_mask(liver, ncect, transform)
        write_image(mask, prediction)
        write_transform(transform, mapping)
    RuntimeRecord(method, pair, work.seconds, total.seconds, threads=1).write(runtime)
