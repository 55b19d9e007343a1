"""elastix parameter maps of the two-stage registration (Luu et al. 2023), as plain dicts.

Stage 1, rigid: EulerTransform, AdvancedMattesMutualInformation, adaptive stochastic
gradient descent, random samples (drawn among the mask's voxels), a shrinking pyramid; it
starts from the pair's pre-alignment when there is one (elastix's initial transform), else
from elastix's centre-of-gravity initialisation (Luu et al.).
Stage 2, non-rigid: BSplineTransform, multi-metric Mattes MI (weight 1) + bending-energy
penalty, random-coordinate samples, a smoothing-only pyramid (see `settings.Stage`).
elastix runs the maps in sequence, each starting from the previous result.

Kept free of itk so that the maps can be built, inspected and tested without loading elastix.
"""

from __future__ import annotations

from collections.abc import Sequence

from baselines.elastix_cnn.settings import Settings, Stage

ParameterMap = dict[str, list[str]]


def _flat(levels: Sequence[Sequence[float]]) -> list[str]:
    return [_number(value) for level in levels for value in level]


def _number(value: float) -> str:
    return str(int(value)) if float(value) == int(value) else f"{float(value):g}"


def _common(stage: Stage, settings: Settings) -> ParameterMap:
    return {
        "FixedInternalImagePixelType": ["float"],
        "MovingInternalImagePixelType": ["float"],
        "FixedImageDimension": ["3"],
        "MovingImageDimension": ["3"],
        "UseDirectionCosines": ["true"],
        "Optimizer": ["AdaptiveStochasticGradientDescent"],
        "AutomaticParameterEstimation": ["true"],
        "MaximumNumberOfIterations": [str(stage.iterations)],
        "NumberOfResolutions": [str(stage.resolutions)],
        "NumberOfSpatialSamples": [str(stage.samples)],
        "NewSamplesEveryIteration": ["true"],
        "NumberOfHistogramBins": [str(settings.bins)],
        "Interpolator": ["BSplineInterpolator"],
        "BSplineInterpolationOrder": ["1"],
        "ResampleInterpolator": ["FinalBSplineInterpolator"],
        "FinalBSplineInterpolationOrder": ["3"],
        "Resampler": ["DefaultResampler"],
        "DefaultPixelValue": ["0"],
        "HowToCombineTransforms": ["Compose"],
        "ErodeMask": ["false"],
        "WriteResultImage": ["false"],
        "ResultImagePixelType": ["float"],
        "ResultImageFormat": ["nii.gz"],
    }


def rigid_map(settings: Settings, prealigned: bool = False) -> ParameterMap:
    """`prealigned`: elastix gets the pre-alignment as its initial transform, and the Euler
    stage starts from it (no centre-of-gravity step, which would replace its translation)."""
    stage = settings.rigid
    initialisation = {"AutomaticTransformInitialization": ["false"]} if prealigned else {
        "AutomaticTransformInitialization": ["true"],
        "AutomaticTransformInitializationMethod": ["CenterOfGravity"],
    }
    return _common(stage, settings) | {
        "Registration": ["MultiResolutionRegistration"],
        "Metric": ["AdvancedMattesMutualInformation"],
        "Transform": ["EulerTransform"],
        "AutomaticScalesEstimation": ["true"],
        **initialisation,
        # Random voxels inside the mask. elastix's plain "Random" sampler rejects voxels outside
        # the mask and gives up below ~10 % hits: at the published coarsest shrink (32) a
        # ~190-voxel-wide nCECT has a handful of voxels in the liver mask.
        "ImageSampler": ["RandomSparseMask"],
        "FixedImagePyramid": ["FixedRecursiveImagePyramid"],
        "MovingImagePyramid": ["MovingRecursiveImagePyramid"],
        "ImagePyramidSchedule": _flat(stage.schedule),
    }


def bspline_map(
    settings: Settings, fixed_spacing: Sequence[float], moving_spacing: Sequence[float]
) -> ParameterMap:
    """The B-spline map; the smoothing sigmas (mm) depend on each image's voxel spacing."""
    stage = settings.bspline
    ones = [[1, 1, 1] for _ in stage.schedule]
    return _common(stage, settings) | {
        "Registration": ["MultiMetricMultiResolutionRegistration"],
        "Metric": ["AdvancedMattesMutualInformation", "TransformBendingEnergyPenalty"],
        "Metric0Weight": ["1"],
        "Metric1Weight": [_number(settings.bending_weight)],
        "Transform": ["BSplineTransform"],
        # elastix's faster step-size estimation; its default ("Original", kept for the rigid
        # stage) spends most of a 10 mm B-spline registration computing Jacobian terms, for
        # the same result.
        "ASGDParameterEstimationMethod": ["DisplacementDistribution"],
        "FinalGridSpacingInPhysicalUnits": [_number(settings.grid_spacing_mm)],
        "ImageSampler": ["RandomCoordinate"],
        "FixedImagePyramid": ["FixedGenericImagePyramid"],
        "MovingImagePyramid": ["MovingGenericImagePyramid"],
        "FixedImagePyramidRescaleSchedule": _flat(ones),
        "MovingImagePyramidRescaleSchedule": _flat(ones),
        "FixedImagePyramidSmoothingSchedule": _sigmas(stage.schedule, fixed_spacing),
        "MovingImagePyramidSmoothingSchedule": _sigmas(stage.schedule, moving_spacing),
    }


def _sigmas(schedule: Sequence[Sequence[float]], spacing: Sequence[float]) -> list[str]:
    """elastix's smoothing-pyramid convention in mm: sigma = 0.5 x factor x voxel spacing."""
    return [f"{0.5 * factor * step:.4g}" for level in schedule
            for factor, step in zip(level, spacing)]


def parameter_maps(
    settings: Settings, fixed_spacing: Sequence[float], moving_spacing: Sequence[float],
    prealigned: bool = False,
) -> list[ParameterMap]:
    """Both stages, in the order elastix runs them. Spacings are (x, y, z) in mm."""
    return [rigid_map(settings, prealigned), bspline_map(settings, fixed_spacing, moving_spacing)]


def for_labels(transform_maps: Sequence[dict[str, Sequence[str]]]) -> list[ParameterMap]:
    """Result transform maps edited to carry a label image: nearest neighbour, integer output."""
    edited = []
    for parameter_map in transform_maps:
        copy = {key: list(values) for key, values in parameter_map.items()}
        copy["FinalBSplineInterpolationOrder"] = ["0"]
        copy["ResultImagePixelType"] = ["unsigned char"]
        copy["DefaultPixelValue"] = ["0"]
        edited.append(copy)
    return edited
