"""A trained nnU-Net v2 model the user brings, checked and used like one trained here.

A lab that already has an nnU-Net liver model (its own, or one trained on MSD Task03) should
not retrain it: `nnunet.pretrained_model.cect` / `.ncect` name its model folder (nnU-Net's
`nnUNet_results/DatasetXXX_Name/Trainer__Plans__configuration`, holding plans.json,
dataset.json and fold_N/checkpoint_*.pth). The check is what would otherwise fail silently:
a 2-D or multi-channel model, one normalised for MR (its intensities would be garbage on CT),
labels that hold no liver. Call `environment.configure` before importing this module.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from baselines.nnunet.settings import PretrainedModels
from liverbench.errors import InputError

CT_NORMALIZATION = "CTNormalization"


class PretrainedModelError(InputError):
    """A model folder that cannot serve as the pipeline's liver segmenter; names the folder."""


def fold_folder(folder: Path, fold: int | str) -> Path:
    return folder / f"fold_{fold}"


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PretrainedModelError(f"{path}: not found; a trained nnU-Net v2 model folder holds "
                                   "plans.json, dataset.json and fold_N/checkpoint_final.pth")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PretrainedModelError(f"{path}: not valid JSON ({error})") from error


def liver_label_values(dataset: dict[str, Any], names: tuple[str, ...], where: Path) -> list[int]:
    """The label values of `names` in a dataset.json; region-based labels (lists) are not
    liver masks this pipeline can read."""
    labels = dataset.get("labels") or {}
    missing = [name for name in names if name not in labels]
    if missing:
        raise PretrainedModelError(
            f"{where}: no label {missing} among its labels {sorted(labels)}; set "
            "nnunet.pretrained_model.liver_labels to the names that make up the liver")
    values = [labels[name] for name in names]
    if not all(isinstance(value, int) for value in values):
        raise PretrainedModelError(f"{where}: labels {names} are regions ({values}); only "
                                   "plain integer labels are supported")
    return sorted(values)


def check_model(folder: str | os.PathLike, settings: PretrainedModels) -> dict[str, Any]:
    """What the pipeline needs to know of a model folder, after checking that it fits: a 3-D
    configuration, one CT-normalised input channel, the liver labels, the checkpoint."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PretrainedModelError(f"{folder}: model folder not found "
                                   "(nnunet.pretrained_model)")
    parts = folder.name.split("__")
    if len(parts) != 3:
        raise PretrainedModelError(f"{folder}: not an nnU-Net model folder name "
                                   "(Trainer__Plans__configuration)")
    trainer, plans_name, configuration = parts
    plans = _read_json(folder / "plans.json")
    dataset = _read_json(folder / "dataset.json")
    checkpoint = fold_folder(folder, settings.fold) / settings.checkpoint
    if not checkpoint.is_file():
        raise PretrainedModelError(f"{checkpoint}: checkpoint not found (nnunet.pretrained_model"
                                   ".fold and .checkpoint)")
    manager = PlansManager(plans)
    if configuration not in manager.available_configurations:
        raise PretrainedModelError(f"{folder / 'plans.json'}: no configuration {configuration!r}"
                                   f" (has {manager.available_configurations})")
    config = manager.get_configuration(configuration)
    if len(config.patch_size) != 3:
        raise PretrainedModelError(f"{folder}: configuration {configuration!r} is "
                                   f"{len(config.patch_size)}-D; the pipeline segments 3-D CT")
    channels = dataset.get("channel_names") or dataset.get("modality") or {}
    if len(channels) != 1:
        raise PretrainedModelError(f"{folder / 'dataset.json'}: {len(channels)} input channels "
                                   f"({channels}); the pipeline gives one CT")
    if list(config.normalization_schemes) != [CT_NORMALIZATION]:
        raise PretrainedModelError(
            f"{folder / 'plans.json'}: input normalised with {config.normalization_schemes}, "
            f"not {CT_NORMALIZATION}: a model trained on another modality would read CT "
            "intensities wrongly")
    return {
        "dataset": dataset.get("name") or folder.parent.name,
        "plans": plans_name,
        "configuration": configuration,
        "trainer": trainer,
        "fold": settings.fold,
        "model_folder": str(folder),
        "checkpoint": str(checkpoint),
        "checkpoint_blake2b": _digest(checkpoint),
        "liver_labels": liver_label_values(dataset, settings.liver_labels, folder / "dataset.json"),
        "patch_size": list(config.patch_size),
        "spacing": list(config.spacing),
        "imported": True,
        "history": [],
    }


def _digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
