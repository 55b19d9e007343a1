"""Training through nnU-Net's own entry-point functions, resumable, with a model record.

`train` does what `nnUNetv2_train DATASET CONFIG 0 -tr nnUNetTrainerShort -p PLANS
[-pretrained_weights CKPT]` does, with nnU-Net's functions (`get_trainer_from_args`, which
finds the trainer by name through `nnUNet_extTrainer`, and `maybe_load_checkpoint`, which
loads pretrained weights), but without the CLI's `torch.set_num_threads(cpu_count())`, which
would ignore the threads the job was given. Call `environment.configure` first.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from nnunetv2.run.run_training import get_trainer_from_args, maybe_load_checkpoint

from baselines.nnunet import datasets
from baselines.nnunet.environment import folder_sources, folders, set_schedule
from baselines.nnunet.settings import Schedule

TRAINER = "nnUNetTrainerShort"
FOLD = 0
FINAL = "checkpoint_final.pth"
RUN_STAMP = "regsegbench_run.json"  # what a checkpoint in the fold folder was trained with


def model_folder(root: str | os.PathLike, dataset: str, plans: str, configuration: str) -> Path:
    """nnU-Net's output folder of one trained model (all folds)."""
    return (folders(root)["nnUNet_results"] / datasets.dataset_name(dataset)
            / f"{TRAINER}__{plans}__{configuration}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("nnunet settings: device 'cuda' requested but no GPU is available")
    return torch.device(name)


def train(
    root: str | os.PathLike,
    dataset: str,
    plans: str,
    configuration: str,
    schedule: Schedule,
    *,
    pretrained: str | os.PathLike | None = None,
    device: torch.device,
    validate: bool = True,
    mirroring: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Train fold 0 of `dataset`; resume a matching interrupted run; return a model record."""
    set_schedule(schedule.epochs, schedule.iterations_per_epoch, schedule.val_iterations)
    folder = model_folder(root, dataset, plans, configuration)
    fold_dir = folder / f"fold_{FOLD}"
    stamp = {"schedule": asdict(schedule), "pretrained": _file_digest(pretrained),
             "plans": plans, "configuration": configuration, "seed": seed,
             "inputs": _inputs_digest(root, dataset, plans)}
    resume = _can_resume(fold_dir, stamp)
    if not resume and fold_dir.exists():
        shutil.rmtree(fold_dir)  # another run's checkpoints must never be picked up
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    started = time.perf_counter()
    trainer = get_trainer_from_args(str(datasets.dataset_id(dataset)), configuration, FOLD,
                                    TRAINER, plans, continue_training=resume, device=device)
    (fold_dir / RUN_STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    if resume and (fold_dir / FINAL).exists():
        trainer.load_checkpoint(str(fold_dir / FINAL))
    else:
        maybe_load_checkpoint(trainer, resume, False, None if resume else
                              (str(pretrained) if pretrained else None))
        trainer.run_training()
    seconds_training = time.perf_counter() - started

    validation_dice = None
    seconds_validation = 0.0
    summary = fold_dir / "validation" / "summary.json"
    if validate and resume and (fold_dir / FINAL).exists() and summary.exists():
        validation_dice = _validation_dice(summary)  # a finished run, validated before
    elif validate:
        started = time.perf_counter()
        validation_dice = _validate(trainer, mirroring)
        seconds_validation = time.perf_counter() - started
    return {
        "dataset": datasets.dataset_name(dataset),
        "plans": plans,
        "configuration": configuration,
        "trainer": TRAINER,
        "fold": FOLD,
        "model_folder": str(folder),
        "checkpoint": str(fold_dir / FINAL),
        "liver_labels": [1],
        "nnunet_root": str(root),
        "nnunet_folders": folder_sources(root),
        "pretrained_weights": str(pretrained) if pretrained else None,
        "schedule": asdict(schedule),
        "resumed": resume,
        "seconds_training": round(seconds_training, 2),
        "seconds_validation": round(seconds_validation, 2),
        "validation_dice": validation_dice,
        "validation_mirroring": mirroring if validate else None,
        "history": history(trainer),
        "device": device.type,
        "threads": torch.get_num_threads(),
    }


def _file_digest(path: str | os.PathLike | None) -> str | None:
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained checkpoint not found")
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _inputs_digest(root: str | os.PathLike, dataset: str, plans: str) -> str:
    """A digest of what the training data is: plans, split and fingerprint (rewritten by every
    `prepare`)."""
    folder = folders(root)["nnUNet_preprocessed"] / datasets.dataset_name(dataset)
    digest = hashlib.sha256()
    for name in (f"{plans}.json", "splits_final.json", "dataset_fingerprint.json"):
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; run `python -m baselines.nnunet prepare`")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def history(trainer: Any) -> list[dict[str, float]]:
    """Per-epoch losses and pseudo Dice from nnU-Net's logger (what its progress.png shows)."""
    logged = {key: trainer.logger.get_value(key, None) for key in (
        "train_losses", "val_losses", "mean_fg_dice", "ema_fg_dice",
        "epoch_start_timestamps", "epoch_end_timestamps")}
    epochs = min(len(values) for values in logged.values())
    return [
        {
            "epoch": epoch,
            "train_loss": round(float(logged["train_losses"][epoch]), 5),
            "val_loss": round(float(logged["val_losses"][epoch]), 5),
            "pseudo_dice": round(float(logged["mean_fg_dice"][epoch]), 5),
            "ema_pseudo_dice": round(float(logged["ema_fg_dice"][epoch]), 5),
            "seconds": round(float(logged["epoch_end_timestamps"][epoch]
                                   - logged["epoch_start_timestamps"][epoch]), 3),
        }
        for epoch in range(epochs)
    ]


def _can_resume(fold_dir: Path, stamp: dict[str, Any]) -> bool:
    """Only a run with the same settings that left a checkpoint to continue from."""
    stamp_file = fold_dir / RUN_STAMP
    if not stamp_file.exists():
        return False
    try:
        same = json.loads(stamp_file.read_text()) == stamp
    except json.JSONDecodeError:
        return False
    return same and any((fold_dir / name).exists() for name in (FINAL, "checkpoint_latest.pth"))


def _validate(trainer: Any, mirroring: bool) -> float | None:
    """nnU-Net's final validation (full cases, sliding window), mirroring as configured."""
    allowed_axes = trainer.inference_allowed_mirroring_axes
    if not mirroring:
        trainer.inference_allowed_mirroring_axes = None  # the predictor then skips mirroring
    try:
        trainer.perform_actual_validation(False)
    finally:
        trainer.inference_allowed_mirroring_axes = allowed_axes
    return _validation_dice(Path(trainer.output_folder) / "validation" / "summary.json")


def _validation_dice(summary: Path) -> float | None:
    """Mean foreground Dice of nnU-Net's validation summary (None if missing or NaN)."""
    if not summary.exists():
        return None
    dice = json.loads(summary.read_text())["foreground_mean"]["Dice"]
    return None if dice is None or np.isnan(dice) else round(float(dice), 4)
