"""What a contrast CT shows without labels: body, bone and lungs, found by thresholds.

The source has a liver mask (and maybe tumours) and nothing else; the de-enhancement, the
breathing weight and the SPECT need a little more anatomy, and simple HU rules find enough of
it. Everything is cropped to the body's bounding box first: a 512 x 512 x 130 CT is ~34 M
voxels, and each float32 copy of it costs 136 MB.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

BODY_HU = -500.0  # body: the largest component above this, holes filled slice by slice
BONE_HU = 350.0  # bone: above this (cortex), grown and filled (marrow)
BONE_PEAK_HU = 500.0  # ... in components that hold cortex
BONE_GROW_MM = 2.0  # the partial-volume rim around bone belongs to it
LUNG_HU = -400.0  # lungs: air inside the body ...
LUNG_MIN_ML = 20.0  # ... in components this big that reach the liver's top or higher
CROP_MARGIN_MM = 10.0
COARSE_MM = 4.0  # masks averaged to about this for the motion's weights ...
COARSE_PAD_MM = 40.0  # ... and padded by this much


@dataclass
class Tissues:
    """The CECT cropped to the body, as (z, y, x) arrays on the grid of `image` (the
    cropped CECT), with the masks found in it. `axial` is the array axis nearest world z;
    `fov_mm` the uncropped CECT's smaller extent across it (its in-plane field of view)."""

    image: sitk.Image
    hu: np.ndarray  # float32, clipped to the CT range
    body: np.ndarray  # bool, like the masks below
    bone: np.ndarray
    lungs: np.ndarray
    liver: np.ndarray
    tumour: np.ndarray | None
    axial: int
    fov_mm: float
    _coarse: dict = field(default_factory=dict, repr=False)

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size (mm) per array axis (z, y, x)."""
        return np.array(self.image.GetSpacing()[::-1])

    def world(self, index_zyx) -> np.ndarray:
        """World (x, y, z) of a continuous (z, y, x) index."""
        index = [float(i) for i in np.asarray(index_zyx)[::-1]]
        return np.array(self.image.TransformContinuousIndexToPhysicalPoint(index))

    def centroid(self, mask: np.ndarray) -> np.ndarray:
        """World (x, y, z) centroid of a mask's voxels (from its projections: argwhere on a
        body mask would cost hundreds of MB)."""
        count = float(mask.sum())
        index = [
            np.arange(n) @ mask.sum(axis=tuple(a for a in range(3) if a != axis)) / count
            for axis, n in enumerate(mask.shape)
        ]
        return self.world(index)

    def z_range(self, mask: np.ndarray) -> tuple[float, float]:
        """Lowest and highest world z of a mask's voxels (mm)."""
        return box_z_range(self.image, ndimage.find_objects(mask.astype(np.uint8))[0])

    def world_box(self) -> tuple[np.ndarray, np.ndarray]:
        """The world (x, y, z) bounding box of the cropped CECT's voxel centres."""
        ends = [(0, n - 1) for n in self.hu.shape]
        corners = np.array(np.meshgrid(*ends, indexing="ij")).reshape(3, -1).T
        world = np.array([self.world(c) for c in corners])
        return world.min(axis=0), world.max(axis=0)

    def coarse(self, name: str) -> tuple[np.ndarray, sitk.Image]:
        """Mask `name` ("body", "bone") averaged over blocks of about COARSE_MM (fractions,
        float32), padded by COARSE_PAD_MM with its edge values (a body cut by the scan goes
        on; air stays air, so distances outside keep growing), and the image carrying their
        geometry; computed once."""
        if name not in self._coarse:
            factors = [max(1, int(round(COARSE_MM / s))) for s in self.image.GetSpacing()]
            image = sitk.GetImageFromArray(getattr(self, name).astype(np.float32))
            image.CopyInformation(self.image)
            small = sitk.BinShrink(image, factors)
            pad = int(np.ceil(COARSE_PAD_MM / min(small.GetSpacing())))
            array = np.pad(sitk.GetArrayFromImage(small), pad, mode="edge")
            padded = sitk.GetImageFromArray(array)
            padded.SetSpacing(small.GetSpacing())
            padded.SetDirection(small.GetDirection())
            padded.SetOrigin(small.TransformContinuousIndexToPhysicalPoint([-pad] * 3))
            self._coarse[name] = (array, padded)
        return self._coarse[name]


def continuous_index(image: sitk.Image, points_xyz: np.ndarray) -> np.ndarray:
    """Continuous (z, y, x) indices in `image` of world points (..., 3), (x, y, z) order."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    local = (np.asarray(points_xyz) - np.array(image.GetOrigin())) @ direction  # D^T (p - o)
    return (local / np.array(image.GetSpacing()))[..., ::-1]


def sample(array: np.ndarray, image: sitk.Image, points_xyz: np.ndarray) -> np.ndarray:
    """`array` (on `image`'s grid) at world points, linearly; past its edges the edge value
    (the body and the spine go on beyond a scan's last slice)."""
    index = continuous_index(image, points_xyz)
    values = ndimage.map_coordinates(array, index.reshape(-1, 3).T, order=1, mode="nearest")
    return values.reshape(index.shape[:-1])


def box_z_range(image: sitk.Image, box: tuple[slice, ...]) -> tuple[float, float]:
    """World z range of the voxel centres of a (z, y, x) box (from its corners)."""
    ends = [(s.start, s.stop - 1) for s in box]
    corners = np.array(np.meshgrid(*ends, indexing="ij")).reshape(3, -1).T
    z = [image.TransformIndexToPhysicalPoint([int(i) for i in c[::-1]])[2] for c in corners]
    return min(z), max(z)


def axial_axis(image: sitk.Image) -> int:
    """The (z, y, x) array axis whose direction is nearest world z (cranio-caudal)."""
    direction = np.abs(np.array(image.GetDirection()).reshape(3, 3))
    return 2 - int(np.argmax(direction[2]))


def find_tissues(
    cect: sitk.Image, liver: sitk.Image, tumour: sitk.Image | None = None
) -> Tissues:
    """Body, bone and lungs of a CECT, cropped (with the liver and tumour masks) to the
    body's bounding box plus CROP_MARGIN_MM."""
    axial = axial_axis(cect)
    spacing = np.array(cect.GetSpacing()[::-1])
    hu_full = sitk.GetArrayViewFromImage(cect)
    liver_full = sitk.GetArrayViewFromImage(liver) > 0
    body = _largest_component(hu_full > BODY_HU) | liver_full
    margin = np.ceil(CROP_MARGIN_MM / spacing).astype(int)
    found = ndimage.find_objects(body.astype(np.uint8))[0]
    box = tuple(
        slice(max(s.start - m, 0), min(s.stop + m, n))
        for s, m, n in zip(found, margin, body.shape)
    )
    z, y, x = box
    image = cect[x.start : x.stop, y.start : y.stop, z.start : z.stop]
    hu = np.clip(hu_full[box], -1024, 3071).astype(np.float32)
    body = _fill_slices(body[box], axial)
    liver_crop = liver_full[box].copy()
    tumour_crop = None
    if tumour is not None:
        tumour_crop = (sitk.GetArrayViewFromImage(tumour)[box] > 0) & liver_crop
    fov = min(n * s for k, (n, s) in enumerate(zip(hu_full.shape, spacing)) if k != axial)
    tissues = Tissues(
        image=image,
        hu=hu,
        body=body,
        bone=_bone(hu, body, spacing, axial),
        lungs=np.zeros_like(body),
        liver=liver_crop,
        tumour=tumour_crop,
        axial=axial,
        fov_mm=float(fov),
    )
    tissues.lungs = _lungs(tissues)
    return tissues


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _fill_slices(mask: np.ndarray, axis: int) -> np.ndarray:
    """Holes filled in each axial slice: lungs and bowel gas are holes in the body's slice,
    while in 3-D they may reach the scan's edge (the trachea)."""
    out = np.moveaxis(mask, axis, 0).copy()
    for k in range(out.shape[0]):
        out[k] = ndimage.binary_fill_holes(out[k])
    return np.moveaxis(out, 0, axis)


def _bone(hu: np.ndarray, body: np.ndarray, spacing: np.ndarray, axial: int) -> np.ndarray:
    """Bone grown by BONE_GROW_MM, marrow filled in: left as it is. Only components with
    cortical bone in them (a voxel >= BONE_PEAK_HU) count: a corticomedullary renal cortex
    or a contrast-filled calyx also passes BONE_HU."""
    size = [2 * int(round(BONE_GROW_MM / s)) + 1 for s in spacing]
    grown = ndimage.maximum_filter((hu > BONE_HU) & body, size=size)
    labels, n = ndimage.label(grown)
    keep = np.zeros(n + 1, bool)
    keep[np.unique(labels[hu >= BONE_PEAK_HU])] = True
    keep[0] = False
    return _fill_slices(keep[labels], axial) & body


def _lungs(tissues: Tissues) -> np.ndarray:
    """Air in the body in big components that reach the liver's top or higher: the lungs
    (stomach and bowel gas lie lower). A CECT may cut them: what it shows is what we get."""
    air = (tissues.hu < LUNG_HU) & tissues.body & ~tissues.liver
    labels, n = ndimage.label(air)
    keep = np.zeros(n + 1, bool)
    voxel_ml = float(np.prod(tissues.spacing)) / 1000.0
    sizes = np.bincount(labels.ravel(), minlength=n + 1) * voxel_ml
    _, liver_top = tissues.z_range(tissues.liver)
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is not None and sizes[k] >= LUNG_MIN_ML:
            keep[k] = box_z_range(tissues.image, box)[1] >= liver_top
    return keep[labels]
