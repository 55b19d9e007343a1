"""Memory a data rule declares, from its images' headers, before it reads a voxel.

A Slurm cluster kills a job that uses more than it asked for, and a fixed `mem_mb` fits either
the demo's 200-slice phantom or a 1024 x 1024 x 600 export, not both. The data rules hold a
few full-size copies of the largest scan they read: what they declare is a base (interpreter,
SimpleITK, numpy, scipy) plus bytes per voxel of that scan, measured with
benchmarks/data_memory.py and given a margin (docs/speed.md, "The data steps on a real-size
CT").
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

import SimpleITK as sitk

from liverbench.errors import InputError

BASE_MB = 350  # a data step's process before it reads an image (measured: ~250 MB)
MARGIN = 1.25
# Bytes held per voxel of the largest scan, at each step's peak (benchmarks/data_memory.py):
#   standardize: the source CT as stored, its int16 copy unless it is int16, a mask (as
#                stored) and its 0/1 copy unless it is uint8 0/1 -> stored bytes + 4
#   preprocess:  the int16 CT, the body mask (1) and its 32-bit connected components (4)
#   pair:        the nCECT's body search as above, or both CTs (2 + 2) and the CECT liver (1)
#   derive:      a derived patient from a source CT (liverbench.data.derive): its float64
#                tissue and motion arrays; 640 MB at 256 x 256 x 300, 3850 MB at
#                512 x 512 x 600 (one thread), i.e. 24.5 bytes per voxel
STEP_BYTES = {"standardize": 4.0, "preprocess": 7.0, "pair": 7.0, "derive": 25.0}


def header_of(path: str | os.PathLike) -> tuple[int, int]:
    """(voxels, bytes per voxel as stored) of an image file or DICOM series folder, from
    headers only; a file that cannot be read counts as empty (its step reports the error).
    A missing file raises FileNotFoundError: Snakemake then decides the job's resources
    once the job that writes the file has run."""
    if not os.path.exists(path):  # the name as given: Snakemake matches it to its inputs
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), os.fspath(path))
    path = Path(path)
    reader = sitk.ImageFileReader()
    if path.is_dir():  # a DICOM series: one slice's header, times the files (GDCM's series
        # scan would read every header, seconds per series when the DAG is built)
        files = sorted(entry.path for entry in os.scandir(path) if entry.is_file())
        if not files:
            return 0, 0
        reader.SetFileName(files[0])
        slices = len(files)
    else:
        reader.SetFileName(str(path))
        slices = 1
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return 0, 0
    voxels = slices
    for extent in reader.GetSize():
        voxels *= extent
    pixel = sitk.Image([1] * reader.GetDimension(), reader.GetPixelID(),
                       reader.GetNumberOfComponents())
    return voxels, pixel.GetSizeOfPixelComponent() * reader.GetNumberOfComponents()


def data_rule_mb(step: str, paths: Iterable[str | os.PathLike]) -> int:
    """`mem_mb` for one job of a data step (`STEP_BYTES`) reading `paths`."""
    if step not in STEP_BYTES:
        raise InputError(f"unknown data step {step!r}; one of {sorted(STEP_BYTES)}")
    headers = [header_of(path) for path in paths]
    voxels = max((count for count, _ in headers), default=0)
    stored = max((size for _, size in headers), default=0)
    per_voxel = STEP_BYTES[step] + (stored if step == "standardize" else 0)
    return int(BASE_MB + MARGIN * voxels * per_voxel / 2**20)
