"""Histogram of the phantom's true liver displacements over a generated cohort.

Run by hand; nothing in the project imports it and no test runs it:

    python scripts/phantom_motion.py --seed 2024 --patients 40 --size smoke \\
        --out docs/phantom_motion.png

prints the statistics and writes the figure of docs/phantom.md ("Motion between the scans").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from liverbench.data.phantom import simulate_patient
from liverbench.data.phantom.motion import BREATHING_MM
from liverbench.data.preprocess import mask_centroid as centroid


def motion_figure(seed: int, patients: int, size: str, path: Path) -> None:
    """Histograms of the true cranio-caudal liver displacements over a generated cohort:
    relative to the skeleton (breathing: what deformable registration must find), and between
    the two scanners' world coordinates (frame offset and repositioning included)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shift, world = [], []
    for index in range(patients):
        case = simulate_patient(index, seed, size)
        shift.append(case.truth["liver_shift_mm"][2])
        cect, ncect = (centroid(case.images[f"{p}_liver"]) for p in ("cect", "ncect"))
        world.append(ncect[2] - cect[2])
    shift, world = np.array(shift), np.array(world)
    print(
        f"liver shift z over {patients} patients (seed {seed}, {size}): mean {shift.mean():.1f}"
        f" mm, SD {shift.std(ddof=1):.1f}, range [{shift.min():.1f}, {shift.max():.1f}],"
        f" caudal {np.mean(shift < 0):.0%}; world z: [{world.min():.0f}, {world.max():.0f}]"
    )
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.6, 3.6))
    bins = np.arange(-15.0, 39.0, 3.0)
    left.hist(shift, bins=bins, color="#4477aa", edgecolor="white")
    mean, sd = BREATHING_MM
    x = np.linspace(bins[0], bins[-1], 200)
    pdf = np.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
    left.plot(x, pdf * patients * 3.0, color="#cc6677", label=f"drawn: N({mean:g}, {sd:g}²)")
    left.axvline(0.0, color="grey", lw=0.8)
    left.set_xlabel("liver centroid shift relative to the skeleton, z (mm; > 0 cranial)")
    left.set_ylabel("patients")
    left.set_title(f"breathing: mean {shift.mean():.1f}, SD {shift.std(ddof=1):.1f} mm", fontsize=9)
    left.legend(fontsize=8, frameon=False)
    right.hist(world, bins=np.arange(-360.0, 361.0, 40.0), color="#999933", edgecolor="white")
    right.set_xlabel("nCECT minus CECT liver centroid, world z (mm)")
    right.set_title("with the scanners' frame offset and repositioning", fontsize=9)
    fig.suptitle(f"True liver displacement, {patients} phantom patients (seed {seed})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--size", default="smoke")
    parser.add_argument("--out", type=Path, default=Path("docs/phantom_motion.png"))
    args = parser.parse_args(argv)
    motion_figure(args.seed, args.patients, args.size, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
