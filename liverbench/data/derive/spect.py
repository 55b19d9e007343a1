"""99mTc-MAA SPECT of a derived patient, as the phantom makes it, from masks instead of labels.

Relative uptake (normal liver = 1): intrahepatic vessels 0.3, labelled tumours 3-8x (one
ratio per patient), the rest of the body 0.01-0.03, air 0; the lungs get the concentration
that gives a drawn lung shunt fraction over the lung volume the nCECT sees
(`phantom.cohort.lung_concentration`). The activity is resampled to an isotropic ACTIVITY_MM
grid in the CECT's world, where the phantom's `acquisition.render_spect` bins it (2x2x2),
blurs it to 12 mm FWHM, pulls it through the motion onto a 4.8 mm grid over the nCECT field
of view and draws Poisson counts.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from liverbench.data.derive.tissues import Tissues
from liverbench.data.phantom import acquisition as acq
from liverbench.data.phantom.cohort import LUNG_SHUNT_FRACTION, SPECT_COUNTS, lung_concentration
from liverbench.data.phantom.motion import Motion
from liverbench.data.phantom.shapes import Grid

ACTIVITY_MM = acq.SPECT_VOXEL_MM / 2  # render_spect bins 2x2x2 to the SPECT's voxel
BACKGROUND = (0.01, 0.03)
TUMOUR_UPTAKE = (3.0, 8.0)
VESSEL_UPTAKE = 0.3


def render_spect(
    rng: np.random.Generator,
    tissues: Tissues,
    vessels: np.ndarray,
    ncect_lungs: sitk.Image,
    geometry: acq.Geometry,
    motion: Motion,
) -> tuple[sitk.Image, dict[str, float]]:
    """SPECT counts (float32) on a grid over the nCECT `geometry`, and the drawn values."""
    grid = Grid.covering(*tissues.world_box(), ACTIVITY_MM)
    body, liver, lungs = (_on_grid(m, tissues, grid) for m in (tissues.body, tissues.liver,
                                                                tissues.lungs))
    vessel = _on_grid(vessels, tissues, grid)
    tumour = np.zeros_like(liver) if tissues.tumour is None else _on_grid(tissues.tumour,
                                                                          tissues, grid)
    u = rng.uniform
    background = u(*BACKGROUND)
    ratio = u(*TUMOUR_UPTAKE)
    lsf = float(u(*LUNG_SHUNT_FRACTION))
    total = float(u(*SPECT_COUNTS))
    parenchyma = np.clip(liver - tumour, 0.0, 1.0)
    in_liver = parenchyma * (1.0 - (1.0 - VESSEL_UPTAKE) * np.minimum(vessel, parenchyma))
    in_liver += ratio * tumour
    activity = background * np.clip(body - liver - lungs, 0.0, 1.0) + in_liver
    voxel_ml = ACTIVITY_MM**3 / 1000.0
    liver_activity = float(in_liver.sum(dtype=np.float64)) * voxel_ml
    lung_voxels = float(sitk.GetArrayViewFromImage(ncect_lungs).sum(dtype=np.float64))
    lung_ml = lung_voxels * float(np.prod(ncect_lungs.GetSpacing())) / 1000.0
    activity += lungs * lung_concentration(lsf, liver_activity, lung_ml)
    activity = activity.astype(np.float32)
    image = acq.anatomy_image(activity, grid, np.zeros(3))
    spect_grid = acq.spect_geometry(*geometry)
    spect = acq.render_spect(rng, activity, image, spect_grid, motion.transform, total)
    tumours = 0 if tissues.tumour is None else ndimage.label(tissues.tumour)[1]
    record = {
        "lung_shunt_fraction": lsf,
        "spect_total_counts": total,
        "spect_background_uptake": background,
        "tumour_uptake": ratio if tumours else 0.0,
        "tumours": int(tumours),
    }
    return spect, record


def _on_grid(mask: np.ndarray, tissues: Tissues, grid: Grid) -> np.ndarray:
    """A mask's fraction (linear interpolation, float32) on `grid`."""
    image = sitk.GetImageFromArray(mask.astype(np.float32))
    image.CopyInformation(tissues.image)
    shape = [int(n) for n in grid.shape[::-1]]
    out = sitk.Resample(image, shape, sitk.Transform(), sitk.sitkLinear, grid.origin,
                        grid.spacing, np.eye(3).ravel().tolist(), 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)
