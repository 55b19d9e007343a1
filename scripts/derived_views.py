"""Slice views of a derived patient: CECT | nCECT with its liver | SPECT over the nCECT.

Run by hand on a patient folder written by `python -m liverbench.data.derive`; writes
PREFIX_axial.png and PREFIX_coronal.png (e.g. docs/derived_axial.png):

    python scripts/derived_views.py DERIVED/ircadb_1_1 --out docs/derived \\
        --credit "3D-IRCADb-01 patient 1.1, IRCAD, CC BY-NC-ND 4.0"

Each panel cuts its own image through the middle of its own liver (axial: the slice with the
most liver; coronal: the liver's mean row), superior up, patient left on the right.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from liverbench.data.io import read_image
from liverbench.layout import image_file

WINDOW = dict(cmap="gray", vmin=-160, vmax=240, interpolation="bilinear")
LIVER_COLOUR = "#39d353"


def _cut(liver: np.ndarray, view: str):
    """A slicer through the middle of the liver: axial (z) or coronal (y, superior up)."""
    if view == "axial":
        index = int(np.argmax(liver.sum(axis=(1, 2))))
        return lambda a: a[index]
    index = int(np.flatnonzero(liver.sum(axis=(0, 2))).mean())
    return lambda a: a[::-1, :, :][:, index]


def _isotropic_inplane(image: sitk.Image, like: sitk.Image, masks: bool = False) -> np.ndarray:
    """`image` on `like`'s grid with its in-plane pixel along z too (coronal views keep their
    aspect), as a (z, y, x) array: CT linear (air outside), masks nearest neighbour."""
    spacing, size = like.GetSpacing(), like.GetSize()
    shape = [size[0], size[1], int(round(size[2] * spacing[2] / spacing[0]))]
    interpolator, default = (sitk.sitkNearestNeighbor, 0.0) if masks else (sitk.sitkLinear, -1000.0)
    if image.GetPixelID() == sitk.sitkFloat32 and not masks:
        default = 0.0  # SPECT counts
    resampled = sitk.Resample(image, shape, sitk.Transform(), interpolator, like.GetOrigin(),
                              [spacing[0]] * 3, like.GetDirection(), default, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled)


def views(folder: Path, out: Path, credit: str | None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = {name: read_image(image_file(str(folder), name), allow_nan=True)
              for name in ("cect", "cect_liver", "ncect", "ncect_liver", "spect")}
    arrays = {
        name: _isotropic_inplane(image, images["cect" if name.startswith("cect") else "ncect"],
                                 masks=name.endswith("liver"))
        for name, image in images.items()
    }
    written = []
    for view in ("axial", "coronal"):
        fig, axes = plt.subplots(1, 3, figsize=(12.6, 4.8), facecolor="black")
        panels = [
            ("real CECT (portal venous) + liver mask", "cect", "cect_liver", False),
            ("derived nCECT (simulated low dose) + liver", "ncect", "ncect_liver", False),
            ("simulated 99mTc-MAA SPECT on the nCECT", "ncect", "ncect_liver", True),
        ]
        for ax, (title, key, liver, hot) in zip(axes, panels):
            cut = _cut(arrays[liver], view)
            ax.imshow(cut(arrays[key]), **WINDOW)
            if hot:
                counts = cut(arrays["spect"]).astype(float)
                ax.imshow(np.ma.masked_less(counts, 0.08 * counts.max()), cmap="hot", alpha=0.65,
                          interpolation="bilinear")
            ax.contour(cut(arrays[liver]), [0.5], colors=LIVER_COLOUR, linewidths=0.8)
            rows, cols = np.nonzero(cut(arrays[key]) > -400)  # zoom on the body
            ax.set_xlim(cols.min() - 4, cols.max() + 4)
            ax.set_ylim(rows.max() + 4, rows.min() - 4)
            ax.set_title(title, color="white", fontsize=9)
            ax.axis("off")
        if credit:
            fig.text(0.5, 0.01, credit, color="#bbbbbb", fontsize=8, ha="center")
        fig.tight_layout(rect=(0, 0.03 if credit else 0, 1, 1))
        path = Path(f"{out}_{view}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=72, facecolor="black")
        plt.close(fig)
        written.append(path)
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a derived patient's folder")
    parser.add_argument("--out", type=Path, required=True, help="prefix of the PNGs")
    parser.add_argument("--credit", help="an attribution line under the figure")
    args = parser.parse_args(argv)
    views(args.folder, args.out, args.credit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
