"""The shared pre-alignment of every pair: a rigid map from the nCECT's world to the CECT's.

The CECT (diagnostic scanner) and the nCECT (SPECT-CT) have unrelated world frames: table
positions differ by tens to hundreds of mm and the patient is repositioned. Every pair,
intra- or inter-patient, is therefore first aligned rigidly, and every registration method
starts from (and composes into its final mapping) this one transform (docs/registration.md).

    none      the identity: scanner geometry, the identity baseline's assumption
    centroid  a translation between the body mass centroids
    rigid     centroids, then an exhaustive search over the cranio-caudal translation (the
              fields of view of the two scanners differ, so the body centroid is off in z),
              then a multi-resolution Euler registration (Mattes MI) of CECT to nCECT on
              downsampled images

The transform maps fixed (nCECT) world points to moving (CECT) world points, the direction in
which ITK resamples the CECT onto the nCECT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from liverbench.data.preprocess import body_centroid, resample_image
from liverbench.errors import InputError
from liverbench.settings import SettingsBase

MODES = ("none", "centroid", "rigid")
HU_RANGE = (-1000.0, 1000.0)  # metal and contrast outliers would squeeze the MI histogram


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
    shrink_factors: tuple[int, ...] = (2, 1)  # resolution levels over the downsampled images
    iterations: int = 60  # per level
    samples: int = 3000  # metric samples per evaluation
    bins: int = 16  # Mattes MI histogram bins (more: noisier with few samples)
    seed: int | None = None  # metric sampling (null: the top-level seed)

    def validate(self) -> None:
        self.check(self.mode in MODES, "mode", f"must be one of {MODES}, got {self.mode!r}")
        self.check(self.spacing_mm > 0, "spacing_mm", "must be > 0")
        self.check(self.z_search_mm >= 0, "z_search_mm", "must be >= 0")
        self.check(self.z_step_mm > 0, "z_step_mm", "must be > 0")
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
    transform = search_z(fixed_small, moving_small, transform, settings)
    return register_rigid(fixed_small, moving_small, transform, settings)


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


def register_rigid(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Euler3DTransform,
                   settings: Settings) -> sitk.Euler3DTransform:
    """Multi-resolution Euler registration (Mattes MI, regular-step gradient descent)."""
    method = _metric(settings, fixed)
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
