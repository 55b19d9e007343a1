"""The phantom's motion model on a real CECT: T = D o R o f, with D's breathing weight from
the image instead of an analytic anatomy.

Everything drawn (frame offset, repositioning, breathing and its posterior part, the random
deformation) is `liverbench.data.phantom.motion`'s, with its constants and samplers. What
changes is where breathing applies, read from the CECT: 1 between the liver's dome and lower
edge, fading into the chest and down the abdomen (`breathing_along`), 0.3 at the skin rising
to 1 at DEPTH_MM inside, held still near the spine and behind it (`spine_hold`, the spine
found as bone near the body's midline in its posterior half), fading out of the body.
Beyond the CECT's first and last slices the body and spine are taken to go on as they end.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from liverbench.data.derive.tissues import Tissues, sample
from liverbench.data.phantom.motion import (
    DEFORMATION_SPACING_MM,
    Motion,
    MotionDraw,
    breathing_along,
    deformation,
    spine_hold,
)
from liverbench.data.phantom.shapes import Grid, smoothstep

DEPTH_MM = 35.0  # breathing rises from 0.3 at the skin to 1 this far inside
WALL_WEIGHT = 0.3
OUTSIDE_MM = 20.0  # the deformation fades to 0 this far outside the body
SPINE_RADIUS_MM = 20.0  # a vertebral body, for `spine_hold`
SPINE_HALF_WIDTH_MM = 35.0  # the spine is bone this close to the body's midline ...
SPINE_FRONT_MM = 10.0  # ... and behind (posterior to) the body's centre, less this
GRID_MARGIN_MM = 30.0


def derive_motion(
    rng: np.random.Generator, frame_mm: np.ndarray, tissues: Tissues
) -> Motion:
    """Draw a patient's motion (`MotionDraw`, the phantom's) and build T on the CECT."""
    draw = MotionDraw.sample(rng)
    lo, hi = tissues.world_box()
    coarse = Grid.covering(lo - GRID_MARGIN_MM, hi + GRID_MARGIN_MM, DEFORMATION_SPACING_MM)
    moves, body = breathing_weight(tissues, coarse, draw.breathing_mm)
    centre = tissues.centroid(tissues.liver)
    return draw.motion(centre, frame_mm, deformation(draw, coarse, np.zeros(3), moves, body))


def breathing_weight(
    tissues: Tissues, coarse: Grid, breathing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Where breathing applies (0-1) on `coarse` (world coordinates) and the body (0-1)."""
    full = coarse.full()
    x, y, z = np.broadcast_arrays(full.x, full.y, full.z)
    points = np.stack([x, y, z], axis=-1).astype(np.float64)
    body_small, body_image = tissues.coarse("body")
    inside = body_small > 0.5
    spacing = np.array(body_image.GetSpacing()[::-1])
    depth = ndimage.distance_transform_edt(inside, sampling=spacing).astype(np.float32)
    outside = ndimage.distance_transform_edt(~inside, sampling=spacing).astype(np.float32)
    body = smoothstep(OUTSIDE_MM, 0.0, sample(outside, body_image, points))
    across = WALL_WEIGHT + (1 - WALL_WEIGHT) * smoothstep(
        0.0, DEPTH_MM, sample(depth, body_image, points)
    )
    bottom, top = tissues.z_range(tissues.liver)
    along = breathing_along(z, top + breathing, bottom + breathing)
    held = _spine_hold(tissues, points, sample(body_small, body_image, points))
    moves = along * across * (1.0 - held) * body
    return moves, body


def _spine_hold(tissues: Tissues, points: np.ndarray, body: np.ndarray) -> np.ndarray:
    """`spine_hold` about the spine's centre at each height of the grid (0 without a spine).

    At each grid height the spine is the bone within SPINE_HALF_WIDTH_MM of the body's
    midline, posterior to its centre (the sternum is anterior); heights without one take the
    nearest centres found (linear in z).
    """
    bone_small, bone_image = tissues.coarse("bone")
    bone = sample(bone_small, bone_image, points) > 0.5
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    levels = z[:, 0, 0]
    centres = []
    for k in range(len(levels)):
        weight = body[k] > 0.5
        if not weight.any():
            centres.append(None)
            continue
        cx, cy = x[k][weight].mean(), y[k][weight].mean()
        spine = bone[k] & (np.abs(x[k] - cx) < SPINE_HALF_WIDTH_MM) & (y[k] > cy - SPINE_FRONT_MM)
        centres.append((x[k][spine].mean(), y[k][spine].mean()) if spine.any() else None)
    found = [k for k, c in enumerate(centres) if c is not None]
    if not found:
        return np.zeros(x.shape, np.float32)
    sx = np.interp(levels, levels[found], [centres[k][0] for k in found])
    sy = np.interp(levels, levels[found], [centres[k][1] for k in found])
    return spine_hold(x, y, sx[:, None, None], sy[:, None, None], SPINE_RADIUS_MM)
