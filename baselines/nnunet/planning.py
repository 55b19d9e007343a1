"""Raw datasets -> fingerprints -> plans -> preprocessed data, for pretraining and training.

Pretraining follows nnU-Net's documented route (documentation/pretraining_and_finetuning.md):
plan the dataset the model is trained on in the end (the target), move the target's plans to
the pretraining dataset (`move_plans_between_datasets`), preprocess the pretraining dataset
with them and train it; then train the target with the pretrained weights. The pretrained
network thus has the target's architecture and the target's intensity normalisation.

Call `environment.configure` before importing this module.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nnunetv2.experiment_planning.plan_and_preprocess_api import (
    extract_fingerprints,
    plan_experiments,
    preprocess,
)
from nnunetv2.experiment_planning.plans_for_pretraining.move_plans_between_datasets import (
    move_plans_between_datasets,
)

from baselines.nnunet import datasets
from baselines.nnunet.environment import USER_FOLDERS, folder_sources, folders
from baselines.nnunet.plans import add_small_configuration, describe
from baselines.nnunet.settings import FULLRES, TARGETS, Settings
from liverbench.errors import InputError

PLANS = "nnUNetPlans"  # nnU-Net's default planner (ExperimentPlanner), as in Luu et al.
DESCRIPTIONS = {
    "msd": "MSD Task03 liver (or the phantom MSD-like cohort): CECT, pretraining",
    "cect": "the cohort's contrast-enhanced CT (training + validation patients)",
    "ncect": "the cohort's non-contrast CT of SPECT-CT (training + validation patients)",
}


def pretraining_plans(target: str) -> str:
    """Plans identifier of the target's plans once moved to the pretraining dataset."""
    return f"{PLANS}_{datasets.DATASETS[target][1]}"


def prepare(
    root: str | os.PathLike,
    msd_folders: Sequence[str | os.PathLike],
    train_folders: Sequence[str | os.PathLike],
    val_folders: Sequence[str | os.PathLike],
    settings: Settings,
    threads: int,
    targets: Sequence[str] = TARGETS,
) -> dict[str, Any]:
    """Write the raw datasets (pretraining + `targets`), plan and preprocess them; return a
    summary for reports."""
    unknown = set(targets) - set(TARGETS)
    if unknown or not targets:
        raise InputError(f"targets must be among {TARGETS}, got {list(targets)}")
    missing = set(settings.pretraining_sources(targets)) - set(targets)
    if missing:
        raise InputError(f"targets {list(targets)} are pretrained with the plans of "
                         f"{sorted(missing)}; build those too (--targets)")
    paths = folders(root)
    raw, preprocessed = paths["nnUNet_raw"], paths["nnUNet_preprocessed"]
    owner = str(Path(root).resolve())
    if USER_FOLDERS:
        datasets.check_owner(paths, owner)
    for key in datasets.DATASETS:  # derived data: always rebuilt from the cases
        shutil.rmtree(preprocessed / datasets.dataset_name(key), ignore_errors=True)

    msd_cases = datasets.cases_from_folders(msd_folders, "cect")
    datasets.write_raw_dataset(raw, "msd", msd_cases, DESCRIPTIONS["msd"], owner)
    train_names = [Path(f).name for f in train_folders]
    val_names = [Path(f).name for f in val_folders]
    for target in targets:
        cases = datasets.cases_from_folders([*train_folders, *val_folders], target)
        datasets.write_raw_dataset(raw, target, cases, DESCRIPTIONS[target], owner)

    keys = ["msd", *targets]
    ids = [datasets.dataset_id(key) for key in keys]
    # nnU-Net's integrity check is skipped: write_raw_dataset has checked every case already.
    extract_fingerprints(ids, num_processes=threads, check_dataset_integrity=False,
                         verbose=False, show_progress_bar=False)
    # The pretraining dataset is planned too: planning copies dataset.json, which
    # preprocessing with moved plans needs.
    plan_experiments(ids)

    configuration = settings.configuration
    summary: dict[str, Any] = {
        "configuration": configuration,
        "small_configuration": settings.is_small,
        "why": _why(settings),
        "threads": threads,
        "nnunet_folders": folder_sources(root),
        "datasets": {},
        "targets": {},
    }
    msd_split = datasets.holdout_split([case.name for case in msd_cases])
    summary["datasets"]["msd"] = {"name": datasets.dataset_name("msd"), **msd_split}
    for target in targets:
        target_id = datasets.dataset_id(target)
        plans_file = preprocessed / datasets.dataset_name(target) / f"{PLANS}.json"
        plans = json.loads(plans_file.read_text())
        if settings.is_small:
            plans = add_small_configuration(plans, configuration, settings.small_network)
            plans_file.write_text(json.dumps(plans, indent=4) + "\n")
        elif configuration != FULLRES:
            raise InputError(f"configuration {configuration!r} is not in the plans")
        preprocess([target_id], PLANS, [configuration], num_processes=[threads],
                   show_progress_bar=False)
        datasets.write_split(preprocessed, target, {"train": train_names, "val": val_names})
        summary["datasets"][target] = {"name": datasets.dataset_name(target),
                                       "train": sorted(train_names), "val": sorted(val_names)}
        source = settings.pretraining.get(target)
        entry = {"plans": PLANS, "configuration": describe(plans, configuration),
                 "nnunet_3d_fullres": describe(plans, FULLRES),
                 "pretrained_from": None if source is None else {
                     "dataset": datasets.dataset_name("msd"), "plans": pretraining_plans(source)}}
        if target in settings.pretraining_sources(targets):
            identifier = pretraining_plans(target)
            move_plans_between_datasets(target_id, datasets.dataset_id("msd"), PLANS, identifier)
            preprocess([datasets.dataset_id("msd")], identifier, [configuration],
                       num_processes=[threads], show_progress_bar=False)
        summary["targets"][target] = entry
    datasets.write_split(preprocessed, "msd", msd_split)
    return summary


def _why(settings: Settings) -> str:
    if not settings.is_small:
        return "nnU-Net's own 3d_fullres configuration, as in Luu et al. 2023."
    network = settings.small_network
    return (
        f"CPU budget: an extra plans configuration '{settings.configuration}' inheriting from "
        f"nnU-Net's 3d_fullres (same preprocessing, loss and augmentation) with "
        f"{len(network.features)} stages of {list(network.features)} features, spacing "
        f"{list(network.spacing)} mm (z, y, x) and patch {list(network.patch_size)}; "
        "nnU-Net's own 3d_fullres costs several seconds per iteration on 2 CPU cores."
    )
