"""Shared test helpers: tiny synthetic CT volumes with a body and a liver, written as files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from liverbench.layout import image_file

ROOT = Path(__file__).resolve().parent.parent

# A developer's own nnU-Net folders (docs/nnunet.md) must not receive the tests' datasets:
# the tests run with the pipeline's folders, and set these variables where they test them.
for _variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
    os.environ.pop(_variable, None)


def ellipsoid(shape, centre, radii) -> np.ndarray:
    """Boolean (z, y, x) ellipsoid, centre and radii in voxels."""
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0


def tiny_ct(
    shape=(20, 40, 40),
    spacing_xyz=(8.0, 8.0, 10.0),
    origin_xyz=(-160.0, -160.0, -100.0),
    liver_shift=(0, 0, 0),
    liver_hu=110.0,
    seed=0,
) -> tuple[sitk.Image, sitk.Image]:
    """A CT (int16 HU) with an elliptic body and an elliptic 'liver', and the liver mask."""
    rng = np.random.default_rng(seed)
    z, y, x = shape
    body = ellipsoid(shape, (z / 2, y / 2, x / 2), (z * 2, y * 0.4, x * 0.45))
    centre = (z / 2 + liver_shift[0], y / 2 + liver_shift[1], x * 0.4 + liver_shift[2])
    liver = ellipsoid(shape, centre, (z * 0.3, y * 0.2, x * 0.2)) & body
    ct = np.full(shape, -1000.0)
    ct[body] = 40.0
    ct[liver] = liver_hu
    ct += rng.normal(0, 10, shape)
    image = sitk.GetImageFromArray(ct.astype(np.int16))
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin_xyz)
    mask = sitk.GetImageFromArray(liver.astype(np.uint8))
    mask.CopyInformation(image)
    return image, mask


def write_case(folder: Path, seed: int = 0, spect: bool = True) -> Path:
    """A standardized H108-style case folder: CECT, nCECT (shifted liver), masks, SPECT."""
    folder.mkdir(parents=True, exist_ok=True)
    cect, cect_liver = tiny_ct(seed=seed, shape=(24, 40, 40), spacing_xyz=(8.0, 8.0, 8.0))
    ncect, ncect_liver = tiny_ct(
        seed=seed + 1, liver_shift=(1, 2, 1), liver_hu=55.0, origin_xyz=(-150.0, -170.0, -90.0)
    )
    for name, image in dict(
        cect=cect, cect_liver=cect_liver, ncect=ncect, ncect_liver=ncect_liver
    ).items():
        sitk.WriteImage(image, image_file(str(folder), name))
    if spect:
        shape = sitk.GetArrayViewFromImage(ncect).shape
        lungs = sitk.GetImageFromArray(
            ellipsoid(shape, (2, shape[1] / 2, shape[2] / 2), (2, 5, 8)).astype(np.uint8)
        )
        lungs.CopyInformation(ncect)
        counts = sitk.Cast(ncect_liver, sitk.sitkFloat32) * 100.0 + 1.0
        sitk.WriteImage(counts, image_file(str(folder), "spect"))
        sitk.WriteImage(lungs, image_file(str(folder), "ncect_lungs"))
    return folder


@pytest.fixture
def case_dir(tmp_path: Path) -> Path:
    return write_case(tmp_path / "P001")


def run_snakemake(workdir: Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run the project's workflow in `workdir` (results land in workdir/results/)."""
    command = [
        str(Path(sys.executable).parent / "snakemake"),
        "--snakefile", str(ROOT / "workflow" / "Snakefile"),
        "--directory", str(workdir),
        "--cores", "2",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


# The smoke run's external test cohorts (docs/external-cohorts.md), relative to the working
# directory: a derived real-anatomy cohort built from a small MSD-layout CECT cohort of another
# seed, and a manifest with only the four required columns (no SPECT, lungs or true motion);
# every snakemake call on the smoke run passes the same config.
SMOKE_EXTERNAL_SOURCE = "external_source/Task03_Liver"
SMOKE_EXTERNAL_MANIFEST = "external_source/minimal.csv"
SMOKE_CONFIG = (
    "--config", "experiment=smoke", "scale=smoke",
    f"test_cohorts=[{{name: derived, derived_from: {{source: {SMOKE_EXTERNAL_SOURCE}}}}}, "
    f"{{name: minimal, manifest: {SMOKE_EXTERNAL_MANIFEST}}}]",
)


PHI = {"0010|0010": "DOE^JANE", "0010|0020": "PID48213", "0010|0030": "19480317",
       "0008|0050": "ACC99127"}  # patient's name, ID, birth date; accession number


def write_dicom_series(image: sitk.Image, folder: Path, extra: dict | None = None) -> None:
    """Write a CT as a DICOM series (one file per slice), as a scanner export would; `extra`
    tags (e.g. the patient's name) go into every slice."""
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.1"
    direction = image.GetDirection()
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        origin = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": "CT",
            "0020|000e": series_uid,
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|0032": "\\".join(f"{v:.4f}" for v in origin),
            "0020|0037": "\\".join(f"{v}" for v in direction[0:3] + direction[3:6]),
            "0020|0013": str(k + 1),
            "0018|0050": f"{image.GetSpacing()[2]}",
            "0028|0030": f"{image.GetSpacing()[1]}\\{image.GetSpacing()[0]}",
        }
        for tag, value in {**tags, **(extra or {})}.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(slice_)


def write_minimal_manifest(workdir: Path) -> None:
    """One phantom patient (another seed) listed with cect, cect_liver, ncect, ncect_liver;
    its CECT a DICOM series whose headers name the patient (PHI), as a PACS export does: none
    of it may reach an output, a log or the report (tests/test_report.py)."""
    folder = workdir / "external_source" / "h108"
    subprocess.run(
        [sys.executable, "-m", "liverbench.data.phantom", "--size", "smoke", "--out",
         str(folder), "--patients", "1", "--seed", "11"],
        check=True, capture_output=True,
    )
    cect = folder / "P001" / "cect_dicom"
    write_dicom_series(sitk.ReadImage(image_file(str(folder / "P001"), "cect")), cect, PHI)
    names = ("cect", "cect_liver", "ncect", "ncect_liver")
    paths = ["h108/P001/cect_dicom"] + [image_file("h108/P001", name) for name in names[1:]]
    rows = ["patient_id," + ",".join(names), "M001," + ",".join(paths)]
    (workdir / SMOKE_EXTERNAL_MANIFEST).write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole smoke-scale DAG with two external test cohorts, run once per test session;
    returns results/smoke."""
    workdir = tmp_path_factory.mktemp("smoke")
    subprocess.run(
        [sys.executable, "-m", "liverbench.data.phantom", "--kind", "msd", "--size", "smoke",
         "--out", str(workdir / SMOKE_EXTERNAL_SOURCE), "--patients", "2", "--seed", "7"],
        check=True, capture_output=True,
    )
    write_minimal_manifest(workdir)
    result = run_snakemake(workdir, *SMOKE_CONFIG)
    if result.returncode != 0:
        logs = "\n".join(
            f"== {p}\n{p.read_text()[-3000:]}" for p in sorted(workdir.rglob("logs/**/*.log"))
        )
        pytest.fail(f"smoke DAG failed:\n{result.stderr[-6000:]}\n{logs[-12000:]}")
    return workdir / "results" / "smoke"
