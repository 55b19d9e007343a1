"""RegSegNet settings: the `regsegnet:` config section, checked and typed.

The pipeline hands the section over as JSON (`--settings`); everything the model, the loss and
the schedule depend on comes from here, so a checkpoint stores its settings and a prediction
rebuilds exactly the network it was trained as.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

ANNOTATION = "annotation"


class SettingsError(ValueError):
    """A `regsegnet` setting that is missing, unknown or out of range."""


@dataclass(frozen=True)
class LossWeights:
    """λ of each loss term: −MI(warped CECT, nCECT), 1 − Dice(masks), bending energy."""

    mi: float = 1.0
    dice: float = 1.0
    bending: float = 0.01


@dataclass(frozen=True)
class Settings:
    cascades: int = 3
    channels: tuple[int, ...] = (16, 32, 32, 32, 32)
    shape: tuple[int, int, int] | None = None  # working grid (z, y, x); None: from the data
    loss: LossWeights = field(default_factory=LossWeights)
    mi_bins: int = 23
    mi_samples: int = 16384  # voxels drawn per MI evaluation; 0 = every voxel
    lr: float = 1e-3
    epochs: int = 4
    iterations: int = 60  # per cascade per epoch
    batch_size: int = 1
    augment: bool = False  # random flips of the whole pair
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    moving_mask: str = ANNOTATION  # annotation | <method that segments the CECT>
    gpu: int = 0  # GPUs the training rule asks the cluster for (a resource, not a switch)
    loss_grid: tuple[dict, ...] = ()  # loss-weight experiment: [{name, mi, dice, bending}]

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Settings:
        """Typed settings from a config section; unknown keys are an error, absent = default."""
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise SettingsError(f"unknown regsegnet setting(s) {unknown}; known: {sorted(known)}")
        if "loss" in raw:
            loss = raw["loss"] or {}
            bad = sorted(set(loss) - {"mi", "dice", "bending"})
            if bad:
                raise SettingsError(
                    f"unknown regsegnet.loss weight(s) {bad}; use mi, dice, bending"
                )
            raw["loss"] = LossWeights(**{k: float(v) for k, v in loss.items()})
        if "channels" in raw:
            raw["channels"] = tuple(int(c) for c in raw["channels"])
        if raw.get("shape") is not None:
            raw["shape"] = tuple(int(s) for s in raw["shape"])
        if raw.get("seed", 0) is None:  # the pipeline fills in the top-level seed
            raw["seed"] = 0
        if "loss_grid" in raw:
            raw["loss_grid"] = tuple(dict(entry) for entry in raw["loss_grid"] or ())
        settings = cls(**raw)
        settings.validate()
        return settings

    @classmethod
    def from_json(cls, text: str) -> Settings:
        try:
            raw = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as error:
            raise SettingsError(f"--settings is not valid JSON: {error}") from error
        if not isinstance(raw, dict):
            raise SettingsError("--settings must be a JSON object (the regsegnet config section)")
        return cls.from_dict(raw)

    def validate(self) -> None:
        checks = [
            (self.cascades >= 1, "cascades must be >= 1"),
            (len(self.channels) >= 2, "channels needs at least two levels"),
            (all(c > 0 for c in self.channels), "channels must be positive"),
            (self.shape is None or (len(self.shape) == 3 and min(self.shape) >= 4),
             "shape must be three sizes >= 4 (z, y, x)"),
            (self.mi_bins >= 4, "mi_bins must be >= 4"),
            (self.mi_samples >= 0, "mi_samples must be >= 0 (0 = all voxels)"),
            (self.lr > 0, "lr must be > 0"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.iterations >= 1, "iterations must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (min(asdict(self.loss).values()) >= 0, "loss weights must be >= 0"),
            (self.gpu >= 0, "gpu must be >= 0"),
            (bool(self.moving_mask), "moving_mask must be 'annotation' or a method name"),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(f"regsegnet: {message}")

    def with_loss(self, **weights: float) -> Settings:
        return replace(self, loss=replace(self.loss, **weights))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["channels"] = list(self.channels)
        data["shape"] = list(self.shape) if self.shape is not None else None
        data["loss_grid"] = [dict(entry) for entry in self.loss_grid]
        return data

    def training_identity(self) -> dict[str, Any]:
        """What a resumed training must share with its checkpoint: all but the schedule length
        and where it runs (a run may be extended by more epochs, or moved to another device)."""
        data = self.to_dict()
        for key in ("epochs", "device", "gpu", "loss_grid", "moving_mask"):
            data.pop(key)
        return data
