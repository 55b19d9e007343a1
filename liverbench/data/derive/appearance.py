"""De-enhancement: a portal-venous CECT made to look like a non-contrast CT, approximately.

Contrast adds HU, by organ: about 40-80 to the liver, over 80 to vessels, ~200 to the renal
cortex; fat takes none (docs/derived.md, the reference notes' section 4). Without organ
labels the rule is by HU, per region, and never adds HU (nCECT <= CECT voxel by voxel):

- liver mask: parenchyma (the median m) goes to a drawn non-contrast value L; brighter
  voxels, up to m + VESSEL_SPAN_HU, move linearly to blood B (a voxel part parenchyma, part
  vessel, looks like that mix); darker ones keep half their distance below m (tumours, cysts,
  partial volume with fat stay darker); labelled tumours go to a drawn tumour value;
- elsewhere in the body, not bone: HU above a drawn knee T are compressed to T + 0.05 (HU - T)
  (spleen, kidney, aorta, heart, bowel wall end at ~T..T+15); below T nothing changes (fat,
  fluid, air, lung);
- bone (and its marrow), and everything outside the body: unchanged.

The maps act on a lightly smoothed CECT (SMOOTH_MM), and the voxel's own deviation from it
goes through the map's slope: a noisy voxel is not pushed up or down by a kink of the map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from liverbench.data.derive.tissues import Tissues

LIVER_HU = (48.0, 65.0)  # unenhanced liver, drawn uniformly (under 48: steatosis)
BLOOD_BELOW_LIVER_HU = (4.0, 10.0)  # blood this much below the liver ...
BLOOD_HU = (40.0, 50.0)  # ... within this range
TUMOUR_HU = (35.0, 45.0)  # labelled tumours
SOFT_BELOW_LIVER_HU = (4.0, 12.0)  # the knee T of the outside map this much below the liver ...
SOFT_HU = (35.0, 50.0)  # ... within this range
SOFT_SLOPE = 0.05  # HU above the knee keep this fraction of their distance to it
VESSEL_SPAN_HU = 45.0  # a liver voxel this far above the parenchyma counts as all vessel
HYPODENSE_SLOPE = 0.5  # liver voxels below the parenchyma keep this much of their distance
SMOOTH_MM = 1.0  # Gaussian SD of the smoothing the maps act on (and at least a voxel)
INTERIOR_MM = 3.0  # the parenchyma's median is taken this far inside the liver mask


@dataclass(frozen=True)
class NonContrast:
    """The non-contrast values drawn for one patient (HU) and the CECT liver's median."""

    liver: float
    blood: float
    tumour: float
    soft_knee: float
    cect_liver: float

    @classmethod
    def sample(cls, rng: np.random.Generator, cect_liver: float) -> NonContrast:
        u = rng.uniform
        liver = u(*LIVER_HU)
        blood = float(np.clip(liver - u(*BLOOD_BELOW_LIVER_HU), *BLOOD_HU))
        tumour = u(*TUMOUR_HU)
        knee = float(np.clip(liver - u(*SOFT_BELOW_LIVER_HU), *SOFT_HU))
        return cls(liver, blood, tumour, knee, float(cect_liver))

    def record(self) -> dict[str, float]:
        return {
            "ncect_liver_hu": self.liver,
            "ncect_blood_hu": self.blood,
            "ncect_tumour_hu": self.tumour,
            "ncect_soft_tissue_knee_hu": self.soft_knee,
            "ncect_soft_tissue_slope": SOFT_SLOPE,
            "cect_liver_median_hu": self.cect_liver,
        }


def parenchyma_hu(tissues: Tissues) -> float:
    """The CECT liver's median HU, inside the mask (vessels and tumours barely move it)."""
    size = [2 * int(round(INTERIOR_MM / s)) + 1 for s in tissues.spacing]
    interior = ndimage.minimum_filter(tissues.liver, size=size)
    if tissues.tumour is not None:
        interior &= ~tissues.tumour
    values = tissues.hu[interior] if interior.sum() >= 100 else tissues.hu[tissues.liver]
    return float(np.median(values))


def de_enhance(tissues: Tissues, look: NonContrast) -> tuple[np.ndarray, np.ndarray]:
    """The non-contrast HU (float32, on the cropped CECT grid) and the liver's vessels
    (bool: voxels over half-way to all vessel), which take less MAA."""
    hu = tissues.hu
    sigma = np.maximum(SMOOTH_MM / tissues.spacing, 1.0)  # at least a voxel: noisy CTs
    smooth = ndimage.gaussian_filter(hu, sigma, truncate=3.0, mode="nearest")
    out = hu.copy()
    soft = tissues.body & ~tissues.bone & ~tissues.liver
    knee = np.float32(look.soft_knee)
    above = smooth > knee
    mapped = np.where(above, knee + SOFT_SLOPE * (smooth - knee), smooth)
    mapped += np.where(above, np.float32(SOFT_SLOPE), np.float32(1.0)) * (hu - smooth)
    out[soft] = np.minimum(mapped[soft], hu[soft])
    del mapped, above

    box = ndimage.find_objects(tissues.liver.astype(np.uint8))[0]
    liver = tissues.liver[box]
    h, s = hu[box], smooth[box]
    value, slope = _liver_map(s, look)
    liver_out = value + slope * (h - s)
    if tissues.tumour is not None:
        tumour = tissues.tumour[box]
        tumour_out = np.minimum(s, look.tumour) + HYPODENSE_SLOPE * (h - s)
        liver_out = np.where(tumour, tumour_out, liver_out)
    out[box][liver] = np.minimum(liver_out, h)[liver]
    vessels = np.zeros_like(tissues.liver)
    vessels[box] = liver & (s > look.cect_liver + VESSEL_SPAN_HU / 2)
    return out, vessels


def _liver_map(smooth: np.ndarray, look: NonContrast) -> tuple[np.ndarray, np.ndarray]:
    """The liver's map g(s) and its slope g'(s), piecewise linear in s - m."""
    d = smooth - np.float32(look.cect_liver)
    below = d < 0
    to_blood = np.float32((look.blood - look.liver) / VESSEL_SPAN_HU)
    value = np.where(
        below,
        look.liver + HYPODENSE_SLOPE * d,
        look.liver + to_blood * np.minimum(d, VESSEL_SPAN_HU),
    )
    slope = np.where(below, HYPODENSE_SLOPE, np.where(d < VESSEL_SPAN_HU, to_blood, 0.0))
    return value.astype(np.float32), slope.astype(np.float32)
