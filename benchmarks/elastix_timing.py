"""Elastix + CNN registration cost per pair, per scale of config.yaml (demo vs paper settings).

For each chosen intra-patient pair of a standardized cohort (EXP/data/h108) and each scale's
`elastix_cnn:` section: seconds of elastix (rigid + B-spline), of transformix and of the final
mapping (deformation field on the mapping grid, written as .h5; its size), and the DSC of the
propagated CECT liver against the nCECT annotation before (scanner geometry only) and after
registration, and of the CECT liver carried by the written mapping against transformix's.
Phase 1 is replaced by the annotations here (CECT liver as the moving mask, nCECT liver
dilated as the fixed mask), so the figures are elastix's alone. elastix is loaded once before
timing (its one-off start-up is printed apart).

`--frame`: each pair again with the nCECT put into another scanner frame (FRAME: its geometry
rewritten, no resampling; the two scans of a cohort that shares one frame), once without and
once with that frame change given as the pre-alignment (elastix's initial transform).

    python benchmarks/elastix_timing.py --cases results/demo/data/h108 --patients P003 P007
    python benchmarks/elastix_timing.py --cases ... --scales paper --threads 8
    python benchmarks/elastix_timing.py --cases ... --scales demo --frame

Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from baselines.elastix_cnn import mapping, registration
from baselines.elastix_cnn.parameters import parameter_maps
from baselines.elastix_cnn.predict import _load_elastix
from baselines.elastix_cnn.settings import Settings
from liverbench.config import load
from liverbench.data.io import read_image, read_mask, write_transform
from liverbench.data.preprocess import resample_mask
from liverbench.layout import image_file
from liverbench.runtime import Stopwatch, cpu_name

ROOT = Path(__file__).resolve().parent.parent
# The nCECT scanner's frame -> the CECT's: 10° about z, 5° about x, a table 40/-30/200 mm away.
FRAME = sitk.Euler3DTransform((0.0, 0.0, 0.0), np.radians(5.0), 0.0, np.radians(10.0),
                              (40.0, -30.0, 200.0))


def dice(a: sitk.Image, b: sitk.Image) -> float:
    x, y = sitk.GetArrayViewFromImage(a) > 0, sitk.GetArrayViewFromImage(b) > 0
    return 2 * float((x & y).sum()) / max(1.0, float(x.sum() + y.sum()))


def in_frame(image: sitk.Image, frame: sitk.Euler3DTransform) -> sitk.Image:
    """The same voxels in another world frame: voxel world point p' with frame(p') = p."""
    moved = sitk.Image(image)
    moved.SetOrigin(frame.GetInverse().TransformPoint(image.GetOrigin()))
    rotation = np.reshape(frame.GetMatrix(), (3, 3)).T
    moved.SetDirection(tuple((rotation @ np.reshape(image.GetDirection(), (3, 3))).ravel()))
    return moved


def run_pair(case: Path, settings: Settings, frame: sitk.Euler3DTransform | None = None,
             prealign: bool = False) -> dict[str, float]:
    cect = read_image(image_file(str(case), "cect"))
    ncect = read_image(image_file(str(case), "ncect"))
    cect_liver = read_mask(image_file(str(case), "cect_liver"), cect)
    ncect_liver = read_mask(image_file(str(case), "ncect_liver"), ncect)
    if frame is not None:
        ncect, ncect_liver = in_frame(ncect, frame), in_frame(ncect_liver, frame)
    initial = (mapping.elastix_start(frame, ncect, ncect_liver, cect_liver,
                                     settings.centre_livers)[0] if prealign else None)
    maps = parameter_maps(settings, ncect.GetSpacing(), cect.GetSpacing(), initial is not None)
    result = registration.register(
        ncect, cect, registration.dilate_mm(ncect_liver, settings.fixed_mask_dilation_mm),
        registration.dilate_mm(cect_liver, settings.moving_mask_dilation_mm), maps,
        name=case.name, initial=initial,
    )
    with Stopwatch() as transformix:
        warped = registration.transform_mask(cect_liver, result.transform_maps, ncect)
    with tempfile.TemporaryDirectory() as folder, Stopwatch() as final:
        grid = mapping.Grid.of(ncect).coarse(settings.mapping_spacing_mm)
        field = registration.deformation_field(result.transform_maps, cect_liver, grid)
        path = Path(folder) / "mapping.h5"
        write_transform(mapping.field_transform(field, grid), path)
        megabytes = path.stat().st_size / 1e6
        carried = resample_mask(cect_liver, ncect, sitk.ReadTransform(str(path)))
    return {
        "elastix": result.seconds,
        "transformix": transformix.seconds,
        "mapping": final.seconds,
        "mapping_mb": megabytes,
        "dsc_before": dice(resample_mask(cect_liver, ncect, frame if prealign else None),
                           ncect_liver),
        "dsc_after": dice(warped, ncect_liver),
        "dsc_mapping": dice(carried, warped),
        "size": f"CECT {cect.GetSize()} -> nCECT {ncect.GetSize()}, mapping {grid.size}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=Path, required=True, help="EXP/data/h108")
    parser.add_argument("--patients", nargs="+", required=True)
    parser.add_argument("--scales", nargs="+", default=["demo", "paper"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frame", action="store_true",
                        help="also in another scanner frame, without and with the pre-alignment")
    args = parser.parse_args()

    registration.configure_threads(args.threads)
    with Stopwatch() as startup:
        _load_elastix()
    print(f"machine: {cpu_name()}, {args.threads} threads; elastix start-up "
          f"{startup.seconds:.1f} s (once per process)")
    for scale in args.scales:
        section = load(ROOT / "config.yaml", {"scale": scale})["elastix_cnn"]
        settings = Settings.from_mapping(section, section="elastix_cnn")
        print(f"\nscale {scale}: rigid {settings.rigid.resolutions} resolutions x "
              f"{settings.rigid.iterations} iterations, B-spline {settings.bspline.resolutions} x "
              f"{settings.bspline.iterations}, {settings.rigid.samples}/{settings.bspline.samples} "
              f"samples, grid {settings.grid_spacing_mm:g} mm")
        variants = {"same frame": (None, False)}
        if args.frame:
            variants |= {"other frame": (FRAME, False), "other frame, prealigned": (FRAME, True)}
        for variant, (frame, prealign) in variants.items():
            rows = []
            print(f" {variant}:")
            for patient in args.patients:
                row = run_pair(args.cases / patient, settings, frame, prealign)
                rows.append(row)
                print(f"  {patient}__{patient}: elastix {row['elastix']:6.1f} s, transformix "
                      f"{row['transformix']:4.2f} s, mapping {row['mapping']:4.2f} s "
                      f"({row['mapping_mb']:.1f} MB), DSC {row['dsc_before']:.3f} -> "
                      f"{row['dsc_after']:.3f}, mapping vs transformix "
                      f"{row['dsc_mapping']:.3f}  ({row['size']})")
            seconds = [row["elastix"] + row["transformix"] for row in rows]
            print(f"  mean {statistics.mean(seconds):.1f} s per pair (+ mapping "
                  f"{statistics.mean(row['mapping'] for row in rows):.2f} s), DSC after "
                  f"{np.mean([row['dsc_after'] for row in rows]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
