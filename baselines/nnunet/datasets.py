"""The benchmark's cohorts as nnU-Net raw datasets, and the split nnU-Net trains with.

Three datasets per experiment: the MSD-like pretraining cohort (CECT), the cohort's CECT and
the cohort's nCECT. Images go in unchanged, in their original geometry: nnU-Net resamples
to its own target spacing and maps predictions back itself. Every image/label pair is checked
on the way in (readable, binary, same grid), so that a bad case fails here, with its file
named, and not deep inside nnU-Net's worker processes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from liverbench.data.io import read_image, read_mask, write_image, write_json
from liverbench.errors import InputError
from liverbench.layout import image_file

# Dataset ids are local to one experiment's nnU-Net folders (results/EXP/nnunet/...).
DATASETS = {
    "msd": (501, "MSDLiver"),
    "cect": (502, "CohortCECT"),
    "ncect": (503, "CohortNCECT"),
}
FILE_ENDING = ".nii.gz"
MARKER = "regsegbench.json"  # in each raw dataset folder: the experiment that wrote it


def dataset_name(key: str) -> str:
    """nnU-Net's folder name, e.g. Dataset502_CohortCECT."""
    number, name = DATASETS[key]
    return f"Dataset{number:03d}_{name}"


def dataset_id(key: str) -> int:
    return DATASETS[key][0]


@dataclass(frozen=True)
class Case:
    """One training case: an identifier, its CT and its liver mask."""

    name: str
    image: Path
    label: Path


def cases_from_folders(folders: Sequence[str | os.PathLike], image: str) -> list[Case]:
    """Cases from standardized case folders: the `image` of each and its `_liver` mask."""
    cases = [
        Case(Path(folder).name, Path(image_file(str(folder), image)),
             Path(image_file(str(folder), f"{image}_liver")))
        for folder in folders
    ]
    names = [case.name for case in cases]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(f"case folders with the same name: {duplicates}")
    return cases


def check_owner(paths: dict[str, Path], owner: str) -> None:
    """In nnU-Net folders shared with other work (the user's `nnUNet_*` variables), refuse
    to touch a dataset id of this pipeline that holds another dataset, or this pipeline's
    dataset written by another experiment (`MARKER`): nothing of theirs is overwritten."""
    for key in DATASETS:
        ours = dataset_name(key)
        for variable, root in paths.items():
            for found in sorted(root.glob(f"Dataset{dataset_id(key):03d}_*")):
                if found.name != ours:
                    raise InputError(
                        f"{found}: {variable} holds dataset {dataset_id(key)} ({found.name}), "
                        f"an id regsegbench uses for {ours}; unset {variable} to use the "
                        "pipeline's own folders")
        folder = paths["nnUNet_raw"] / ours
        if folder.exists():
            marker = folder / MARKER
            written_by = (json.loads(marker.read_text(encoding="utf-8")).get("experiment")
                          if marker.is_file() else None)
            if written_by != owner:
                raise InputError(
                    f"{folder}: written by {written_by or 'something other than regsegbench'}"
                    f", not this experiment ({owner}); its datasets and models would be "
                    "overwritten. Unset the nnUNet_* variables to use the pipeline's folders")


def write_raw_dataset(raw_root: Path, key: str, cases: Sequence[Case], description: str,
                      owner: str = "") -> Path:
    """Write `raw_root/DatasetXXX_Name/` (imagesTr, labelsTr, dataset.json) from scratch.

    Images are relative symbolic links to the case files, not copies (the MSD cohort alone is
    131 CTs); labels are written as 0/1 masks. `owner` (the experiment) goes into MARKER."""
    if not cases:
        raise InputError(f"nnU-Net dataset {dataset_name(key)}: no cases")
    folder = raw_root / dataset_name(key)
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    for case in cases:
        image = read_image(case.image)
        label = read_mask(case.label, image, case.image)
        link = folder / "imagesTr" / f"{case.name}_0000{FILE_ENDING}"
        link.symlink_to(os.path.relpath(Path(case.image).resolve(), link.parent.resolve()))
        write_image(label, folder / "labelsTr" / f"{case.name}{FILE_ENDING}")
    write_json({"experiment": owner, "written_by": "regsegbench"}, folder / MARKER)
    write_json(
        {
            "name": dataset_name(key),
            "description": description,
            "channel_names": {"0": "CT"},
            "labels": {"background": 0, "liver": 1},
            "numTraining": len(cases),
            "file_ending": FILE_ENDING,
        },
        folder / "dataset.json",
    )
    return folder


def holdout_split(names: Sequence[str], fraction: float = 0.2) -> dict[str, list[str]]:
    """A deterministic train/val split for a cohort without one (the pretraining cohort).

    With a single case, it is both: nnU-Net needs a non-empty validation set.
    """
    names = sorted(names)
    if len(names) == 1:
        return {"train": names, "val": names}
    n_val = max(1, round(len(names) * fraction))
    return {"train": names[:-n_val], "val": names[-n_val:]}


def write_split(preprocessed_root: Path, key: str, split: dict[str, list[str]]) -> Path:
    """nnU-Net's `splits_final.json` with one fold (fold 0): our split, not its 5-fold CV."""
    if not split["train"] or not split["val"]:
        raise InputError(f"{dataset_name(key)}: split needs training and validation cases, got "
                         f"{len(split['train'])} and {len(split['val'])}")
    path = preprocessed_root / dataset_name(key) / "splits_final.json"
    write_json([{"train": sorted(split["train"]), "val": sorted(split["val"])}], path)
    return path
