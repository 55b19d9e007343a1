"""Model files and training checkpoints: written atomically, checked when read.

A model file carries its architecture with its weights, so prediction rebuilds the network
without the training settings, and the loss history of every stage it went through.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from baselines.deepmedic.model import DeepMedic
from baselines.deepmedic.settings import Architecture
from liverbench.data.io import atomic_path
from liverbench.errors import InputError
from liverbench.settings import SettingsError

FORMAT = "regsegbench-deepmedic-1"


class CheckpointError(InputError):
    """A model or checkpoint file that is unreadable, foreign or of another architecture."""


def save_payload(payload: dict[str, Any], path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def load_payload(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        # torch's own message runs over many lines and advises unsafe loading: not shown
        raise CheckpointError(
            f"{path}: not a readable DeepMedic file (corrupt, or not a torch file)"
        ) from error
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a DeepMedic file of this project (format {FORMAT})")
    return saved


def save_model(path: str | os.PathLike, model: DeepMedic, stage: str,
               history: list[dict[str, Any]], settings: dict[str, Any]) -> None:
    """`settings`: the training settings' plain dict (`Settings.to_dict()`), for the record."""
    save_payload({
        "stage": stage,
        "architecture": model.architecture.to_dict(),
        "model": model.state_dict(),
        "settings": settings,
        "history": history,
    }, path)


def _model_entries(saved: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    if "architecture" not in saved or "model" not in saved:
        raise CheckpointError(f"{path}: a checkpoint, not a DeepMedic model file (no architecture)")
    return saved


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu"
               ) -> tuple[DeepMedic, dict[str, Any]]:
    """The network of a model file, in eval mode on `device`, and the file's contents."""
    saved = _model_entries(load_payload(path), path)
    try:
        architecture = Architecture.from_mapping(saved["architecture"])
    except SettingsError as error:
        raise CheckpointError(f"{path}: architecture: {error}") from None
    model = DeepMedic(architecture)
    model.load_state_dict(saved["model"])
    return model.to(device).eval(), saved


def load_pretrained(model: DeepMedic, path: str | os.PathLike) -> list[dict[str, Any]]:
    """Copy pretrained weights into `model` (same architecture); returns their loss history."""
    saved = _model_entries(load_payload(path), path)
    wanted = model.architecture.to_dict()
    if saved["architecture"] != wanted:
        raise CheckpointError(
            f"{path}: pretrained architecture {saved['architecture']} differs from the "
            f"fine-tuning architecture {wanted}"
        )
    model.load_state_dict(saved["model"])
    return list(saved.get("history", []))
