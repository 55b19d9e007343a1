"""Hold the synthetic SPECT-CT cohort against real scans: HU per organ, noise, geometry, SPECT.

Run by hand; nothing in the project imports it and no test runs it. Real data are optional
and given as paths, e.g. (the IRCAD masks may be given as the zip; it is unpacked into a
temporary folder, never into the repository):

    python scripts/phantom_realism.py --seed 2024 --patients 6 \\
        --ircadb /data/ircadb-1.1/PATIENT_DICOM --ircadb-masks /data/ircadb-1.1/MASKS_DICOM.zip \\
        --totalseg /data/totalsegmentator-example --spect-sample /data/maa-spect-sample \\
        --figures docs

prints a Markdown table (phantom mean over patients, with the range of per-patient means, vs
each real scan) and, with --figures, writes docs/phantom_axial.png and docs/phantom_coronal.png.
The true motion over a cohort (docs/phantom_motion.png): scripts/phantom_motion.py.

Conventions, the same for phantom and real scans: an organ's HU is mean ± SD over the organ
eroded by 3 mm (the SD includes tissue texture and noise: it is the noise one sees); muscle is
the true muscle label where there is one, else "body wall soft tissue" (voxels within 40 mm of
the skin, outside organ masks, HU in [-20, 150]) — printed as such. SPECT fractions use the
liver mask resampled (nearest neighbour) onto the SPECT grid.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from liverbench.data.io import read_image
from liverbench.data.phantom import Label, simulate_patient
from liverbench.data.phantom.motion import rigid_part

ERODE_MM = 3.0
# TotalSegmentator v2 ("total" task) label values used here
TS_LABELS = {"liver": 5, "spleen": 1, "aorta": 52, "ivc": 63, "portal": 64}
TS_MUSCLE = (86, 87, 88, 89)  # autochthon left/right, iliopsoas left/right


# ------------------------------------------------------------------------- measuring


def eroded(mask: np.ndarray, spacing_zyx, mm: float = ERODE_MM) -> np.ndarray:
    """`mask` minus a rim of `mm` and of at least one voxel (thick slices would otherwise
    keep thin sheets such as the diaphragm whole), computed in the mask's bounding box."""
    if not mask.any():
        return mask
    box = tuple(slice(max(a.min() - 2, 0), a.max() + 3) for a in np.nonzero(mask))
    inner = np.zeros_like(mask)
    inner[box] = ndimage.distance_transform_edt(mask[box], sampling=spacing_zyx) > mm
    inner[box] &= ndimage.binary_erosion(mask[box])
    return inner


def hu_stats(ct: np.ndarray, mask: np.ndarray, spacing_zyx) -> tuple[float, float] | None:
    core = eroded(mask, spacing_zyx)
    if core.sum() < 30:
        return None
    values = ct[core].astype(np.float64)
    return float(values.mean()), float(values.std())


def body_wall(ct: np.ndarray, organs: np.ndarray, spacing_zyx) -> np.ndarray:
    """Soft tissue within 40 mm of the skin outside organs: mostly abdominal wall muscle."""
    body = ndimage.binary_fill_holes(ct > -400)
    depth = ndimage.distance_transform_edt(body, sampling=spacing_zyx)
    return body & (depth > 3) & (depth < 40) & ~organs & (ct >= -20) & (ct <= 150)


def zyx(image: sitk.Image) -> tuple[float, float, float]:
    return tuple(image.GetSpacing()[::-1])


def spect_stats(spect: sitk.Image, liver: sitk.Image) -> dict[str, float]:
    counts = sitk.GetArrayFromImage(spect).astype(np.float64)
    on_spect = sitk.Resample(liver, spect, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    inside = sitk.GetArrayFromImage(on_spect) > 0
    core = eroded(inside, zyx(spect), 5.0)
    outside = ~inside & (counts > 0)
    voxel_ml = float(np.prod(spect.GetSpacing())) / 1000.0
    return {
        "voxel (mm)": "×".join(f"{s:.2f}" for s in spect.GetSpacing()),
        "total counts (M)": counts.sum() / 1e6,
        "max counts / voxel": counts.max(),
        "liver counts / ml": counts[core].mean() / voxel_ml,
        "fraction of counts in liver": counts[inside].sum() / counts.sum(),
        "liver CV (SD/mean)": counts[core].std() / counts[core].mean(),
        "outside / liver concentration": counts[outside].mean() / counts[core].mean(),
    }


# -------------------------------------------------------------------------- phantom


def measure_phantom(seed: int, patients: int, size: str) -> tuple[dict, list]:
    rows: dict[str, list] = defaultdict(list)
    cases = []
    for index in range(patients):
        start = time.perf_counter()
        case = simulate_patient(index, seed, size)
        rows["generation (s)"].append(time.perf_counter() - start)
        for phase in ("cect", "ncect"):
            ct_image, labels = case.images[phase], case.labels[phase]
            ct = sitk.GetArrayFromImage(ct_image)
            lab = sitk.GetArrayFromImage(labels)
            sp = zyx(ct_image)
            organs = {
                "liver": lab == Label.LIVER,
                "spleen": lab == Label.SPLEEN,
                "muscle (true label)": lab == Label.MUSCLE,
                "aorta": lab == Label.AORTA,
                "IVC": lab == Label.IVC,
                "portal vein": lab == Label.PORTAL_VEIN,
            }
            for name, mask in organs.items():
                stats = hu_stats(ct, mask, sp)
                if stats:
                    rows[f"{phase} {name}"].append(stats)
            wall = body_wall(ct, ~np.isin(lab, (Label.FAT, Label.MUSCLE, Label.AIR)), sp)
            rows[f"{phase} body wall soft tissue"].append((ct[wall].mean(), ct[wall].std()))
            rows[f"{phase} slice thickness (mm)"].append(ct_image.GetSpacing()[2])
            rows[f"{phase} pixel (mm)"].append(ct_image.GetSpacing()[0])
        for key, value in spect_stats(case.images["spect"], case.images["ncect_liver"]).items():
            rows[f"spect {key}"].append(value)
        b = sitk.GetArrayFromImage(case.images["ncect_liver"]) > 0
        for name, transform in (
            ("scanner geometry", sitk.Transform()),
            ("true rigid part", rigid_part(case.truth)),
        ):
            a = sitk.Resample(
                case.images["cect_liver"],
                case.images["ncect_liver"],
                transform,
                sitk.sitkNearestNeighbor,
                0,
            )
            a = sitk.GetArrayFromImage(a) > 0
            rows[f"liver DSC by the {name}"].append(2 * (a & b).sum() / (a.sum() + b.sum()))
        rows["liver shift by breathing, z (mm)"].append(case.truth["liver_shift_mm"][2])
        liver_ml = b.sum() * np.prod(case.images["ncect"].GetSpacing()) / 1000
        rows["liver volume (L)"].append(liver_ml / 1000)
        cases.append(case)
    return rows, cases


# ----------------------------------------------------------------------------- real


def ircadb_rows(dicom: Path, masks: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        if masks.suffix == ".zip":
            with zipfile.ZipFile(masks) as archive:
                archive.extractall(tmp)
            masks = next(Path(tmp).rglob("liver")).parent
        ct_image = read_image(dicom)
        ct = sitk.GetArrayFromImage(ct_image)
        names = [p.name for p in masks.iterdir() if p.is_dir()]
        loaded = {n: sitk.GetArrayFromImage(read_image(masks / n)) > 0 for n in names}
    sp = zyx(ct_image)

    def union(*patterns: str) -> np.ndarray:
        out = np.zeros(ct.shape, bool)
        for name, m in loaded.items():
            if any(Path(name).match(p) for p in patterns):
                out |= m
        return out

    vessels = union("portalvein", "venoussystem", "artery")
    liver = union("liver") & ~union("livertumor*", "liverkyst") & ~vessels
    organs = union("liver", "spleen", "*kidney", "*lung", "bone") | vessels
    wall = body_wall(ct, organs, sp)
    return {
        "cect liver": hu_stats(ct, liver, sp),
        "cect spleen": hu_stats(ct, union("spleen"), sp),
        "cect portal vein": hu_stats(ct, union("portalvein"), sp),
        "cect aorta": hu_stats(ct, union("artery"), sp),  # aorta and its branches
        "cect IVC": hu_stats(ct, union("venoussystem"), sp),  # IVC and hepatic veins
        "cect body wall soft tissue": (float(ct[wall].mean()), float(ct[wall].std())),
        "cect slice thickness (mm)": ct_image.GetSpacing()[2],
        "cect pixel (mm)": ct_image.GetSpacing()[0],
    }


def totalseg_rows(folder: Path) -> dict:
    """TotalSegmentator example: unenhanced CT and its (model-made) segmentation.

    The example segmentation holds only the top 30 of the CT's 112 slices while its header
    keeps the CT's origin; it is aligned here with the CT's last slices (liver HU 47 ± 13
    there vs. -69 ± 320 with the header's geometry).
    """
    ct_image = sitk.ReadImage(str(folder / "example_ct.nii.gz"))
    seg_image = sitk.ReadImage(str(folder / "example_seg.nii.gz"))
    ct = sitk.GetArrayFromImage(ct_image)
    seg = sitk.GetArrayFromImage(seg_image)
    if seg.shape != ct.shape:
        ct = ct[ct.shape[0] - seg.shape[0] :]
    sp = zyx(ct_image)
    rows = {f"ncect {name}": hu_stats(ct, seg == v, sp) for name, v in TS_LABELS.items()}
    rows["ncect IVC"] = rows.pop("ncect ivc")
    rows["ncect portal vein"] = rows.pop("ncect portal")
    rows["ncect muscle (true label)"] = hu_stats(ct, np.isin(seg, TS_MUSCLE), sp)
    wall = body_wall(ct, (seg > 0) & ~np.isin(seg, TS_MUSCLE), sp)
    rows["ncect body wall soft tissue"] = (float(ct[wall].mean()), float(ct[wall].std()))
    rows["ncect slice thickness (mm)"] = ct_image.GetSpacing()[2]
    rows["ncect pixel (mm)"] = ct_image.GetSpacing()[0]
    return rows


def spect_rows(folder: Path) -> dict:
    """SlicerRadioembolizationDosimetry MAA SPECT and its Slicer segmentation ('liver')."""
    spect = sitk.ReadImage(str(folder / "patient_2_SPECT.nrrd"))
    seg = sitk.ReadImage(str(folder / "patient_2_Segmentation.seg.nrrd"))
    layer = value = None
    for key in seg.GetMetaDataKeys():
        if key.endswith("_Name") and seg.GetMetaData(key) == "liver":
            stem = key[: -len("_Name")]
            layer = int(seg.GetMetaData(f"{stem}_Layer"))
            value = int(seg.GetMetaData(f"{stem}_LabelValue"))
    if layer is None:
        raise SystemExit(f"{folder}: no segment named 'liver'")
    if seg.GetNumberOfComponentsPerPixel() > 1:
        seg = sitk.VectorIndexSelectionCast(seg, layer)

    liver = sitk.Cast(seg == value, sitk.sitkUInt8)
    return {f"spect {k}": v for k, v in spect_stats(spect, liver).items()}


# ---------------------------------------------------------------------------- report


def fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return f"{value[0]:.0f} ± {value[1]:.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def summarise(values: list) -> str:
    """Phantom: mean over patients (of means ± SDs), with the range of the means."""
    if not values:
        return "–"
    if isinstance(values[0], tuple):
        means = np.array([v[0] for v in values])
        sds = np.array([v[1] for v in values])
        return f"{means.mean():.0f} ± {sds.mean():.0f} [{means.min():.0f}, {means.max():.0f}]"
    if isinstance(values[0], str):
        return values[0]
    array = np.array(values, float)
    if np.ptp(array) == 0:
        return fmt(float(array[0]))
    return f"{fmt(float(array.mean()))} [{fmt(float(array.min()))}, {fmt(float(array.max()))}]"


def table(phantom: dict, real: dict[str, dict]) -> str:
    names = list(real)
    head = "| quantity | phantom: mean [range over patients] | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (2 + len(names))]
    keys = list(phantom) + [k for r in real.values() for k in r if k not in phantom]
    for key in dict.fromkeys(keys):
        cells = [fmt(real[n].get(key)) for n in names]
        lines.append(f"| {key} | {summarise(phantom.get(key, []))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures


def figures(case, out_dir: Path) -> None:
    """Axial and coronal views of one patient: CECT, nCECT, SPECT over nCECT, liver outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = case.images
    ncect = images["ncect"]
    carried = sitk.Resample(
        images["cect_liver"], ncect, rigid_part(case.truth), sitk.sitkNearestNeighbor, 0
    )
    spect = sitk.Resample(images["spect"], ncect, sitk.Transform(), sitk.sitkLinear, 0.0)
    arrays = {
        "cect": sitk.GetArrayFromImage(images["cect"]),
        "cect_liver": sitk.GetArrayFromImage(images["cect_liver"]),
        "ncect": sitk.GetArrayFromImage(ncect),
        "ncect_liver": sitk.GetArrayFromImage(images["ncect_liver"]),
        "carried": sitk.GetArrayFromImage(carried),
        "spect": sitk.GetArrayFromImage(spect),
    }
    window = dict(cmap="gray", vmin=-160, vmax=240, interpolation="bilinear")
    for view in ("axial", "coronal"):
        fig, axes = plt.subplots(1, 3, figsize=(12.6, 4.6), facecolor="black")
        panels = [
            ("CECT (portal venous) + liver", images["cect"], "cect", "cect_liver", None),
            (
                "nCECT (low dose) + liver; dashed: CECT liver\nby the true rigid motion",
                ncect,
                "ncect",
                "ncect_liver",
                "carried",
            ),
            ("99mTc-MAA SPECT on nCECT", ncect, "ncect", "ncect_liver", None),
        ]
        for ax, (title, ref, key, liver, dashed) in zip(axes, panels):
            cut = _cut(arrays[liver], view)
            aspect = ref.GetSpacing()[2] / ref.GetSpacing()[0] if view == "coronal" else 1.0
            ax.imshow(cut(arrays[key]), aspect=aspect, **window)
            if "SPECT" in title:
                hot = cut(arrays["spect"]).astype(float)
                ax.imshow(
                    np.ma.masked_less(hot, 0.08 * hot.max()),
                    cmap="hot",
                    alpha=0.65,
                    aspect=aspect,
                    interpolation="bilinear",
                )
            ax.contour(cut(arrays[liver]), [0.5], colors="#39d353", linewidths=0.8)
            if dashed:
                ax.contour(
                    cut(arrays[dashed]),
                    [0.5],
                    colors="#ffb000",
                    linewidths=0.8,
                    linestyles="dashed",
                )
            rows, cols = np.nonzero(cut(arrays[key]) > -400)  # zoom on the body
            ax.set_xlim(cols.min() - 4, cols.max() + 4)
            ax.set_ylim(rows.max() + 4, rows.min() - 4)
            ax.set_title(title, color="white", fontsize=9)
            ax.axis("off")
        fig.tight_layout()
        path = out_dir / f"phantom_{view}.png"
        fig.savefig(path, dpi=72, facecolor="black")
        plt.close(fig)
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def _cut(liver: np.ndarray, view: str):
    """A slicer through the middle of the liver: axial (z) or coronal (y, superior up)."""
    axis = 0 if view == "axial" else 1
    other = tuple(a for a in range(3) if a != axis)
    profile = liver.sum(axis=other)
    index = int(np.argmax(profile)) if view == "axial" else int(np.flatnonzero(profile).mean())
    if view == "axial":
        return lambda a: a[index]
    return lambda a: a[::-1, index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--size", default="demo")
    parser.add_argument("--ircadb", type=Path, help="3D-IRCADb PATIENT_DICOM folder")
    parser.add_argument("--ircadb-masks", type=Path, help="MASKS_DICOM folder or .zip")
    parser.add_argument("--totalseg", type=Path, help="folder with example_ct/seg.nii.gz")
    parser.add_argument("--spect-sample", type=Path, help="folder with patient_2_SPECT.nrrd")
    parser.add_argument("--figures", type=Path, help="write phantom_{axial,coronal}.png here")
    parser.add_argument(
        "--motion-histogram",
        type=Path,
        metavar="PNG",
        help="write the histogram of true liver displacements here",
    )
    parser.add_argument("--motion-patients", type=int, default=40)
    parser.add_argument("--motion-size", default="smoke")
    args = parser.parse_args(argv)

    phantom, cases = measure_phantom(args.seed, args.patients, args.size)
    real: dict[str, dict] = {}
    if args.ircadb and args.ircadb_masks:
        real["IRCADb 1.1 (CECT)"] = ircadb_rows(args.ircadb, args.ircadb_masks)
    if args.totalseg:
        real["TotalSegmentator example (unenhanced)"] = totalseg_rows(args.totalseg)
    if args.spect_sample:
        real["MAA SPECT sample"] = spect_rows(args.spect_sample)
    print(f"phantom: seed {args.seed}, {args.patients} patients, size {args.size}\n")
    print(table(phantom, real))
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        figures(cases[0], args.figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
