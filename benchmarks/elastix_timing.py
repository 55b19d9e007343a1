"""Elastix + CNN registration cost per pair, per scale of config.yaml (demo vs paper settings).

For each chosen intra-patient pair of a standardized cohort (EXP/data/h108) and each scale's
`elastix_cnn:` section: seconds of elastix (rigid + B-spline) and of transformix, and the DSC
of the propagated CECT liver against the nCECT annotation before (scanner geometry only) and
after registration. Phase 1 is replaced by the annotations here (CECT liver as the moving
mask, nCECT liver dilated as the fixed mask), so the figures are elastix's alone. elastix is
loaded once before timing (its one-off start-up is printed apart).

    python benchmarks/elastix_timing.py --cases results/demo/data/h108 --patients P003 P007
    python benchmarks/elastix_timing.py --cases ... --scales paper --threads 8

Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from baselines.elastix_cnn import registration
from baselines.elastix_cnn.parameters import parameter_maps
from baselines.elastix_cnn.predict import _load_elastix
from baselines.elastix_cnn.settings import Settings
from liverbench.config import load
from liverbench.data.io import read_image, read_mask
from liverbench.data.preprocess import resample_mask
from liverbench.runtime import Stopwatch, cpu_name

ROOT = Path(__file__).resolve().parent.parent


def dice(a: sitk.Image, b: sitk.Image) -> float:
    x, y = sitk.GetArrayViewFromImage(a) > 0, sitk.GetArrayViewFromImage(b) > 0
    return 2 * float((x & y).sum()) / max(1.0, float(x.sum() + y.sum()))


def run_pair(case: Path, settings: Settings) -> dict[str, float]:
    cect, ncect = read_image(case / "cect.nii.gz"), read_image(case / "ncect.nii.gz")
    cect_liver = read_mask(case / "cect_liver.nii.gz", cect)
    ncect_liver = read_mask(case / "ncect_liver.nii.gz", ncect)
    maps = parameter_maps(settings, ncect.GetSpacing(), cect.GetSpacing())
    result = registration.register(
        ncect, cect, registration.dilate_mm(ncect_liver, settings.fixed_mask_dilation_mm),
        registration.dilate_mm(cect_liver, settings.moving_mask_dilation_mm), maps,
        name=case.name,
    )
    with Stopwatch() as transformix:
        warped = registration.transform_mask(cect_liver, result.transform_maps, ncect)
    return {
        "elastix": result.seconds,
        "transformix": transformix.seconds,
        "dsc_before": dice(resample_mask(cect_liver, ncect), ncect_liver),
        "dsc_after": dice(warped, ncect_liver),
        "size": f"CECT {cect.GetSize()} -> nCECT {ncect.GetSize()}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=Path, required=True, help="EXP/data/h108")
    parser.add_argument("--patients", nargs="+", required=True)
    parser.add_argument("--scales", nargs="+", default=["demo", "paper"])
    parser.add_argument("--threads", type=int, default=2)
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
        rows = []
        for patient in args.patients:
            row = run_pair(args.cases / patient, settings)
            rows.append(row)
            print(f"  {patient}__{patient}: elastix {row['elastix']:6.1f} s, transformix "
                  f"{row['transformix']:4.2f} s, DSC {row['dsc_before']:.3f} -> "
                  f"{row['dsc_after']:.3f}  ({row['size']})")
        seconds = [row["elastix"] + row["transformix"] for row in rows]
        print(f"  mean {statistics.mean(seconds):.1f} s per pair, DSC after "
              f"{np.mean([row['dsc_after'] for row in rows]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
