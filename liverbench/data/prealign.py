"""The shared pre-alignment of every pair: a rigid map from the nCECT's world to the CECT's.

The CECT (diagnostic scanner) and the nCECT (SPECT-CT) have unrelated world frames: table
positions differ by tens to hundreds of mm and the patient is repositioned. Every pair,
intra- or inter-patient, is therefore first aligned rigidly, and every registration method
starts from (and composes into its final mapping) this one transform (docs/registration.md).

    none      the identity: scanner geometry, the identity baseline's assumption
    centroid  a translation between the body mass centroids
    rigid     centroids in x and y; in z the lung bases put level (the fields of view of the
              two scanners cover different stretches of the body, so the body centroids are
              off in z by up to ~100 mm), or, where either scan shows no lungs, an exhaustive
              search over z; then a multi-resolution Euler registration (Mattes MI) of CECT
              to nCECT on downsampled images, its metric sampled in the nCECT's body within
              a slab from the lung bases down over the upper abdomen, where the liver lies

The transform maps fixed (nCECT) world points to moving (CECT) world points, the direction in
which ITK resamples the CECT onto the nCECT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from liverbench.data.preprocess import BODY_THRESHOLD_HU, body_centroid, resample_image
from liverbench.errors import InputError
from liverbench.settings import SettingsBase

MODES = ("none", "centroid", "rigid")
HU_RANGE = (-1000.0, 1000.0)  # metal and contrast outliers would squeeze the MI histogram
AIR_HU = -500.0  # aerated lung (-900..-700 HU) and gas lie below; soft tissue far above
LUNG_MIN_ML = 200.0  # an air region inside the body this large is lung, not bowel gas


class PrealignError(InputError):
    """Two images the pre-alignment cannot relate (they do not overlap once centred)."""


@dataclass(frozen=True)
class Settings(SettingsBase):
    """`prealign:` — none (scanner geometry), centroid (body centroids), rigid (centroids,
    a search over z, then a fast Euler registration on downsampled images)."""

    mode: str = "rigid"
    spacing_mm: float = 6.0  # isotropic spacing of the downsampled images registered
    z_search_mm: float = 60.0  # the z search covers centroid offset +- this
    z_step_mm: float = 10.0
    lung_base_ml: float = 50.0  # the lung-base level: this much lung lies below it
    slab_mm: tuple[float, float] = (150.0, 60.0)  # the metric's slab: below, above the lung base
    shrink_factors: tuple[int, ...] = (2, 1)  # resolution levels over the downsampled images
    iterations: int = 60  # per level
    samples: int = 10000  # metric samples per evaluation (within the slab: fewer are kept)
    bins: int = 16  # Mattes MI histogram bins (more: noisier with few samples)
    seed: int | None = None  # metric sampling (null: the top-level seed)

    def validate(self) -> None:
        self.check(self.mode in MODES, "mode", f"must be one of {MODES}, got {self.mode!r}")
        self.check(self.spacing_mm > 0, "spacing_mm", "must be > 0")
        self.check(self.z_search_mm >= 0, "z_search_mm", "must be >= 0")
        self.check(self.z_step_mm > 0, "z_step_mm", "must be > 0")
        self.check(self.lung_base_ml > 0, "lung_base_ml", "must be > 0")
        self.check(len(self.slab_mm) == 2 and all(v >= 0 for v in self.slab_mm)
                   and sum(self.slab_mm) > 0, "slab_mm", "must be two distances >= 0 (mm)")
        self.check(len(self.shrink_factors) >= 1 and all(f >= 1 for f in self.shrink_factors),
                   "shrink_factors", "must be one or more factors >= 1")
        self.check(self.iterations >= 1, "iterations", "must be >= 1")
        self.check(self.samples >= 100, "samples", "must be >= 100")
        self.check(self.bins >= 4, "bins", "must be >= 4")
        self.check(self.seed is None or self.seed >= 0, "seed", "must be >= 0")


def prealign(fixed: sitk.Image, moving: sitk.Image, settings: Settings) -> sitk.Euler3DTransform:
    """The rigid transform fixed (nCECT) world point -> moving (CECT) world point."""
    transform = sitk.Euler3DTransform()
    if settings.mode == "none":
        return transform
    fixed_small = downsample(fixed, settings.spacing_mm)
    moving_small = downsample(moving, settings.spacing_mm)
    fixed_centre = body_centroid(fixed_small)
    transform.SetCenter(fixed_centre.tolist())
    transform.SetTranslation((body_centroid(moving_small) - fixed_centre).tolist())
    if settings.mode == "centroid":
        return transform
    fixed_base = lung_base_z(fixed_small, settings.lung_base_ml)
    moving_base = lung_base_z(moving_small, settings.lung_base_ml)
    if fixed_base is None or moving_base is None:
        transform = search_z(fixed_small, moving_small, transform, settings)
        return register_rigid(fixed_small, moving_small, transform, settings)
    x, y, _ = transform.GetTranslation()
    transform.SetTranslation((x, y, moving_base - fixed_base))
    slab = upper_abdomen(fixed_small, fixed_base, settings.slab_mm)
    return register_rigid(fixed_small, moving_small, transform, settings, slab)


def lung_base_z(image: sitk.Image, base_ml: float) -> float | None:
    """World z of the lung bases: the axial level below which `base_ml` of lung lie; None
    when the scan shows no lungs.

    The diaphragm is the one landmark every SPECT-CT of the liver shows (the lung shunt
    fraction needs the lungs in the field of view) and most diagnostic abdominal CTs too, and
    it moves with the liver when the patient breathes. A body-centroid start is off in z by
    the difference of the fields of view (up to ~100 mm); from the lung bases the Euler
    stage starts within a few mm of the liver (docs/registration.md). Lung is air
    inside the body (each axial slice's body outline filled, so the lungs count and the air
    around the patient does not), in 3-D regions of at least LUNG_MIN_ML (bowel gas is
    smaller). A volume, not one slice's area, makes the level robust to noise and to how
    much of the lungs the field of view holds.
    """
    hu = sitk.GetArrayViewFromImage(image)  # (z, y, x)
    inside = np.stack([ndimage.binary_fill_holes(s) for s in hu > BODY_THRESHOLD_HU])
    labels, count = ndimage.label(inside & (hu < AIR_HU))
    if count == 0:
        return None
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    sizes = np.bincount(labels.ravel())[1:] * voxel_ml
    lungs = np.isin(labels, np.flatnonzero(sizes >= LUNG_MIN_ML) + 1)
    per_slice = lungs.sum(axis=(1, 2)) * voxel_ml
    if per_slice.sum() < base_ml:
        return None
    slice_z = _slice_z(image)
    order = np.argsort(slice_z)  # caudal to cranial, for the running sum
    running = np.cumsum(per_slice[order])
    k = int(np.searchsorted(running, base_ml))
    before = running[k - 1] if k > 0 else 0.0
    fraction = (base_ml - before) / per_slice[order][k]  # interpolate within the slice
    step = slice_z[order][k] - slice_z[order][k - 1] if k > 0 else image.GetSpacing()[2]
    return float(slice_z[order][k] - step * (1 - fraction) + step / 2)


def _slice_z(image: sitk.Image) -> np.ndarray:
    """World z of each axial slice (array axis 0), whatever the image's direction."""
    return np.array([image.TransformContinuousIndexToPhysicalPoint((0.0, 0.0, float(k)))[2]
                     for k in range(image.GetSize()[2])])


def downsample(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """The image on an isotropic grid of `spacing_mm` over the same field of view (same
    origin and direction), anti-aliased, float32, HU clamped to HU_RANGE."""
    size = np.array(image.GetSize()) * np.array(image.GetSpacing())
    reference = sitk.Image([max(2, int(np.ceil(s / spacing_mm))) for s in size], sitk.sitkUInt8)
    reference.SetSpacing([spacing_mm] * 3)
    reference.SetOrigin(image.GetOrigin())
    reference.SetDirection(image.GetDirection())
    return sitk.Clamp(resample_image(image, reference, HU_RANGE[0]), sitk.sitkFloat32, *HU_RANGE)


def _metric(settings: Settings, fixed: sitk.Image) -> sitk.ImageRegistrationMethod:
    """Mattes MI over a seeded random sample of the fixed image: reproducible, and unlike
    REGULAR sampling never aliased onto a few image columns (a step equal to a row length)."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.bins)
    method.SetMetricSamplingStrategy(method.RANDOM)
    fraction = min(1.0, settings.samples / float(np.prod(fixed.GetSize())))
    # SimpleITK reads seed 0 as "seed from the wall clock": shift by one to stay reproducible
    method.SetMetricSamplingPercentage(fraction, 1 + (settings.seed or 0))
    method.SetInterpolator(sitk.sitkLinear)
    return method


def search_z(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Euler3DTransform,
             settings: Settings) -> sitk.Euler3DTransform:
    """The best cranio-caudal translation on a grid of z_step_mm within +- z_search_mm.

    Body centroids align x and y well, but in z they are the centres of the two fields of
    view, which cover different stretches of the body; a gradient optimiser started 50 mm
    off can end in a wrong local optimum, an exhaustive search of a dozen metric values not.
    The range stays modest: Mattes MI over a small overlap can beat the true alignment
    (measured on inter-patient phantom pairs at +-120 mm), so it must not reach such overlaps.
    """
    method = _metric(settings, fixed)
    steps = int(settings.z_search_mm // settings.z_step_mm)
    method.SetOptimizerAsExhaustive([0, 0, 0, 0, 0, steps], stepLength=settings.z_step_mm)
    method.SetOptimizerScales([1.0] * 6)  # Euler parameters: 3 angles, then x, y, z in mm
    result = sitk.Euler3DTransform(transform)
    method.SetInitialTransform(result, inPlace=True)
    _execute(method, fixed, moving, "the z search")  # leaves the best position in `result`
    return result


def upper_abdomen(image: sitk.Image, base_z: float, slab_mm: tuple[float, float]) -> sitk.Image:
    """The body of `image` within the slab from slab_mm[0] below the lung bases to slab_mm[1]
    above them: the liver and what moves with it.

    Sampled over the whole body, the rigid registration slid 25-35 mm off a good start on 3 of
    20 phantom patients (and off most inter-patient pairs): the two fields of view end at
    other levels, and MI rewards what overlaps there. Over the slab it kept every phantom pair
    within 7 mm of the true liver position (docs/registration.md)."""
    hu = sitk.GetArrayViewFromImage(image)
    slice_z = _slice_z(image)
    inside = (slice_z > base_z - slab_mm[0]) & (slice_z < base_z + slab_mm[1])
    mask = (hu > BODY_THRESHOLD_HU) & inside[:, None, None]
    result = sitk.GetImageFromArray(mask.astype(np.uint8))
    result.CopyInformation(image)
    return result


def register_rigid(
    fixed: sitk.Image, moving: sitk.Image, transform: sitk.Euler3DTransform, settings: Settings,
    fixed_mask: sitk.Image | None = None,
) -> sitk.Euler3DTransform:
    """Multi-resolution Euler registration (Mattes MI, regular-step gradient descent), its
    metric sampled within `fixed_mask` when one is given."""
    method = _metric(settings, fixed)
    if fixed_mask is not None:
        method.SetMetricFixedMask(fixed_mask)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=0.05, numberOfIterations=settings.iterations,
        gradientMagnitudeTolerance=1e-6, relaxationFactor=0.6)
    method.SetOptimizerScalesFromPhysicalShift()
    factors = list(settings.shrink_factors)
    method.SetShrinkFactorsPerLevel(factors)
    method.SetSmoothingSigmasPerLevel([0.5 * (f - 1) for f in factors])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    result = sitk.Euler3DTransform(transform)
    method.SetInitialTransform(result, inPlace=True)
    _execute(method, fixed, moving, "the rigid registration")
    return result


def _execute(method: sitk.ImageRegistrationMethod, fixed: sitk.Image, moving: sitk.Image,
             stage: str) -> None:
    try:
        method.Execute(fixed, moving)
    except RuntimeError as error:  # ITK: "All samples map outside moving image buffer"
        detail = str(error).strip().splitlines()[-1] if str(error).strip() else "failed"
        raise PrealignError(
            f"pre-alignment: {stage} found the CECT and nCECT without overlap once their body "
            f"centroids are aligned ({detail}); check the images, or lower "
            "prealign.z_search_mm") from error


def compose(prealignment: sitk.Transform, registration: sitk.Transform) -> sitk.CompositeTransform:
    """A method's final mapping when it registers the pre-aligned pair: its own transform first
    (nCECT world point -> pre-aligned point, e.g. a DisplacementFieldTransform on the working
    grid), then the pre-alignment (-> CECT world point). CompositeTransform applies its last
    transform first. One resampling of the original CECT mask through it gives the prediction.
    Flattened, so a composite pre-alignment becomes one list, as transform files want."""
    mapping = sitk.CompositeTransform([prealignment, registration])
    mapping.FlattenTransform()
    return mapping
