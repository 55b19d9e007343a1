"""Peak memory of the data rules on a real-size CT, against what each rule declares (a
benchmark script, not a test).

Makes one paper-size phantom patient, puts its CECT and nCECT (and masks) on a grid of the
given size (default 512 x 512 x 600, the size of a diagnostic abdominal CT), writes them as a
user's files would come (int16 .nii.gz), then runs the data steps as the workflow does
(`python -m liverbench.data standardize-h108`, `preprocess`, `pair`), and derives a patient
from the CECT (`python -m liverbench.data.derive`, docs/derived.md), each in its own process,
and prints per step the peak resident memory (VmHWM, as each step's process reads it at
exit; one thread, as the rules run) and the `mem_mb` the rule declares for these files
(liverbench.data.memory, from the image headers).

    python benchmarks/data_memory.py [--size 512 512 600] [--workdir DIR] [--scale paper]

Exit code 1 when a step used more than its rule declares (a Slurm cluster would kill it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import SimpleITK as sitk

from liverbench.config import load
from liverbench.data import memory
from liverbench.layout import image_file
from liverbench.runtime import module_peak_mb

STEPS = ("standardize", "preprocess", "pair", "derive")


def make_case(size_xyz: list[int], work: Path) -> dict[str, Path]:
    """One paper-size phantom patient resampled onto `size_xyz` voxels over its own field of
    view: CTs int16 (linear), masks uint8 (nearest), all .nii.gz as a user's export."""
    files = {name: work / "user" / f"{name}.nii.gz"
             for name in ("cect", "cect_liver", "ncect", "ncect_liver")}
    if all(path.is_file() for path in files.values()):
        return files  # made by an earlier run in this --workdir
    phantom = work / "phantom"
    subprocess.run([sys.executable, "-m", "liverbench.data.phantom", "--kind", "h108",
                    "--out", str(phantom), "--patients", "1", "--seed", "0", "--size", "paper",
                    "--only", "P001"], check=True, stdout=subprocess.DEVNULL)
    source = next(path for path in phantom.rglob("cect.nii*"))
    for phase in ("cect", "ncect"):
        image = sitk.ReadImage(str(source.parent / f"{phase}{''.join(source.suffixes)}"))
        grid = sitk.Image(size_xyz, sitk.sitkUInt8)
        extent = [n * s for n, s in zip(image.GetSize(), image.GetSpacing())]
        grid.SetSpacing([e / n for e, n in zip(extent, size_xyz)])
        grid.SetOrigin(image.GetOrigin())
        grid.SetDirection(image.GetDirection())
        for name, interpolator, pixel in ((phase, sitk.sitkLinear, sitk.sitkInt16),
                                           (f"{phase}_liver", sitk.sitkNearestNeighbor,
                                            sitk.sitkUInt8)):
            original = sitk.ReadImage(str(source.parent / f"{name}{''.join(source.suffixes)}"))
            files[name].parent.mkdir(parents=True, exist_ok=True)
            resampled = sitk.Resample(original, grid, sitk.Transform(), interpolator,
                                      -1024 if pixel == sitk.sitkInt16 else 0, pixel)
            sitk.WriteImage(resampled, str(files[name]), useCompression=True)
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", nargs=3, type=int, default=[512, 512, 600],
                        metavar=("X", "Y", "Z"))
    parser.add_argument("--workdir", type=Path, help="where the case is made (default: a "
                                                     "temporary folder, removed)")
    parser.add_argument("--scale", default="paper", help="the config scale whose preprocess "
                                                         "section (working grid) is used")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="data_memory."))
    config = load(Path(__file__).parents[1] / "config.yaml", {"scale": args.scale})
    files = make_case(args.size, work)
    case, prep, pair = work / "case", work / "prep", work / "pair"
    settings = json.dumps(config["preprocess"])
    commands = {
        "standardize": ["standardize-h108", "--patient", "P000", "--out", str(case),
                               "--sources"] + [f"{name}={path}" for name, path in files.items()],
        "preprocess": ["preprocess", "--case", str(case), "--out", str(prep),
                              "--settings", settings],
        "pair": ["pair", "--moving", image_file(str(case), "cect"),
                        "--moving-liver", image_file(str(case), "cect_liver"),
                        "--fixed", image_file(str(case), "ncect"),
                        "--fixed-liver", image_file(str(case), "ncect_liver"),
                        "--out", str(pair), "--settings", settings,
                        "--prealign-settings", json.dumps(config["prealign"]),
                        "--prealign-out", str(pair / "prealign.tfm"),
                        "--timing-out", str(pair / "timing.json")],
    }
    derive_csv = work / "derive.csv"
    derive_csv.write_text(f"patient_id,cect,cect_liver\nD001,{files['cect']},"
                          f"{files['cect_liver']}\n")
    commands["derive"] = ["--source", str(derive_csv), "--out", str(work / "derived"),
                          "--seed", "1", "--only", "D001"]
    inputs = {
        "standardize": list(files.values()),
        "preprocess": [image_file(str(case), n) for n in ("cect", "cect_liver", "ncect",
                                                          "ncect_liver")],
        "pair": [image_file(str(case), n) for n in ("cect", "cect_liver", "ncect",
                                                    "ncect_liver")],
        "derive": [files["cect"], files["cect_liver"]],
    }
    print(f"CT {args.size[0]} x {args.size[1]} x {args.size[2]} (int16), working grid "
          f"{config['preprocess']['shape']}, {os.cpu_count()} cores")
    print(f"{'step':<12} {'peak MB':>8} {'declared MB':>12}")
    over = False
    for step in STEPS:
        module = "liverbench.data.derive" if step == "derive" else "liverbench.data"
        used = module_peak_mb(module, commands[step], {"OMP_NUM_THREADS": "1"})
        declared = memory.data_rule_mb(step, inputs[step])
        over |= used > declared
        print(f"{step:<12} {used:>8.0f} {declared:>12}" + ("  OVER" if used > declared else ""))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
