"""Checkpoints: the resumable training state, and the trained model.

Two files, two purposes. `checkpoint.pt` is everything a killed training needs to go on as if
it had never stopped (weights, one optimiser per cascade, epoch, RNG states, loss history,
best weights so far). `model.pt` is what prediction needs: the best-validation weights and the
settings that rebuild the network. Both load with `weights_only=True` (no pickled code), and
a missing, truncated or foreign file is an error that names it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from liverbench.data.io import atomic_path
from liverbench.errors import InputError
from liverbench.settings import SettingsError
from regsegnet.model import RegSegNet
from regsegnet.settings import Settings

TRAINING_FORMAT = "regsegnet-training"
MODEL_FORMAT = "regsegnet-model"
VERSION = 1


class CheckpointError(InputError):
    """A checkpoint or model file that is missing or cannot be used; the message names it."""


def save(payload: dict[str, Any], path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str | os.PathLike, expected_format: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from error
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: expected a {expected_format} file, found {found!r}")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: format version {payload.get('version')}, this code reads version {VERSION}"
        )
    return payload


def model_payload(
    model: RegSegNet, settings: Settings, shape: tuple[int, ...], state: dict | None = None,
    **meta: Any,
) -> dict[str, Any]:
    return {
        "format": MODEL_FORMAT,
        "version": VERSION,
        "settings": settings.to_dict(),
        "shape": list(shape),
        "state_dict": state if state is not None else model.state_dict(),
        **meta,
    }


def load_model(
    path: str | os.PathLike, device: torch.device | str = "cpu"
) -> tuple[RegSegNet, Settings, dict[str, Any]]:
    """Rebuild the trained network from `model.pt`, in eval mode on `device`."""
    payload = load(path, MODEL_FORMAT)
    stored = dict(payload["settings"])
    stored.pop("shape", None)  # a setting until the shape came from the data; see "shape"
    try:
        settings = Settings.from_mapping(stored, section="settings")
    except SettingsError as error:
        raise CheckpointError(f"{path}: {error}") from error
    model = RegSegNet.from_settings(settings)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: weights do not fit the stored settings ({error})"
        ) from error
    model.to(device).eval()
    meta = {k: v for k, v in payload.items() if k not in ("state_dict", "settings")}
    return model, settings, meta
