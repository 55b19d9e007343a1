"""A random, smooth, plausible upper-abdomen anatomy, rasterised as a label volume.

The anatomy lives in *body coordinates* (mm, LPS: x to the patient's left, y posterior,
z superior): the body axis is x = y = 0 and the top of the right diaphragm dome is z = 0.
Every organ is an analytic shape (ellipsoids, tubes, a smoothly deformed union of ellipsoids
for the liver) drawn from the patient's random generator, so one anatomy can be rasterised
at any resolution and every acquisition samples the same patient.

Positions scale with the body's size; the liver's shape, size and position vary per patient
and its volume is set to a drawn target (1.15-1.95 L) by bisection on its scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from scipy import ndimage

from liverbench.data.phantom.shapes import (
    Block,
    Capsule,
    Ellipsoid,
    Grid,
    SmoothField,
    paint,
    rotation,
    sample_linear,
    smooth_min,
    smooth_noise,
    smoothstep,
)


class Label(IntEnum):
    """Tissue classes of the label volume (uint8). Tumour k has TUMOUR + k, its rim RIM + k."""

    AIR = 0
    FAT = 1  # subcutaneous
    MUSCLE = 2
    VISCERAL_FAT = 3  # intra-abdominal and mediastinal fat
    LUNG = 4
    LIVER = 5
    PORTAL_BRANCH = 6  # intrahepatic portal veins
    HEPATIC_VEIN = 7
    GALLBLADDER = 8
    IVC = 9
    AORTA = 10
    PORTAL_VEIN = 11  # extrahepatic portal, splenic and mesenteric veins
    SPLEEN = 12
    KIDNEY_CORTEX = 13
    KIDNEY_MEDULLA = 14
    STOMACH_WALL = 15
    STOMACH_FLUID = 16
    GAS = 17
    BOWEL = 18
    PANCREAS = 19
    BONE_CORTEX = 20
    BONE_MARROW = 21
    RIB = 22
    CARTILAGE = 23
    DISC = 24
    CSF = 25
    MYOCARDIUM = 26
    HEART_BLOOD = 27
    TUMOUR = 40  # 40, 41, 42
    RIM = 44  # 44, 45, 46


MAX_TUMOURS = 3
TUMOUR_LABELS = tuple(range(Label.TUMOUR, Label.TUMOUR + MAX_TUMOURS)) + tuple(
    range(Label.RIM, Label.RIM + MAX_TUMOURS)
)
LIVER_LABELS = (Label.LIVER, Label.PORTAL_BRANCH, Label.HEPATIC_VEIN) + TUMOUR_LABELS
"""Labels that make the liver mask: parenchyma, intrahepatic vessels and tumours."""

BONE_LABELS = (Label.BONE_CORTEX, Label.BONE_MARROW, Label.RIB, Label.DISC, Label.CSF)
SOFT = (Label.VISCERAL_FAT, Label.BOWEL, Label.GAS, Label.MUSCLE)
NOT_BONE = tuple(int(v) for v in Label if v not in BONE_LABELS and v != Label.AIR)


@dataclass(frozen=True)
class Body:
    """Body outline: a superellipse cross-section (flatter at the back), varying along z."""

    half_width: float  # a, left-right (mm)
    half_depth: float  # b, antero-posterior (mm)
    fat: float  # subcutaneous fat thickness (mm)
    muscle: float  # abdominal wall muscle thickness (mm)
    power_front: float
    power_back: float
    wave: tuple[float, float, float]  # relative amplitude of a, b variation; its wavelength

    def radii(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        wa, wb, wavelength = self.wave
        a = self.half_width * (1 + wa * np.sin(2 * np.pi * z / wavelength))
        a = a + 0.02 * self.half_width * smoothstep(-170.0, -260.0, z)  # hips
        b = self.half_depth * (1 + wb * np.sin(2 * np.pi * z / wavelength + 1.0))
        b = b + 0.04 * self.half_depth * smoothstep(-20.0, 60.0, z)  # chest
        return a.astype(np.float32), b.astype(np.float32)

    def level(self, x, y, z, inset: float = 0.0) -> np.ndarray:
        """< 1 inside the outline shrunk by `inset` mm (fat: inset 0, cavity: fat + muscle).

        Written as |x|^p * (a - inset)^-p + ... so that on a grid block only one product
        and one sum touch the full 3-D array.
        """
        a, b = self.radii(z)
        power = np.where(y > 0, self.power_back, self.power_front).astype(np.float32)
        x_term = np.abs(x) ** power * (a - inset) ** -power
        return x_term + (np.abs(y) / (b - inset)) ** power

    @property
    def cavity_inset(self) -> float:
        return self.fat + self.muscle


@dataclass(frozen=True)
class Diaphragm:
    """Two domes (the right one higher); below is the abdomen, above the thorax."""

    right: tuple[float, float, float]  # apex x, y, z
    left: tuple[float, float, float]
    width: float  # lateral half-width of a dome (mm)
    depth_front: float
    depth_back: float
    drop: float  # how far a dome falls at its rim (mm)

    def height(self, x, y) -> np.ndarray:
        domes = []
        for ax, ay, az in (self.right, self.left):
            depth = np.where(y > ay, self.depth_back, self.depth_front)
            r2 = ((x - ax) / self.width) ** 2 + ((y - ay) / depth) ** 2
            domes.append(-(az - self.drop * r2**1.4))
        return -smooth_min(domes, 8.0)


@dataclass(frozen=True)
class LiverShape:
    """A smoothly deformed union of ellipsoids in the liver's own frame (centre 0, mm),
    cut below by a tilted plane: the visceral surface, rising towards the left lobe."""

    parts: tuple[Ellipsoid, ...]
    warp: tuple[SmoothField, SmoothField, SmoothField]
    warp_mm: float
    floor: tuple[float, float, float]  # z = z0 + a x + b y: the inferior cut

    def distance(self, u, v, w) -> np.ndarray:
        """Approximate signed distance (mm, negative inside)."""
        du, dv, dw = (self.warp_mm * f(u, v, w) for f in self.warp)
        u, v, w = u + du, v + dv, w + dw
        blob = smooth_min([part.distance(u, v, w) for part in self.parts], 10.0)
        z0, a, b = self.floor
        below = (z0 + a * u + b * v - w) / float(np.sqrt(1 + a * a + b * b))
        return -smooth_min([-blob, -below], 8.0)

    def sampled(self, spacing: float = 3.0) -> tuple[np.ndarray, Grid]:
        margin = 3.0 * self.warp_mm + 10.0 * np.log(len(self.parts)) + 2 * spacing
        lows, highs = zip(*(p.bounds(margin) for p in self.parts))
        grid = Grid.covering(np.min(lows, axis=0), np.max(highs, axis=0), spacing)
        full = grid.full()
        return self.distance(full.x, full.y, full.z).astype(np.float32), grid


@dataclass(frozen=True)
class Liver:
    """The liver placed in the body: its shape's distance map, scaled about `centre`.

    The distance is stored on a coarse grid and interpolated linearly: the map is smooth,
    so the surface stays accurate to a fraction of a millimetre at a fraction of the cost.
    """

    centre: np.ndarray
    scale: float
    sdf: np.ndarray
    sdf_grid: Grid  # in body coordinates

    def distance(self, block: Block) -> np.ndarray:
        return sample_linear(self.sdf, self.sdf_grid, block)

    def local(self, offset) -> np.ndarray:
        """A point given in the liver's unscaled frame, in body coordinates."""
        return self.centre + self.scale * np.asarray(offset, float)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        g = self.sdf_grid
        lo = np.array(g.origin)
        return lo, lo + np.array(g.spacing) * (np.array(g.shape[::-1]) - 1)


@dataclass(frozen=True)
class Tumour:
    shape: Ellipsoid
    rim_mm: float  # 0: homogeneous; > 0: an enhancing rim around a necrotic core
    lobes: SmoothField


@dataclass(frozen=True)
class Spine:
    y: float  # vertebral body centre (x = 0)
    radii: tuple[float, float]
    pitch: float
    phase: float


@dataclass(frozen=True)
class Ribs:
    z0: float  # height of the lowest rib at the back
    pitch: float
    width: float
    drop: float  # how much lower the front ends are than the back


@dataclass
class Anatomy:
    """Everything that defines one patient; `rasterise` turns it into labels."""

    body: Body
    diaphragm: Diaphragm
    spine: Spine
    ribs: Ribs
    liver: Liver | None = None
    liver_z: tuple[float, float] = (0.0, 0.0)  # craniocaudal extent of the liver
    organs: dict[str, Ellipsoid] = field(default_factory=dict)
    vessels: list[tuple[Label, Capsule]] = field(default_factory=list)
    portal_trunk: Capsule | None = None  # painted over the liver at the hilum
    liver_vessels: list[tuple[Label, Capsule]] = field(default_factory=list)
    pancreas: list[Capsule] = field(default_factory=list)
    tumours: list[Tumour] = field(default_factory=list)
    bowel: tuple[np.ndarray, np.ndarray, Grid] | None = None  # loops and gas fields
    stomach_air: float = 0.0  # air-fluid level, y in body coordinates

    @property
    def liver_centre_z(self) -> float:
        return 0.5 * (self.liver_z[0] + self.liver_z[1])

    def bounds(self, margin: float = 6.0, below: float = 195.0, above: float = 225.0):
        """Box (x, y, z) that holds the body over the scanned ranges around the liver.

        The nCECT sees the patient shifted up by breathing and repositioning, so the box
        reaches further up than down."""
        a = self.body.half_width * (1.05 + self.body.wave[0])
        b = self.body.half_depth * (1.04 + self.body.wave[1])
        z = self.liver_centre_z
        return (
            np.array([-a - margin, -b - margin, z - below]),
            np.array([a + margin, b + margin, z + above]),
        )

    def abdomen(self, x, y, z) -> np.ndarray:
        """Inside the abdominal cavity, under the diaphragm muscle."""
        below = z < self.diaphragm.height(x, y) - 5.0
        return below & (self.body.level(x, y, z, self.body.cavity_inset) < 1)


# --------------------------------------------------------------------------- sampling


def sample_anatomy(rng: np.random.Generator, liver_litres: float | None = None) -> Anatomy:
    """Draw one patient. The liver volume target is drawn in [1.15, 1.95] L unless given."""
    u = rng.uniform
    body = Body(
        half_width=u(124.0, 138.0),
        half_depth=u(95.0, 120.0),
        fat=u(6.0, 22.0),
        muscle=u(7.0, 11.0),
        power_front=u(2.0, 2.4),
        power_back=u(2.8, 3.6),
        wave=(u(0.0, 0.025), u(0.0, 0.03), u(250, 500)),
    )
    a_c = body.half_width - body.cavity_inset
    b_c = body.half_depth - body.cavity_inset
    diaphragm = Diaphragm(
        right=(-0.42 * a_c + u(-6, 6), u(-0.1, 0.1) * b_c, 0.0),
        left=(0.45 * a_c + u(-6, 6), u(-0.1, 0.1) * b_c, -u(8, 22)),
        width=0.62 * a_c,
        depth_front=1.1 * b_c,
        depth_back=0.75 * b_c,
        drop=u(60.0, 85.0),
    )
    spine = Spine(
        y=body.half_depth - u(62.0, 70.0),
        radii=(u(19.0, 24.0), u(15.0, 19.0)),
        pitch=u(30.0, 36.0),
        phase=u(0, 36.0),
    )
    ribs = Ribs(z0=-u(135.0, 165.0), pitch=u(24.0, 30.0), width=u(8.0, 10.0), drop=u(60, 90))
    anatomy = Anatomy(body, diaphragm, spine, ribs)
    _place_kidneys(rng, anatomy)
    shape = _sample_liver_shape(rng)
    target = liver_litres if liver_litres is not None else u(1.15, 1.95)
    mask, grid = _fit_liver(anatomy, shape, target, gap=u(-4.0, 10.0), shift=u(-10.0, 5.0))
    _place_organs(rng, anatomy)
    _place_vessels(rng, anatomy)
    _place_tumours(rng, anatomy, mask, grid)
    _make_bowel(rng, anatomy)
    stomach = anatomy.organs["stomach"]
    anatomy.stomach_air = stomach.centre[1] + u(-0.6, 0.2) * stomach.radii[1]
    return anatomy


def _sample_liver_shape(rng: np.random.Generator) -> LiverShape:
    """A liver-like union: right lobe, medial segment, thin left lobe, inferior right tip."""
    u = rng.uniform

    def jitter(spread: float, n: int = 3) -> np.ndarray:
        return u(1 - spread, 1 + spread, n)

    parts = (
        Ellipsoid(np.array([-20.0, 8.0, 5.0]), np.array([60.0, 70.0, 56.0]) * jitter(0.1)),
        Ellipsoid(np.array([14.0, -8.0, 10.0]), np.array([40.0, 52.0, 42.0]) * jitter(0.1)),
        Ellipsoid(
            np.array([44.0, -34.0, 20.0]) * jitter(0.1),
            np.array([42.0, 22.0, 26.0]) * jitter(0.15),
            rotation(u(-0.2, 0.2), u(-0.4, 0.0), u(-0.5, -0.1)),
        ),
        Ellipsoid(
            np.array([-35.0, 12.0, -40.0]) * jitter(0.1),
            np.array([38.0, 42.0, 32.0]) * jitter(0.15),
            rotation(0.0, u(-0.3, 0.3), 0.0),
        ),
    )
    warp = tuple(SmoothField.random(rng, u(90.0, 150.0)) for _ in range(3))
    floor = (u(-55.0, -40.0), u(0.4, 0.7), u(-0.2, 0.2))
    return LiverShape(parts, warp, u(5.0, 10.0), floor)


def _liver_clip(anatomy: Anatomy, x, y, z) -> np.ndarray:
    """Where the liver may be: inside the cavity, under the diaphragm, off spine and kidneys."""
    spine = anatomy.spine
    inside = anatomy.body.level(x, y, z, anatomy.body.cavity_inset + 1.0) < 1
    inside &= z < anatomy.diaphragm.height(x, y) - 5.0
    inside &= (x / 38.0) ** 2 + ((y - spine.y - 15.0) / 40.0) ** 2 > 1
    for side in ("right_kidney", "left_kidney"):
        inside &= anatomy.organs[side].level(x, y, z) > 1
    return inside


MAX_LIVER_HEIGHT_MM = 180.0
"""Taller livers would not fit the scanned ranges with margin; their volume target shrinks."""


def _fit_liver(anatomy: Anatomy, shape: LiverShape, litres: float, gap: float, shift: float):
    """Scale and place the liver so that its clipped volume is `litres`.

    The shape is sampled once on a 3 mm grid of its own frame; for a scale s the liver is
    {centre(s) + s q : d(q) < 0}, clipped in body coordinates, so each bisection step only
    re-clips the inside points. The right lobe is pushed against the right abdominal wall
    (`gap` mm away) and its top just above the right dome, which then moulds it. A liver
    taller than MAX_LIVER_HEIGHT_MM gets a smaller target. Returns the clipped liver mask on
    the liver's sampling grid and that grid.
    """
    sdf, q_grid = shape.sampled()
    q = np.stack(np.nonzero(sdf < 0)[::-1], axis=1) * q_grid.spacing[0] + q_grid.origin
    a_c = anatomy.body.radii(np.float32(-60.0))[0] - anatomy.body.cavity_inset

    def place(scale: float) -> np.ndarray:
        return np.array(
            [
                -a_c + gap - scale * q[:, 0].min(),
                shift,
                anatomy.diaphragm.right[2] + 8.0 - scale * q[:, 2].max(),
            ]
        )

    def clipped(scale: float) -> np.ndarray:
        p = place(scale) + scale * q
        return p[_liver_clip(anatomy, p[:, 0], p[:, 1], p[:, 2])]

    for _ in range(8):
        low, high = 0.6, 1.5
        for _ in range(10):
            scale = 0.5 * (low + high)
            volume = len(clipped(scale)) * (scale * q_grid.spacing[0]) ** 3 / 1e6
            low, high = (scale, high) if volume < litres else (low, scale)
        scale = 0.5 * (low + high)
        heights = clipped(scale)[:, 2]
        if heights.max() - heights.min() <= MAX_LIVER_HEIGHT_MM:
            break
        litres *= 0.94
    centre = place(scale)
    body_grid = Grid(
        tuple((centre + scale * np.array(q_grid.origin)).tolist()),
        (scale * q_grid.spacing[0],) * 3,
        q_grid.shape,
    )
    anatomy.liver = Liver(centre, scale, sdf, body_grid)
    mask, _ = liver_mask(anatomy)
    zs = body_grid.axis(2)[np.flatnonzero(mask.any(axis=(1, 2)))]
    anatomy.liver_z = (float(zs.min()), float(zs.max()))
    return mask, body_grid


def liver_mask(anatomy: Anatomy) -> tuple[np.ndarray, Grid]:
    """The liver on its coarse (~3 mm) sampling grid, body coordinates: for quick estimates."""
    grid = anatomy.liver.sdf_grid
    full = grid.full()
    return (anatomy.liver.sdf < 0) & _liver_clip(anatomy, full.x, full.y, full.z), grid


def _place_kidneys(rng: np.random.Generator, anatomy: Anatomy) -> None:
    u = rng.uniform
    z_right = -u(115.0, 135.0)
    for side, sign, dz in (("right_kidney", -1, 0.0), ("left_kidney", 1, u(10, 25))):
        anatomy.organs[side] = Ellipsoid(
            np.array([sign * u(62, 72), anatomy.spine.y + u(-2, 8), z_right + dz]),
            np.array([24.0, 27.0, 52.0]) * u(0.9, 1.1),
            rotation(0.0, sign * u(0.1, 0.25), -sign * u(0.3, 0.6)),
        )


def _place_organs(rng: np.random.Generator, anatomy: Anatomy) -> None:
    body, liver, diaphragm = anatomy.body, anatomy.liver, anatomy.diaphragm
    a_c = body.half_width - body.cavity_inset
    b_c = body.half_depth - body.cavity_inset
    z_left = diaphragm.left[2]
    u = rng.uniform
    organs = anatomy.organs
    organs["spleen"] = Ellipsoid(
        np.array([0.62 * a_c + u(-5, 5), 0.45 * b_c + u(-5, 5), z_left - u(40, 55)]),
        np.array([20.0, 50.0, 45.0]) * u(0.85, 1.15),
        rotation(u(-0.2, 0.2), 0.0, u(0.5, 0.8)),
    )
    organs["stomach"] = Ellipsoid(
        np.array([0.5 * a_c + u(-6, 6), -0.15 * b_c + u(-6, 6), z_left - u(50, 65)]),
        np.array([36.0, 30.0, 58.0]) * u(0.8, 1.15),
        rotation(u(-0.2, 0.2), u(-0.5, -0.2), u(-0.2, 0.2)),
    )
    z_heart = 0.5 * (diaphragm.right[2] + z_left) + u(35, 45)
    organs["heart"] = Ellipsoid(
        np.array([0.15 * a_c + 6 + u(-6, 6), -0.35 * b_c + u(-6, 6), z_heart]),
        np.array([56.0, 45.0, 50.0]) * u(0.9, 1.1),
        rotation(0.0, u(0.2, 0.4), u(0.5, 0.8)),
    )
    organs["gallbladder"] = Ellipsoid(
        liver.local([-8 + u(-8, 8), -40 + u(-6, 6), -45 + u(-8, 8)]),
        np.array([14.0, 15.0, 36.0]) * u(0.8, 1.15),
        rotation(u(0.5, 0.9), u(-0.3, 0.1), 0.0),
    )


def _place_vessels(rng: np.random.Generator, anatomy: Anatomy) -> None:
    """IVC, aorta, portal/splenic/mesenteric veins; portal and hepatic trees in the liver."""
    liver, spine = anatomy.liver, anatomy.spine
    u = rng.uniform
    lo, hi = anatomy.bounds(margin=0.0, below=240.0, above=240.0)
    ivc = np.array([-24.0 + u(-4, 4), spine.y - 28 + u(-4, 4)])
    aorta = np.array([16.0 + u(-4, 4), spine.y - 30 + u(-3, 3)])
    z_atrium = anatomy.organs["heart"].centre[2] - 20
    r_ao = u(9.0, 12.0)
    anatomy.vessels += [
        (Label.IVC, Capsule(np.r_[ivc, lo[2]], np.r_[ivc, z_atrium], 11.0, 12.0)),
        (Label.AORTA, Capsule(np.r_[aorta, lo[2]], np.r_[aorta, hi[2]], r_ao, r_ao)),
    ]
    hilum = liver.local([12 + u(-5, 5), 8 + u(-5, 5), -28 + u(-5, 5)])
    confluence = hilum + np.array([u(20, 35), u(15, 25), -u(35, 50)])
    splenic_end = anatomy.organs["spleen"].centre + np.array([-15.0, -20.0, -10.0])
    mid = 0.5 * (confluence + splenic_end) + np.array([0, 12.0, 5.0])
    anatomy.portal_trunk = Capsule(confluence, hilum, 7.0, 7.5)
    anatomy.vessels += [
        (Label.PORTAL_VEIN, anatomy.portal_trunk),
        (Label.PORTAL_VEIN, Capsule(confluence, mid, 4.5, 4.5)),
        (Label.PORTAL_VEIN, Capsule(mid, splenic_end, 4.5, 4.0)),
        (Label.PORTAL_VEIN, Capsule(confluence, confluence + [5, -15, -160], 6.0, 4.0)),
    ]
    head = confluence + np.array([-25.0, -10.0, -15.0])
    neck = confluence + np.array([10.0, -18.0, 5.0])
    radius = u(9.0, 13.0)
    anatomy.pancreas = [
        Capsule(head, neck, radius * 1.3, radius),
        Capsule(neck, splenic_end + [-5, -8, -5], radius, radius * 0.7),
    ]
    trees = []
    for target in ([-55, 15, 5], [45, -28, 20], [-40, 20, -35], [5, -40, -10]):
        end = liver.local(np.asarray(target, float) + rng.normal(0, 6, 3))
        trees += _branches(rng, hilum, end, 5.5, 3, Label.PORTAL_BRANCH)
    ivc_top = np.r_[ivc, anatomy.diaphragm.height(ivc[0], ivc[1]) - 18.0]
    for target in ([-60, 0, -15], [-5, -45, -30], [38, -32, 5]):
        end = liver.local(np.asarray(target, float) + rng.normal(0, 6, 3))
        trees += _branches(rng, ivc_top, end, 6.0, 3, Label.HEPATIC_VEIN)
    anatomy.liver_vessels = trees


def _branches(rng, start, end, radius, depth, label) -> list[tuple[Label, Capsule]]:
    """A random binary vessel tree from `start` towards `end`, thinning at each split."""
    segments = [(label, Capsule(start, end, radius, radius * 0.8))]
    if depth <= 1:
        return segments
    direction = end - start
    for sign in (-1, 1):
        axis = np.cross(direction, rng.normal(size=3))
        axis /= np.linalg.norm(axis) + 1e-9
        turned = _rotate(direction, axis, sign * rng.uniform(0.35, 0.7))
        child_end = end + turned * rng.uniform(0.55, 0.8)
        segments += _branches(rng, end, child_end, radius * 0.7, depth - 1, label)
    return segments


def _rotate(vector: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation of `vector` about the unit `axis`."""
    return (
        vector * np.cos(angle)
        + np.cross(axis, vector) * np.sin(angle)
        + axis * (axis @ vector) * (1 - np.cos(angle))
    )


def _place_tumours(rng: np.random.Generator, anatomy: Anatomy, mask, grid: Grid) -> None:
    """0-3 tumours of 1-5 cm diameter, centred deep enough in the liver to stay mostly in it."""
    count = int(rng.choice(MAX_TUMOURS + 1, p=[0.1, 0.35, 0.35, 0.2]))
    depth = ndimage.distance_transform_edt(mask) * grid.spacing[0]
    for _ in range(count):
        radius = rng.uniform(5.0, 25.0)
        candidates = np.argwhere(depth > min(0.7 * radius + 4.0, depth.max() * 0.8))
        k, j, i = candidates[rng.integers(len(candidates))]
        centre = np.array([grid.axis(0)[i], grid.axis(1)[j], grid.axis(2)[k]], float)
        shape = Ellipsoid(
            centre, radius * rng.uniform(0.85, 1.15, 3), rotation(*rng.uniform(0, np.pi, 3))
        )
        rim = rng.uniform(2.5, 4.5) if radius > 12 and rng.random() < 0.5 else 0.0
        anatomy.tumours.append(Tumour(shape, rim, SmoothField.random(rng, radius * 1.5)))


def _make_bowel(rng: np.random.Generator, anatomy: Anatomy) -> None:
    """Random fields whose level sets make bowel loops and the gas pockets in them."""
    lo, hi = anatomy.bounds(below=240.0)
    hi[2] = anatomy.liver_z[0] + 50.0
    grid = Grid.covering(lo, hi, 5.0)
    loops = smooth_noise(rng, grid, 6.0)
    gas = smooth_noise(rng, grid, 4.0)
    anatomy.bowel = (loops, gas, grid)


# ------------------------------------------------------------------------ rasterising


def rasterise(anatomy: Anatomy, spacing: float) -> tuple[np.ndarray, Grid]:
    """Label volume (uint8, z y x) of the anatomy on an isotropic grid in body coordinates."""
    grid = Grid.covering(*anatomy.bounds(), spacing)
    labels = np.zeros(grid.shape, np.uint8)
    _paint_body(anatomy, grid, labels)
    _paint_thorax(anatomy, grid, labels)
    _paint_spine(anatomy, grid, labels)
    _paint_ribs(anatomy, grid, labels)
    _paint_bowel(anatomy, grid, labels)
    _paint_abdominal_organs(anatomy, grid, labels)
    _paint_liver(anatomy, grid, labels)
    _paint_kidneys(anatomy, grid, labels)
    return labels, grid


def _paint_body(anatomy: Anatomy, grid: Grid, labels: np.ndarray) -> None:
    body, spine = anatomy.body, anatomy.spine
    full = grid.full()
    x, y, z = full.x, full.y, full.z
    labels[body.level(x, y, z) < 1] = Label.FAT
    labels[body.level(x, y, z, body.fat) < 1] = Label.MUSCLE
    cavity = body.level(x, y, z, body.cavity_inset) < 1
    labels[cavity] = Label.VISCERAL_FAT
    height = anatomy.diaphragm.height(x, y)
    # the diaphragm: a 5 mm muscle sheet under the thoracic cavity
    labels[cavity & (z > height - 5.0) & (z <= height)] = Label.MUSCLE
    # paraspinal and psoas muscles
    block = grid.block([-80, spine.y - 30, -1e4], [80, 1e4, 1e4])
    x, y, z = block.x, block.y, block.z
    in_wall = body.level(x, y, z, body.fat) < 1
    for sign in (-1, 1):
        back = ((x - sign * 33.0) / 27.0) ** 2 + ((y - spine.y - 44.0) / 22.0) ** 2 < 1
        psoas_r = 5.0 + 17.0 * smoothstep(-110.0, -230.0, z)
        psoas = ((x - sign * 38.0) ** 2 + ((y - spine.y - 2.0) * 1.2) ** 2 < psoas_r**2) & (
            z < -100
        )
        paint(labels, block, (back | psoas) & in_wall, Label.MUSCLE)


def _paint_thorax(anatomy: Anatomy, grid: Grid, labels: np.ndarray) -> None:
    """Lungs fill the chest above the diaphragm, around the mediastinum and the heart."""
    body, heart = anatomy.body, anatomy.organs["heart"]
    block = grid.block([-1e4, -1e4, anatomy.diaphragm.right[2] - 120], [1e4, 1e4, 1e4])
    if block is None:
        return
    x, y, z = block.x, block.y, block.z
    thorax = body.level(x, y, z, body.cavity_inset) < 1
    thorax &= z > anatomy.diaphragm.height(x, y)
    mediastinum = (np.abs(x - 6.0) < 18.0) & (y > heart.centre[1]) & (y < anatomy.spine.y + 20)
    paint(labels, block, thorax & ~mediastinum, Label.LUNG)
    radius = float(np.min(heart.radii))
    block = grid.block(*heart.bounds(10.0))
    if block is None:
        return
    x, y, z = block.x, block.y, block.z
    level = heart.level(x, y, z)
    above = z > anatomy.diaphragm.height(x, y)
    paint(
        labels,
        block,
        above & (level < (1 + 8.0 / radius) ** 2),
        Label.VISCERAL_FAT,
        only=(Label.LUNG,),
    )
    paint(labels, block, above & (level < 1), Label.MYOCARDIUM, only=(Label.VISCERAL_FAT,))
    chambers = level < (1 - 10.0 / radius) ** 2
    paint(labels, block, chambers, Label.HEART_BLOOD, only=(Label.MYOCARDIUM,))


def _paint_spine(anatomy: Anatomy, grid: Grid, labels: np.ndarray) -> None:
    spine = anatomy.spine
    block = grid.block([-45, spine.y - 25, -1e4], [45, spine.y + 65, 1e4])
    x, y, z = block.x, block.y, block.z
    rx, ry = spine.radii
    level = (x / rx) ** 2 + ((y - spine.y) / ry) ** 2
    phase = np.mod(z - spine.phase, spine.pitch)
    disc = phase < 8.0
    arch = phase > 10.0
    paint(labels, block, level < 1, Label.BONE_CORTEX)
    paint(labels, block, (level < (1 - 2.5 / rx) ** 2) & ~disc, Label.BONE_MARROW)
    paint(labels, block, (level < 1) & disc, Label.DISC)
    canal_y = spine.y + ry + 10.0
    r2 = x**2 + (y - canal_y) ** 2
    paint(labels, block, (r2 < 15.0**2) & (r2 >= 9.0**2) & arch, Label.BONE_CORTEX)
    paint(labels, block, r2 < 9.0**2, Label.CSF)
    spinous = (np.abs(x) < 4.5) & (y > canal_y + 12) & (y < canal_y + 34) & arch
    transverse = (np.abs(x) < 36) & (np.abs(y - canal_y + 2) < 5) & (phase > 14) & (phase < 24)
    paint(labels, block, spinous | transverse, Label.BONE_CORTEX, only=SOFT)


def _paint_ribs(anatomy: Anatomy, grid: Grid, labels: np.ndarray) -> None:
    """Ribs in the inner chest wall, sloping down from the spine to the front.

    Evaluated on the voxels of the thin wall shell only, which is a few % of the block.
    """
    body, ribs = anatomy.body, anatomy.ribs
    block = grid.block([-1e4, -1e4, ribs.z0 - ribs.drop - 20], [1e4, 1e4, 1e4])
    if block is None:
        return
    inset = body.cavity_inset
    shell = body.level(block.x, block.y, block.z, inset - 7.5) < 1
    shell &= body.level(block.x, block.y, block.z, inset - 0.5) >= 1
    k, j, i = np.nonzero(shell)
    x, y, z = block.x.ravel()[i], block.y.ravel()[j], block.z.ravel()[k]
    around = np.abs(np.arctan2(x, y)) / np.pi  # 0 at the spine, 1 at the sternum
    t = (z - ribs.z0 + ribs.drop * around) / ribs.pitch
    index = np.floor(t)
    band = (t - index < ribs.width / ribs.pitch) & (index >= 0)
    reach = np.where(index >= 2, 0.85, np.where(index == 1, 0.55, 0.3))  # floating ribs
    value = np.where(around < reach, Label.RIB, Label.CARTILAGE).astype(np.uint8)
    keep = band & ((around < reach) | (index >= 2))
    target = labels[block.slices]
    target[k[keep], j[keep], i[keep]] = value[keep]


def _paint_bowel(anatomy: Anatomy, grid: Grid, labels: np.ndarray) -> None:
    loops, gas, field_grid = anatomy.bowel
    top = anatomy.liver_z[0] + 45.0
    block = grid.block([-1e4, -1e4, -1e4], [1e4, 1e4, top])
    if block is None:
        return
    fade = smoothstep(top, top - 50.0, block.z)  # fewer loops just under the liver
    bowel = sample_linear(loops, field_grid, block) > 1.0 - 1.2 * fade
    paint(labels, block, bowel, Label.BOWEL, only=(Label.VISCERAL_FAT,))
    pocket = bowel & (sample_linear(gas, field_grid, block) > 1.3 + 0.01 * block.y)
    paint(labels, block, pocket, Label.GAS, only=(Label.BOWEL,))


def _paint_ellipsoid(grid, labels, shape: Ellipsoid, label, only=None, clip=None) -> None:
    block = grid.block(*shape.bounds(1.0))
    if block is None:
        return
    inside = shape.level(block.x, block.y, block.z) < 1
    if clip is not None:
        inside &= clip(block.x, block.y, block.z)
    paint(labels, block, inside, label, only)


def _paint_capsule(grid, labels, capsule: Capsule, label, only=None) -> None:
    block = grid.block(*capsule.bounds())
    if block is not None:
        paint(labels, block, capsule.inside(block.x, block.y, block.z), label, only)


def _paint_abdominal_organs(anatomy: Anatomy, grid: Grid, labels: np.ndarray) -> None:
    organs = anatomy.organs
    for tube in anatomy.pancreas:
        _paint_capsule(grid, labels, tube, Label.PANCREAS, only=SOFT)
    _paint_ellipsoid(grid, labels, organs["spleen"], Label.SPLEEN, SOFT, anatomy.abdomen)
    stomach = organs["stomach"]
    _paint_ellipsoid(grid, labels, stomach, Label.STOMACH_WALL, SOFT, anatomy.abdomen)
    block = grid.block(*stomach.bounds())
    if block is not None:
        wall = 4.5 / float(np.min(stomach.radii))
        lumen = stomach.level(block.x, block.y, block.z) < (1 - wall) ** 2
        air = block.y < anatomy.stomach_air
        paint(labels, block, lumen & air, Label.GAS, (Label.STOMACH_WALL,))
        paint(labels, block, lumen & ~air, Label.STOMACH_FLUID, (Label.STOMACH_WALL,))
    for label, capsule in anatomy.vessels:
        if label != Label.IVC:
            _paint_capsule(grid, labels, capsule, label, NOT_BONE)


def _paint_liver(anatomy: Anatomy, grid: Grid, labels: np.ndarray) -> None:
    """The liver wins over the organs around it; then gallbladder, IVC, vessels, tumours."""
    liver = anatomy.liver
    block = grid.block(*liver.bounds())
    inside = (liver.distance(block) < 0) & _liver_clip(anatomy, block.x, block.y, block.z)
    paint(labels, block, inside, Label.LIVER, only=NOT_BONE)
    organs = anatomy.organs
    _paint_ellipsoid(grid, labels, organs["gallbladder"], Label.GALLBLADDER, NOT_BONE)
    for label, capsule in anatomy.vessels:
        if label == Label.IVC:
            _paint_capsule(grid, labels, capsule, label, NOT_BONE)
    _paint_capsule(grid, labels, anatomy.portal_trunk, Label.PORTAL_VEIN, NOT_BONE)
    for label, capsule in anatomy.liver_vessels:
        _paint_capsule(grid, labels, capsule, label, (Label.LIVER, Label.PORTAL_BRANCH))
    liver_like = (Label.LIVER, Label.PORTAL_BRANCH, Label.HEPATIC_VEIN)
    for k, tumour in enumerate(anatomy.tumours):
        shape = tumour.shape
        block = grid.block(*shape.bounds(2.0))
        if block is None:
            continue
        radius = float(np.min(shape.radii))
        wobble = 0.12 * radius * tumour.lobes(block.x, block.y, block.z)
        distance = shape.distance(block.x, block.y, block.z) + wobble
        paint(labels, block, distance < 0, Label.TUMOUR + k, liver_like)
        if tumour.rim_mm > 0:
            rim = (distance < 0) & (distance > -tumour.rim_mm)
            paint(labels, block, rim, Label.RIM + k, (Label.TUMOUR + k,))


def _paint_kidneys(anatomy: Anatomy, grid: Grid, labels: np.ndarray) -> None:
    for side in ("right_kidney", "left_kidney"):
        kidney = anatomy.organs[side]
        only = SOFT + (Label.PANCREAS, Label.PORTAL_VEIN)
        _paint_ellipsoid(grid, labels, kidney, Label.KIDNEY_CORTEX, only, anatomy.abdomen)
        inner = Ellipsoid(kidney.centre, kidney.radii * 0.62, kidney.axes)
        _paint_ellipsoid(grid, labels, inner, Label.KIDNEY_MEDULLA, (Label.KIDNEY_CORTEX,))
