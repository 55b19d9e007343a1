"""What moves between the two scans of a patient, and the true mapping it leaves.

The nCECT (and its SPECT) samples the anatomy through a backward map from its world point q
to the CECT world point

    T(q) = D(R(q + f))

- f, the frame offset: the two scanners' world coordinates are unrelated (DICOM fixes the
  axes, not the origin), so the nCECT's origin is moved by a random offset and another table
  height;
- R, patient repositioning: a rotation about a point in the liver and a translation;
- D, the organs' motion: breathing shifts the liver and its neighbours cranio-caudally (and a
  little antero-posteriorly), fading into the chest, down the abdomen, towards the body wall
  and near the spine, which stays put; plus a smooth random deformation of a few mm.

T, sampled on a 4 mm grid over the nCECT's field of view, is the truth registration is scored
against (`true_field`, `liverbench.layout.TRUTH_FILE`). Parameters and their sources:
docs/phantom.md. No draw is conditioned on the result (no rescaling loop), so the breathing
shifts follow the stated distribution exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from liverbench.data.phantom.acquisition import Geometry
from liverbench.data.phantom.anatomy import Anatomy
from liverbench.data.phantom.shapes import Grid, SmoothField, smoothstep
from liverbench.data.preprocess import mask_centroid

FRAME_OFFSET_MM = np.array([50.0, 50.0, 300.0])  # uniform in +- this, per axis (y: table)
ROTATION_DEG = 5.0  # uniform in +- this about each axis
TRANSLATION_MM = 20.0  # uniform in +- this along each axis
BREATHING_MM = (11.0, 8.0)  # mean and SD of the cranial shift of the liver in the nCECT
BREATHING_RANGE_MM = (-13.0, 35.0)  # the mean +- 3 SD: draws beyond are clipped
AP_RATIO = (0.3, 0.7)  # posterior shift per mm of cranial shift
RANDOM_MM = (1.5, 3.5)  # amplitude of the smooth random deformation
RANDOM_WAVELENGTH_MM = (80.0, 140.0)
TRUTH_SPACING_MM = 4.0
DEFORMATION_SPACING_MM = 8.0  # the grid D is defined on
TRUTH_STEPS_PER_MM = 256  # the truth is stored rounded to 1/256 mm


@dataclass(frozen=True)
class Motion:
    """The backward map nCECT world -> CECT world and its parts."""

    transform: sitk.Transform  # T = D o R o f, the whole map
    frame_mm: np.ndarray  # f (x, y, z)
    rigid: sitk.Euler3DTransform  # R
    breathing_mm: float  # cranial shift of the organs in the nCECT (negative: caudal)
    breathing_ap_mm: float  # posterior shift with it

    def ncect_point(self, cect_point) -> np.ndarray:
        """Where a CECT world point that does not breathe lies in the nCECT world."""
        inverse = self.rigid.GetInverse()
        return np.array(inverse.TransformPoint([float(c) for c in cect_point])) - self.frame_mm

    def record(self) -> dict[str, float | list[float]]:
        """The drawn parameters, for the patient's truth record."""
        return {
            "frame_offset_mm": self.frame_mm.tolist(),
            "rotation_deg": np.rad2deg(self.rigid.GetParameters()[:3]).tolist(),
            "translation_mm": list(self.rigid.GetTranslation()),
            "rotation_centre_mm": list(self.rigid.GetCenter()),
            "breathing_mm": self.breathing_mm,
            "breathing_ap_mm": self.breathing_ap_mm,
        }


def sample_frame(rng: np.random.Generator) -> np.ndarray:
    """The nCECT scanner's world origin relative to the CECT's (mm, 0.1 mm steps)."""
    return np.round(rng.uniform(-FRAME_OFFSET_MM, FRAME_OFFSET_MM), 1)


def sample_breathing(rng: np.random.Generator) -> float:
    """Cranial shift of the liver in the free-breathing nCECT against the breath-hold CECT."""
    return float(np.clip(rng.normal(*BREATHING_MM), *BREATHING_RANGE_MM))


def sample_motion(
    rng: np.random.Generator,
    anatomy: Anatomy,
    offset: np.ndarray,
    grid: Grid,
    frame_mm: np.ndarray,
    breathing_mm: float | None = None,
) -> Motion:
    """Repositioning and organ motion of one patient. `offset` maps body to CECT world
    coordinates, `grid` (body coordinates) is where the deformation must be defined.
    `breathing_mm` replaces the drawn breathing shift (every other draw stays the same)."""
    centre = offset + np.array([*anatomy.liver.centre[:2], anatomy.liver_centre_z])
    draw = MotionDraw.sample(rng, breathing_mm)
    lo = np.array(grid.origin) - 30.0
    hi = lo + np.array(grid.spacing) * np.array(grid.shape[::-1]) + 60.0
    coarse = Grid.covering(lo, hi, DEFORMATION_SPACING_MM)
    moves, body = _breathing_weight(anatomy, coarse, draw.breathing_mm)
    return draw.motion(centre, frame_mm, deformation(draw, coarse, offset, moves, body))


@dataclass(frozen=True)
class MotionDraw:
    """The drawn parameters of a patient's motion, before they meet an anatomy: shared by
    the phantom and the derived cohort (`liverbench.data.derive`), which differ only in
    where breathing applies (`moves`) and where the body is."""

    rotation_rad: list[float]  # about x, y, z
    translation_mm: list[float]
    breathing_mm: float  # cranial shift of the organs in the nCECT
    breathing_ap_mm: float  # posterior shift with it
    random_mm: float  # amplitude of the smooth random deformation
    fields: list[SmoothField]  # one per axis (x, y, z), unit RMS

    @classmethod
    def sample(cls, rng: np.random.Generator, breathing_mm: float | None = None) -> MotionDraw:
        """Draw in a fixed order; `breathing_mm` replaces the drawn shift (all else stays)."""
        u = rng.uniform
        rotation = np.deg2rad(u(-ROTATION_DEG, ROTATION_DEG, 3)).tolist()
        translation = u(-TRANSLATION_MM, TRANSLATION_MM, 3).tolist()
        drawn = sample_breathing(rng)
        breathing = drawn if breathing_mm is None else float(breathing_mm)
        ap = breathing * u(*AP_RATIO)
        random_mm = u(*RANDOM_MM)
        fields = [SmoothField.random(rng, u(*RANDOM_WAVELENGTH_MM)) for _ in range(3)]
        return cls(rotation, translation, breathing, ap, random_mm, fields)

    def motion(
        self, centre: np.ndarray, frame_mm: np.ndarray, deformation: sitk.Transform
    ) -> Motion:
        """T = D o R o f, with R rotating about `centre` (CECT world, a point in the liver)."""
        rigid = sitk.Euler3DTransform()
        rigid.SetCenter(np.asarray(centre, float).tolist())
        rigid.SetRotation(*self.rotation_rad)
        rigid.SetTranslation(self.translation_mm)
        frame = sitk.TranslationTransform(3, [float(f) for f in frame_mm])
        transform = sitk.CompositeTransform(3)
        transform.AddTransform(deformation)
        transform.AddTransform(rigid)
        transform.AddTransform(frame)  # the last added is applied first
        return Motion(
            transform, np.asarray(frame_mm, float), rigid, self.breathing_mm, self.breathing_ap_mm
        )


def _breathing_weight(anatomy: Anatomy, coarse: Grid, breathing: float):
    """Where breathing applies (0-1) on `coarse` (body coordinates), and the body (0-1):
    fading away from the liver's height, towards the body wall and near the spine and back
    muscles, and out of the body."""
    full = coarse.full()
    x, y, z = full.x, full.y, full.z
    top = anatomy.diaphragm.right[2] + breathing  # the dome in the nCECT
    along = breathing_along(z, top, anatomy.liver_z[0] + breathing)
    level = anatomy.body.level(x, y, z)
    body = smoothstep(1.4, 1.0, level)  # 1 inside the body, 0 well outside
    across = 0.3 + 0.7 * smoothstep(1.0, 0.5, level)
    spine = anatomy.spine
    held = spine_hold(x, y, 0.0, spine.y, max(spine.radii))
    moves = along * across * (1.0 - held) * body
    return moves, body


def breathing_along(z, top: float, bottom: float) -> np.ndarray:
    """How much breathing moves a height z (mm): 1 from the liver's lower edge `bottom` to
    the dome `top` (both where they are in the nCECT), fading over ~90 mm into the chest and
    ~100 mm down the abdomen."""
    return np.where(
        z > top,
        np.exp(-(((z - top) / 90.0) ** 2)),
        np.where(z < bottom, np.exp(-(((bottom - z) / 100.0) ** 2)), 1.0),
    )


def spine_hold(x, y, spine_x, spine_y, spine_radius: float) -> np.ndarray:
    """Where the skeleton holds tissue still (1) against breathing: within 30 mm of the
    vertebral body (centre `spine_x`, `spine_y`, radius `spine_radius`) and behind it, in the
    back muscles."""
    near = smoothstep(spine_radius + 30.0, spine_radius, np.hypot(x - spine_x, y - spine_y))
    behind = smoothstep(spine_y - 15.0, spine_y + 15.0, y) * smoothstep(
        80.0, 55.0, np.abs(x - spine_x)
    )
    return np.maximum(near, behind)


def deformation(
    draw: MotionDraw, coarse: Grid, offset, moves: np.ndarray, body: np.ndarray
) -> sitk.Transform:
    """D: breathing where `moves` says (cranio-caudal, with its posterior part) plus the
    random field, which fades out of the `body`; on `coarse` (shifted by `offset` into the
    CECT world), as a displacement field transform."""
    full = coarse.full()
    displacement = np.zeros(coarse.shape + (3,), np.float64)
    displacement[..., 1] = -draw.breathing_ap_mm * moves
    displacement[..., 2] = -draw.breathing_mm * moves
    for axis, f in enumerate(draw.fields):
        displacement[..., axis] += draw.random_mm * f(full.x, full.y, full.z) * body
    image = sitk.GetImageFromArray(displacement, isVector=True)
    image.SetOrigin((np.array(coarse.origin) + offset).tolist())
    image.SetSpacing(coarse.spacing)
    return sitk.DisplacementFieldTransform(image)


def true_field(motion: Motion, geometry: Geometry) -> sitk.Image:
    """The truth: d(q) = T(q) - q (mm, float32 x, y, z) on a TRUTH_SPACING_MM grid over the
    nCECT field of view `geometry` (its first voxel is the grid's origin), in the nCECT
    world frame."""
    size, spacing, origin = geometry
    extent = (np.array(size) - 1) * np.array(spacing)
    shape = [int(n) for n in np.ceil(extent / TRUTH_SPACING_MM).astype(int) + 1]
    field = sitk.TransformToDisplacementField(
        motion.transform,
        sitk.sitkVectorFloat64,
        shape,
        [float(o) for o in origin],
        [TRUTH_SPACING_MM] * 3,
        np.eye(3).ravel().tolist(),
    )
    # steps of 1/256 mm: exact in float32, and the zeroed low bits let gzip halve the file
    steps = np.round(sitk.GetArrayViewFromImage(field) * TRUTH_STEPS_PER_MM) / TRUTH_STEPS_PER_MM
    out = sitk.GetImageFromArray(steps.astype(np.float32), isVector=True)
    out.CopyInformation(field)
    return out


def rigid_part(record: dict) -> sitk.Transform:
    """The rigid part of the truth, frame offset then repositioning, from a truth record
    (`Motion.record`): what an ideal rigid alignment finds; nCECT world -> CECT world."""
    euler = sitk.Euler3DTransform()
    euler.SetCenter([float(c) for c in record["rotation_centre_mm"]])
    euler.SetRotation(*(float(a) for a in np.deg2rad(record["rotation_deg"])))
    euler.SetTranslation([float(t) for t in record["translation_mm"]])
    frame = sitk.TranslationTransform(3, [float(f) for f in record["frame_offset_mm"]])
    return sitk.CompositeTransform([euler, frame])  # the frame first


def liver_shift(record: dict, cect_liver: sitk.Image, ncect_liver: sitk.Image) -> np.ndarray:
    """How far the liver moved relative to the patient's skeleton (mm, x, y, z; z > 0:
    cranially in the nCECT): its nCECT centroid carried back by the rigid part of the truth,
    minus its CECT centroid. What a deformable registration must find beyond a rigid one."""
    back = rigid_part(record).TransformPoint(mask_centroid(ncect_liver).tolist())
    return np.array(back) - mask_centroid(cect_liver)
