"""The pre-alignment into elastix, and elastix's final mapping out, as ITK transforms.

Both directions use the one convention of the project and of elastix: a transform maps a
fixed (nCECT) world point to a moving (CECT) world point.

In: the pair's pre-alignment (`Layout.prealign`, an ITK transform file: Euler, translation or
identity), optionally followed by the shift that makes the phase-1 liver masks' centroids
coincide (`centre_livers`), becomes elastix's initial transform, an `AffineTransform`
parameter map (any linear ITK transform has an exact affine form, so one conversion covers
every kind the pre-alignment may write, with no rotation-order or centre conventions to match).
Out: transformix's deformation field of the whole chain (initial, rigid, B-spline) on a coarse
grid over the nCECT field of view, wrapped as a `sitk.DisplacementFieldTransform`:
T(p) = p + d(p), the ITK form of transformix's field (moving point = p + d(p)).

Kept free of itk so that the conversion can be tested without loading elastix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from baselines.elastix_cnn.parameters import ParameterMap
from liverbench.data.io import read_transform
from liverbench.data.preprocess import mask_centroid as centroid
from liverbench.errors import InputError, PairFailure

PROBE_MM = 1000.0  # A and b of a linear T(p) = A p + b are read off T at 0 and 1 m steps


def read_prealign(path: Path) -> sitk.Transform:
    """The pair's pre-alignment, refused with the file named when absent or not linear."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: pre-alignment transform not found")
    transform = read_transform(path)
    if transform.GetDimension() != 3 or not transform.IsLinear():
        raise InputError(f"{path}: the pre-alignment must be a linear (rigid or affine) 3D "
                         f"transform, got a {transform.GetDimension()}D {transform.GetName()}")
    return transform


def elastix_start(prealign: sitk.Transform, fixed: sitk.Image, fixed_liver: sitk.Image,
                  moving_liver: sitk.Image, centre: bool) -> tuple[ParameterMap, np.ndarray | None]:
    """elastix's initial transform map for a pre-aligned pair: the pre-alignment, liver
    centroids made to coincide when `centre`; and that centring shift (None without)."""
    shift = None
    if centre:
        prealign, shift = centre_livers(prealign, fixed_liver, moving_liver)
    return initial_map(prealign, fixed), shift


def centre_livers(transform: sitk.Transform, fixed_liver: sitk.Image,
                  moving_liver: sitk.Image) -> tuple[sitk.Transform, np.ndarray]:
    """`transform`, then the translation that carries the fixed liver's centroid, so mapped,
    onto the moving liver's; and that translation (mm). The Euler stage's start: the liver's
    own breathing shift (up to ~30 mm) is left after a body pre-alignment, more than a short
    rigid schedule recovers, and elastix's centre-of-gravity step ignores masks."""
    fixed_centre, moving_centre = centroid(fixed_liver), centroid(moving_liver)
    if fixed_centre is None or moving_centre is None:
        raise PairFailure("a phase-1 liver mask is empty: no liver centroid to start from")
    shift = moving_centre - np.array(transform.TransformPoint(tuple(map(float, fixed_centre))))
    translation = sitk.TranslationTransform(3, tuple(map(float, shift)))
    return sitk.CompositeTransform([translation, transform]), shift


def affine_parts(transform: sitk.Transform) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) with T(p) = A p + b for a linear transform, read off T at probe points."""
    probes = np.vstack([np.zeros(3), PROBE_MM * np.eye(3)])
    points = np.array([transform.TransformPoint(tuple(map(float, p))) for p in probes])
    return (points[1:] - points[0]).T / PROBE_MM, points[0]


def initial_map(transform: sitk.Transform, fixed: sitk.Image) -> ParameterMap:
    """elastix's initial transform equal to `transform` (fixed world -> moving world).

    elastix's AffineTransform is T(p) = A (p - c) + c + t with parameters A row by row, then t;
    the centre c is 0 here, so t is the offset b. The fixed image's grid is recorded as in any
    elastix result map."""
    if not transform.IsLinear():
        raise InputError(f"elastix's initial transform must be linear, got {transform.GetName()}")
    matrix, offset = affine_parts(transform)
    return {
        "Transform": ["AffineTransform"],
        "NumberOfParameters": ["12"],
        "TransformParameters": [repr(float(v)) for v in [*matrix.ravel(), *offset]],
        "CenterOfRotationPoint": ["0", "0", "0"],
        "InitialTransformParameterFileName": ["NoInitialTransform"],
        "HowToCombineTransforms": ["Compose"],
        "FixedImageDimension": ["3"],
        "MovingImageDimension": ["3"],
        "FixedInternalImagePixelType": ["float"],
        "MovingInternalImagePixelType": ["float"],
        "UseDirectionCosines": ["true"],
        **grid_fields(Grid.of(fixed)),
    }


@dataclass(frozen=True)
class Grid:
    """An image grid (x, y, z order, like ITK)."""

    size: tuple[int, ...]
    origin: tuple[float, ...]
    spacing: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> Grid:
        return cls(image.GetSize(), image.GetOrigin(), image.GetSpacing(), image.GetDirection())

    def coarse(self, spacing_mm: float) -> Grid:
        """Same origin and axes, `spacing_mm` steps (never finer than the image's own), covering
        at least the image's extent: the mapping's grid."""
        spacing = tuple(max(spacing_mm, step) for step in self.spacing)
        size = tuple(max(2, math.ceil((n - 1) * step / new - 1e-9) + 1)
                     for n, step, new in zip(self.size, self.spacing, spacing))
        return Grid(size, self.origin, spacing, self.direction)


def grid_fields(grid: Grid) -> ParameterMap:
    """elastix's output-grid keys: where transformix resamples, or samples its field.
    elastix writes `Direction` column by column (ITK's GetDirection is row by row)."""
    columns = np.reshape(grid.direction, (3, 3)).T.ravel()
    return {
        "Size": [str(n) for n in grid.size],
        "Index": ["0", "0", "0"],
        "Spacing": [repr(float(v)) for v in grid.spacing],
        "Origin": [repr(float(v)) for v in grid.origin],
        "Direction": [repr(float(v)) for v in columns],
    }


def on_grid(transform_maps: Sequence[dict[str, Sequence[str]]], grid: Grid) -> list[ParameterMap]:
    """Result transform maps set to output on `grid` (copies; the transforms are unchanged)."""
    return [{key: list(values) for key, values in parameter_map.items()} | grid_fields(grid)
            for parameter_map in transform_maps]


def field_transform(field: np.ndarray, grid: Grid) -> sitk.DisplacementFieldTransform:
    """A (z, y, x, 3) displacement array in mm on `grid` as an ITK transform p -> p + d(p)."""
    expected = (*reversed(grid.size), 3)
    if field.shape != expected:
        raise InputError(f"deformation field has shape {field.shape}, expected {expected}")
    image = sitk.GetImageFromArray(field.astype(np.float64), isVector=True)
    image.SetOrigin(grid.origin)
    image.SetSpacing(grid.spacing)
    image.SetDirection(grid.direction)
    return sitk.DisplacementFieldTransform(image)

