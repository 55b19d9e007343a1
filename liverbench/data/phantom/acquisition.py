"""Scanners: fields of view and image formation.

Both CTs and the SPECT sample the same anatomy. The anatomy's label volume lives in the
CECT's world frame; a scan in another frame (the nCECT of the SPECT-CT, and its SPECT)
pulls it through a backward transform (`motion.Motion`): for each of its voxels, the world
point is mapped to the CECT anatomy. The nCECT liver mask is therefore the exact moved liver.

Image formation is done on the fine anatomy grid, where partial volume is right: HU per
label plus texture, blurred by the slice profile and the in-plane point spread, then sampled
linearly onto the scanner grid, where correlated Gaussian noise is added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from liverbench.data.phantom.appearance import Appearance
from liverbench.data.phantom.shapes import Grid

Geometry = tuple[list[int], list[float], list[float]]
"""Size, spacing and origin of a scan, each (x, y, z); the direction is the identity."""

SPECT_VOXEL_MM = 4.8
SPECT_FWHM_MM = 12.0
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class Protocol:
    """A CT protocol: matrix, field-of-view, slice and coverage ranges, noise."""

    matrix: int  # in-plane voxels
    fov_mm: tuple[float, float]  # in-plane field of view range
    slice_mm: tuple[float, ...]  # slice thickness choices (thickness = spacing)
    coverage_mm: tuple[float, float]  # z coverage range
    noise_hu: tuple[float, float]  # noise SD range
    psf_pixels: float = 1.2  # in-plane point spread FWHM, in pixels


@dataclass(frozen=True)
class Size:
    """Everything a generation size changes: anatomy resolution and the CT matrices.
    Fields of view, slices and noise stay, so sizes differ in pixel size only."""

    anatomy_mm: float
    cect: Protocol
    ncect: Protocol
    msd: Protocol


def _size(anatomy_mm: float, cect: int, ncect: int, msd: int) -> Size:
    return Size(
        anatomy_mm=anatomy_mm,
        # diagnostic portal-venous CECT: thin slices, low noise, the abdomen around the liver
        cect=Protocol(cect, (325.0, 370.0), (2.0, 2.5, 3.0), (220.0, 260.0), (8.0, 12.0)),
        # low-dose CT of the SPECT-CT: thick slices, noisy, a smaller field of view that
        # still holds the liver and the lung bases
        ncect=Protocol(ncect, (300.0, 345.0), (4.0, 5.0), (250.0, 290.0), (20.0, 30.0)),
        # "another scanner" for the MSD-like cohort
        msd=Protocol(msd, (320.0, 380.0), (2.5, 3.0, 4.0, 5.0), (220.0, 300.0), (10.0, 18.0)),
    )


SIZES = {
    "smoke": _size(3.0, 112, 96, 100),
    "demo": _size(1.5, 224, 192, 200),
    "paper": _size(1.0, 512, 512, 512),
}


def scan_geometry(rng: np.random.Generator, protocol: Protocol, centre: np.ndarray) -> Geometry:
    """Size, spacing and origin (x, y, z) of a scan centred near `centre` (world mm)."""
    pixel = round(float(rng.uniform(*protocol.fov_mm)) / protocol.matrix, 3)
    thickness = float(rng.choice(protocol.slice_mm))
    slices = int(round(rng.uniform(*protocol.coverage_mm) / thickness))
    size = [protocol.matrix, protocol.matrix, slices]
    spacing = [pixel, pixel, thickness]
    origin = [float(c - (n - 1) / 2 * s) for c, n, s in zip(centre, size, spacing)]
    return size, spacing, [round(o, 2) for o in origin]


def spect_geometry(ct_size, ct_spacing, ct_origin) -> Geometry:
    """A SPECT grid of ~4.8 mm voxels covering a CT's field of view, sharing its centre."""
    extent = np.array(ct_size) * np.array(ct_spacing)
    size = [int(2 * np.ceil(e / SPECT_VOXEL_MM / 2)) for e in extent]
    centre = np.array(ct_origin) + (np.array(ct_size) - 1) / 2 * np.array(ct_spacing)
    origin = centre - (np.array(size) - 1) / 2 * SPECT_VOXEL_MM
    return size, [SPECT_VOXEL_MM] * 3, [round(float(o), 2) for o in origin]


# ----------------------------------------------------------------------- image making


def anatomy_image(array: np.ndarray, grid: Grid, offset: np.ndarray) -> sitk.Image:
    """A (z, y, x) array on the anatomy grid as an image in CECT world coordinates."""
    image = sitk.GetImageFromArray(array)
    image.SetOrigin((np.array(grid.origin) + offset).tolist())
    image.SetSpacing(grid.spacing)
    return image


def resample(
    image: sitk.Image,
    geometry: Geometry,
    transform: sitk.Transform | None,
    interpolator: int,
    default: float,
) -> sitk.Image:
    size, spacing, origin = geometry
    return sitk.Resample(
        image,
        size,
        transform or sitk.Transform(),
        interpolator,
        origin,
        spacing,
        np.eye(3).ravel().tolist(),
        default,
        image.GetPixelID(),
    )


def render_ct(
    rng: np.random.Generator,
    labels: sitk.Image,
    texture: np.ndarray,
    appearance: Appearance,
    protocol: Protocol,
    geometry: Geometry,
    transform: sitk.Transform | None = None,
) -> sitk.Image:
    """An int16 CT: HU per label with texture, slice profile and PSF blur, then noise."""
    anatomy_mm = labels.GetSpacing()[0]
    hu = appearance.render(sitk.GetArrayViewFromImage(labels), texture)
    _, spacing, _ = geometry
    sigma_xy = protocol.psf_pixels * spacing[0] * FWHM_TO_SIGMA / anatomy_mm
    sigma_z = spacing[2] * FWHM_TO_SIGMA / anatomy_mm  # slice sensitivity FWHM = thickness
    hu = ndimage.gaussian_filter(hu, (sigma_z, sigma_xy, sigma_xy), truncate=3.0)
    image = sitk.GetImageFromArray(hu)
    image.CopyInformation(labels)
    ct = sitk.GetArrayFromImage(resample(image, geometry, transform, sitk.sitkLinear, -1000.0))
    return scanner_output(rng, ct, rng.uniform(*protocol.noise_hu), geometry)


def scanner_output(
    rng: np.random.Generator, ct: np.ndarray, noise_sd: float, geometry: Geometry
) -> sitk.Image:
    """What the scanner stores: noise-free HU on its grid (float32, changed in place) plus
    correlated noise of SD `noise_sd`, as int16 in the scanner's range."""
    ct += correlated_noise(rng, ct.shape, noise_sd)
    out = sitk.GetImageFromArray(np.clip(np.rint(ct), -1024, 3071).astype(np.int16))
    _set_geometry(out, geometry)
    return out


def correlated_noise(rng: np.random.Generator, shape, sd: float) -> np.ndarray:
    """CT-like noise: white noise smoothed in-plane (a reconstruction kernel), SD `sd`."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    noise = ndimage.gaussian_filter(noise, (0.0, 0.7, 0.7), truncate=3.0)
    return noise * np.float32(sd / noise.std())


def resample_labels(
    labels: sitk.Image,
    geometry: Geometry,
    transform: sitk.Transform | None = None,
) -> sitk.Image:
    """Labels on a scan's grid (nearest neighbour: exact labels, no new values)."""
    return resample(labels, geometry, transform, sitk.sitkNearestNeighbor, 0)


def render_spect(
    rng: np.random.Generator,
    activity: np.ndarray,
    anatomy_grid_image: sitk.Image,
    geometry: Geometry,
    transform: sitk.Transform,
    total_counts: float,
) -> sitk.Image:
    """Float32 SPECT counts: activity binned to ~3 mm, blurred to the system resolution,
    sampled on the SPECT grid, scaled to `total_counts` and Poisson-distributed."""
    binned = _bin2(activity)
    spacing = 2 * anatomy_grid_image.GetSpacing()[0]
    binned = ndimage.gaussian_filter(binned, SPECT_FWHM_MM * FWHM_TO_SIGMA / spacing)
    image = sitk.GetImageFromArray(binned)
    image.SetSpacing([spacing] * 3)
    half = anatomy_grid_image.GetSpacing()[0] / 2
    image.SetOrigin([o + half for o in anatomy_grid_image.GetOrigin()])
    expected = sitk.GetArrayFromImage(resample(image, geometry, transform, sitk.sitkLinear, 0))
    expected = np.clip(expected, 0, None).astype(np.float64)
    expected *= total_counts / max(expected.sum(), 1e-12)
    counts = rng.poisson(expected).astype(np.float32)
    out = sitk.GetImageFromArray(counts)
    _set_geometry(out, geometry)
    return out


def _bin2(array: np.ndarray) -> np.ndarray:
    """Mean over 2x2x2 blocks (the anatomy grid has even sizes)."""
    z, y, x = (s // 2 * 2 for s in array.shape)
    a = array[:z, :y, :x].reshape(z // 2, 2, y // 2, 2, x // 2, 2)
    return a.mean(axis=(1, 3, 5), dtype=np.float32)


def _set_geometry(image: sitk.Image, geometry) -> None:
    _, spacing, origin = geometry
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
