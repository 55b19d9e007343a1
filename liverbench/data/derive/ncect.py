"""The simulated low-dose nCECT: another scanner's grid, its slice profile and noise.

The protocol is the phantom's demo nCECT (`acquisition.SIZES["demo"].ncect`: 192 x 192 over
300-345 mm, 1.56-1.80 mm pixels, 4 or 5 mm slices, 250-290 mm coverage, noise SD 20-30 HU),
so a derived cohort and the default phantom cohort have the same nCECT and the same working
grids fit both. Two rules come from the CECT being real and finite:

- the field of view is smaller than the CECT's (at most FOV_FRACTION of it), and shrunk
  further until no voxel inside the body maps, through the motion, beyond the CECT's sides;
- slices are dropped from the ends until none inside the body maps beyond the CECT's first
  or last slice (half a slice thickness in): a real patient has anatomy there, the CECT does
  not, and air in its place would be a tell.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from liverbench.data.derive.tissues import Tissues, continuous_index, sample
from liverbench.data.phantom import acquisition as acq
from liverbench.data.phantom.cohort import NCECT_ABOVE_LIVER_MM
from liverbench.data.phantom.motion import Motion
from liverbench.errors import InputError

PROTOCOL = acq.SIZES["demo"].ncect
FOV_FRACTION = 0.95  # the nCECT's field of view is at most this part of the CECT's
CENTRE_JITTER_MM = 6.0  # as the phantom's nCECT centring
CHECK_MM = 8.0  # in-plane spacing of the points checked against the CECT's extent
SHRINK = 0.95  # the field of view shrinks by this factor until it fits ...
MIN_FOV_FRACTION = 0.6  # ... but not below this part of the drawn one
MIN_SLICES = 8


def ncect_geometry(
    rng: np.random.Generator, tissues: Tissues, motion: Motion
) -> tuple[acq.Geometry, dict[str, float]]:
    """The nCECT grid, centred NCECT_ABOVE_LIVER_MM above the moved liver's middle on the
    body's axis, and a record of what was drawn and what was kept."""
    bottom, top = tissues.z_range(tissues.liver)
    inplane = tuple(a for a in range(3) if a != tissues.axial)
    centre = tissues.centroid(tissues.body & tissues.liver.any(axis=inplane, keepdims=True))
    centre[2] = (bottom + top) / 2 + motion.breathing_mm + NCECT_ABOVE_LIVER_MM
    cap = FOV_FRACTION * tissues.fov_mm
    protocol = dataclasses.replace(PROTOCOL, fov_mm=tuple(min(f, cap) for f in PROTOCOL.fov_mm))
    jitter = rng.uniform(-CENTRE_JITTER_MM, CENTRE_JITTER_MM, 3)
    size, spacing, origin = acq.scan_geometry(rng, protocol, motion.ncect_point(centre) + jitter)
    drawn_pixel, drawn_slices = spacing[0], size[2]
    while True:
        inplane, axial = _outside_cect(tissues, motion, (size, spacing, origin))
        if not inplane.any() or spacing[0] <= MIN_FOV_FRACTION * drawn_pixel:
            break
        spacing, origin = _shrunk(size, spacing, origin)
    keep = _longest_run(~axial & ~inplane)
    if keep.stop - keep.start < MIN_SLICES:
        raise InputError(
            f"the CECT covers too little (z) for an nCECT of {MIN_SLICES} slices inside it"
        )
    size = [size[0], size[1], keep.stop - keep.start]
    origin = [origin[0], origin[1], round(origin[2] + keep.start * spacing[2], 2)]
    record = {
        "ncect_pixel_mm": spacing[0],
        "ncect_slice_mm": spacing[2],
        "ncect_fov_mm": size[0] * spacing[0],
        "ncect_fov_drawn_mm": size[0] * drawn_pixel,
        "ncect_coverage_mm": size[2] * spacing[2],
        "ncect_coverage_drawn_mm": drawn_slices * spacing[2],
    }
    return (size, spacing, origin), record


def _outside_cect(tissues: Tissues, motion: Motion, geometry: acq.Geometry):
    """Per nCECT slice: does any point inside the body map beyond the CECT's sides
    (in-plane), or beyond its first or last slice (axial)?"""
    size, spacing, origin = geometry
    step = max(1, int(round(CHECK_MM / spacing[0])))
    check = [int(np.ceil(size[0] / step)), int(np.ceil(size[1] / step)), size[2]]
    field = sitk.TransformToDisplacementField(
        motion.transform,
        sitk.sitkVectorFloat64,
        check,
        origin,
        [spacing[0] * step, spacing[1] * step, spacing[2]],
        np.eye(3).ravel().tolist(),
    )
    x, y, z = (o + s * np.arange(n) for o, s, n in zip(origin, field.GetSpacing(), check))
    grid = np.stack(np.meshgrid(z, y, x, indexing="ij")[::-1], axis=-1)  # (z, y, x, 3)
    points = grid + sitk.GetArrayFromImage(field)
    body_small, body_image = tissues.coarse("body")
    in_body = sample(body_small, body_image, points) > 0.5
    index = continuous_index(tissues.image, points)
    shape = np.array(tissues.hu.shape)
    margin = np.zeros(3)
    margin[tissues.axial] = spacing[2] / 2 / tissues.spacing[tissues.axial]
    outside = (index < -0.5 + margin) | (index > shape - 0.5 - margin)
    inplane_axes = [a for a in range(3) if a != tissues.axial]
    inplane = (outside[..., inplane_axes].any(axis=-1) & in_body).any(axis=(1, 2))
    axial = (outside[..., tissues.axial] & in_body).any(axis=(1, 2))
    return inplane, axial


def _shrunk(size, spacing, origin):
    """The same matrix on SHRINK times smaller pixels, about the same centre."""
    centre = np.array(origin) + (np.array(size) - 1) / 2 * np.array(spacing)
    pixel = round(spacing[0] * SHRINK, 3)
    spacing = [pixel, pixel, spacing[2]]
    origin = [round(float(c - (n - 1) / 2 * s), 2) for c, n, s in zip(centre, size, spacing)]
    return spacing, origin


def _longest_run(ok: np.ndarray) -> slice:
    best, start = slice(0, 0), None
    for k, good in enumerate(list(ok) + [False]):
        if good and start is None:
            start = k
        elif not good and start is not None:
            if k - start > best.stop - best.start:
                best = slice(start, k)
            start = None
    return best


def render_ncect(
    rng: np.random.Generator,
    hu: np.ndarray,
    tissues: Tissues,
    geometry: acq.Geometry,
    motion: Motion,
) -> tuple[sitk.Image, float]:
    """int16 nCECT from non-contrast HU on the cropped CECT grid: blurred to the slice
    profile (FWHM = slice thickness) and in-plane point spread (PROTOCOL.psf_pixels) less
    what the CECT already has, pulled through the motion, plus correlated noise (its SD is
    returned)."""
    _, spacing, _ = geometry
    sigma = []
    for axis, s in enumerate(tissues.spacing):
        if axis == tissues.axial:  # slice profile: the CECT's own FWHM is its slice spacing
            fwhm, own = spacing[2], s
        else:
            fwhm, own = PROTOCOL.psf_pixels * spacing[0], PROTOCOL.psf_pixels * s
        sigma.append(np.sqrt(max(fwhm**2 - own**2, 0.0)) * acq.FWHM_TO_SIGMA / s)
    image = sitk.GetImageFromArray(ndimage.gaussian_filter(hu, sigma, truncate=3.0, mode="nearest"))
    image.CopyInformation(tissues.image)
    ct = acq.resample(image, geometry, motion.transform, sitk.sitkLinear, -1000.0)
    noise = float(rng.uniform(*PROTOCOL.noise_hu))
    return acq.scanner_output(rng, sitk.GetArrayFromImage(ct), noise, geometry), noise


def pull_mask(
    mask: np.ndarray, tissues: Tissues, geometry: acq.Geometry, motion: Motion
) -> sitk.Image:
    """A CECT mask on the nCECT grid through the motion (linear, >= 0.5), uint8 0/1."""
    found = ndimage.find_objects(mask.astype(np.uint8))
    size = geometry[0]
    if not found:
        out = sitk.Image([int(n) for n in size], sitk.sitkUInt8)
    else:
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in found[0])
        image = sitk.GetImageFromArray(mask[box].astype(np.float32))
        z, y, x = box
        image.CopyInformation(tissues.image[x, y, z])
        pulled = acq.resample(image, geometry, motion.transform, sitk.sitkLinear, 0.0)
        out = sitk.Cast(pulled >= 0.5, sitk.sitkUInt8)
    out.SetSpacing(geometry[1])
    out.SetOrigin(geometry[2])
    return out
