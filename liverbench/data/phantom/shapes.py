"""Geometry primitives for rasterising an anatomy onto a regular grid, block by block.

Every shape is evaluated only inside its own bounding box, on broadcastable 1-D coordinate
arrays, so a ten-million-voxel label volume costs a few hundred milliseconds instead of
seconds. Coordinates are millimetres, (x, y, z) = (patient left, posterior, superior) (LPS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

Vec = np.ndarray  # shape (3,), (x, y, z) in mm


@dataclass(frozen=True)
class Grid:
    """A regular axis-aligned grid: `origin` and `spacing` (x, y, z), `shape` (z, y, x)."""

    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]

    @classmethod
    def covering(cls, lo: Sequence[float], hi: Sequence[float], spacing: float) -> Grid:
        """The grid of the given isotropic spacing whose voxel centres cover [lo, hi]."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        counts = np.ceil((hi - lo) / spacing).astype(int) + 1
        counts += counts % 2  # even sizes let callers bin 2x2x2 exactly
        return cls(tuple(lo.tolist()), (spacing,) * 3, tuple(int(n) for n in counts[::-1]))

    def axis(self, i: int) -> np.ndarray:
        """World coordinates of the voxel centres along axis i (0 = x, 1 = y, 2 = z)."""
        n = self.shape[2 - i]
        return (self.origin[i] + self.spacing[i] * np.arange(n)).astype(np.float32)

    def block(self, lo: Sequence[float], hi: Sequence[float]) -> Block | None:
        """The part of the grid inside the box [lo, hi] (x, y, z), or None if it is empty."""
        slices, axes = [], []
        for i in (2, 1, 0):  # z, y, x
            coords = self.axis(i)
            start = int(np.searchsorted(coords, lo[i], side="left"))
            stop = int(np.searchsorted(coords, hi[i], side="right"))
            if stop <= start:
                return None
            slices.append(slice(start, stop))
            axes.append(coords[start:stop])
        z, y, x = axes
        return Block(tuple(slices), x[None, None, :], y[None, :, None], z[:, None, None])

    def full(self) -> Block:
        return Block(
            (slice(None),) * 3,
            self.axis(0)[None, None, :],
            self.axis(1)[None, :, None],
            self.axis(2)[:, None, None],
        )


@dataclass(frozen=True)
class Block:
    """Slices of a sub-block of a grid and its broadcastable x, y, z coordinates."""

    slices: tuple[slice, slice, slice]
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.z.shape[0], self.y.shape[1], self.x.shape[2])


def rotation(rx: float = 0.0, ry: float = 0.0, rz: float = 0.0) -> np.ndarray:
    """Rotation matrix for angles in radians about x, then y, then z."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid with centre, semi-axes and orientation (columns of `axes` = its axes)."""

    centre: Vec
    radii: Vec
    axes: np.ndarray = field(default_factory=lambda: np.eye(3))

    def bounds(self, margin: float = 0.0) -> tuple[Vec, Vec]:
        extent = np.sqrt((self.axes**2) @ (np.asarray(self.radii) ** 2)) + margin
        return self.centre - extent, self.centre + extent

    def level(self, x, y, z, scale: float = 1.0) -> np.ndarray:
        """Squared normalised radius: < 1 inside the ellipsoid scaled by `scale`."""
        cx, cy, cz = (float(c) for c in self.centre)  # Python floats keep float32 arrays
        d = (x - cx, y - cy, z - cz)
        total = 0.0
        for k in range(3):
            a = [float(v) / (float(self.radii[k]) * scale) for v in self.axes[:, k]]
            total = total + (a[0] * d[0] + a[1] * d[1] + a[2] * d[2]) ** 2
        return total

    def distance(self, x, y, z) -> np.ndarray:
        """Approximate signed distance in mm (negative inside), good near the surface."""
        return (np.sqrt(self.level(x, y, z)) - 1.0) * float(np.min(self.radii))


@dataclass(frozen=True)
class Capsule:
    """A tube around the segment a-b whose radius tapers linearly from ra to rb."""

    a: Vec
    b: Vec
    ra: float
    rb: float

    def bounds(self) -> tuple[Vec, Vec]:
        r = max(self.ra, self.rb)
        return np.minimum(self.a, self.b) - r, np.maximum(self.a, self.b) + r

    def inside(self, x, y, z) -> np.ndarray:
        d = [float(v) for v in self.b - self.a]
        length2 = sum(v * v for v in d) or 1e-9
        px, py, pz = (c - float(a) for c, a in zip((x, y, z), self.a))
        t = np.clip((px * d[0] + py * d[1] + pz * d[2]) * (1.0 / length2), 0.0, 1.0)
        dist2 = (px - t * d[0]) ** 2 + (py - t * d[1]) ** 2 + (pz - t * d[2]) ** 2
        radius = float(self.ra) + t * float(self.rb - self.ra)
        return dist2 <= radius**2


def smooth_min(values: Sequence[np.ndarray], k: float) -> np.ndarray:
    """Smooth minimum of signed distances: a union of shapes that blends over ~k mm."""
    stacked = np.stack(np.broadcast_arrays(*values))
    low = stacked.min(axis=0)
    return low - k * np.log(np.exp(-(stacked - low) / k).sum(axis=0))


def smoothstep(edge0: float, edge1: float, value: np.ndarray) -> np.ndarray:
    t = np.clip((value - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class SmoothField:
    """A smooth random scalar field: a sum of products of random 1-D cosine series.

    Separable terms make the field cheap to evaluate on a grid block (outer products of
    1-D arrays) while still giving non-separable, organic-looking shapes. It has zero mean
    and unit RMS; no wave in it is shorter than `wavelength` (mm).
    """

    frequencies: np.ndarray  # (terms, 3 axes, waves), cycles per mm
    coefficients: np.ndarray
    phases: np.ndarray

    @classmethod
    def random(
        cls, rng: np.random.Generator, wavelength: float, terms: int = 4, waves: int = 3
    ) -> SmoothField:
        shape = (terms, 3, waves)
        frequencies = rng.uniform(0.25, 1.0, shape) / wavelength
        coefficients = rng.standard_normal(shape)
        phases = rng.uniform(0.0, 2.0 * np.pi, shape)
        return cls(frequencies, coefficients, phases)

    def _factor(self, term: int, axis: int, coord: np.ndarray) -> np.ndarray:
        f, c, p = (a[term, axis] for a in (self.frequencies, self.coefficients, self.phases))
        values = (c * np.cos(2.0 * np.pi * f * coord[..., None] + p)).sum(axis=-1)
        rms = np.sqrt((c**2).sum() / 2.0) or 1.0
        return (values / rms).astype(np.float32)

    def __call__(self, x, y, z) -> np.ndarray:
        total = 0.0
        for term in range(self.coefficients.shape[0]):
            fx, fy, fz = (self._factor(term, i, c) for i, c in enumerate((x, y, z)))
            total = total + fx * fy * fz
        return total / np.sqrt(self.coefficients.shape[0])


def paint(
    labels: np.ndarray,
    block: Block,
    inside: np.ndarray,
    value: int,
    only: Sequence[int] | None = None,
) -> None:
    """Write `value` where `inside` holds, optionally only over the labels in `only`."""
    target = labels[block.slices]
    inside = np.broadcast_to(inside, target.shape)
    if only is not None:
        inside = inside & np.isin(target, only)
    target[inside] = value


def sample_linear(values: np.ndarray, grid: Grid, block: Block) -> np.ndarray:
    """Trilinear interpolation of `values` (on `grid`) at the voxels of `block`.

    Both grids are axis-aligned, so interpolation separates into three 1-D passes: far
    cheaper than a general resampler. Points outside `grid` take the nearest edge value.
    """
    out = values
    for array_axis, coords in enumerate((block.z.ravel(), block.y.ravel(), block.x.ravel())):
        world_axis = 2 - array_axis
        n = values.shape[array_axis]
        f = np.clip((coords - grid.origin[world_axis]) / grid.spacing[world_axis], 0, n - 1)
        i0 = np.minimum(np.floor(f).astype(np.intp), max(n - 2, 0))
        w = (f - i0).astype(np.float32)
        shape = [1, 1, 1]
        shape[array_axis] = -1
        w = w.reshape(shape)
        low = np.take(out, i0, axis=array_axis)
        high = np.take(out, np.minimum(i0 + 1, n - 1), axis=array_axis)
        high -= low  # low + (high - low) w, in place: half the memory traffic
        high *= w
        low += high
        out = low
    return out


def smooth_noise(rng: np.random.Generator, grid: Grid, correlation_mm: float) -> np.ndarray:
    """Gaussian-filtered white noise on `grid`, normalised to zero mean and unit SD."""
    noise = rng.standard_normal(grid.shape, dtype=np.float32)
    sigma = [correlation_mm / s for s in grid.spacing[::-1]]
    noise = ndimage.gaussian_filter(noise, sigma, mode="wrap")
    return (noise - noise.mean()) / (noise.std() + 1e-6)
