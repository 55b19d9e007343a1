"""The `deepmedic:` config section, parsed once into typed settings with clear errors.

Defaults are the paper-scale values (DeepMedic's published configuration); the scale blocks of
config.yaml shrink them for the demo and smoke runs. Unknown keys are refused so that a typo in
config.yaml never silently falls back to a default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch

from baselines.deepmedic.model import Architecture


@dataclass(frozen=True)
class Settings:
    """Everything the CLI needs besides paths.

    Segment sizes follow DeepMedic's convention: the size of the normal-resolution pathway's
    input (25³ for training, 45³ for inference in the original); the context pathways' larger
    inputs and the output size are derived from them (see `model.Geometry`). `seed` None
    means the project's top-level seed (given to the CLI); `gpu` is only read by the
    scheduler (the GPUs a training job asks for).
    """

    architecture: Architecture = field(default_factory=Architecture)
    segment_train: tuple[int, int, int] = (25, 25, 25)
    segment_infer: tuple[int, int, int] = (45, 45, 45)
    batch_size: int = 10
    lr: float = 1e-3
    lr_finetune: float = 1e-3
    iterations_pretrain: int = 20000
    iterations_finetune: int = 10000
    foreground_fraction: float = 0.5
    validate_every: int = 1000
    checkpoint_every: int = 500
    seed: int | None = None
    device: str = "auto"
    threads: int = 2
    gpu: int = 0

    @classmethod
    def from_dict(cls, section: dict[str, Any]) -> Settings:
        """Build from the config section (architecture keys sit flat beside the others)."""
        arch_keys = {f.name for f in fields(Architecture)}
        own_keys = {f.name for f in fields(cls)} - {"architecture"}
        unknown = set(section) - arch_keys - own_keys
        if unknown:
            known = ", ".join(sorted(arch_keys | own_keys))
            raise ValueError(
                f"deepmedic settings: unknown key(s) {sorted(unknown)}; known: {known}"
            )
        arch_values = {k: _tuple(v) for k, v in section.items() if k in arch_keys}
        own_values = {k: _tuple(v) for k, v in section.items() if k in own_keys}
        settings = cls(architecture=Architecture(**arch_values), **own_values)
        settings.validate()
        return settings

    @classmethod
    def from_json(cls, text: str | None) -> Settings:
        if not text:
            return cls()
        try:
            section = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"--settings is not valid JSON: {error}") from error
        if not isinstance(section, dict):
            raise ValueError("--settings must be a JSON object (the deepmedic config section)")
        return cls.from_dict(section)

    def validate(self) -> None:
        self.architecture.validate()
        for name in ("segment_train", "segment_infer"):
            value = getattr(self, name)
            if len(value) != 3 or min(value) < 1:
                raise ValueError(
                    f"deepmedic settings: {name} must be 3 positive sizes, got {value}"
                )
        positive = ("batch_size", "iterations_pretrain", "iterations_finetune", "validate_every",
                    "checkpoint_every", "threads")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(
                    f"deepmedic settings: {name} must be >= 1, got {getattr(self, name)}"
                )
        if not 0.0 <= self.foreground_fraction <= 1.0:
            raise ValueError("deepmedic settings: foreground_fraction must lie in [0, 1]")
        if self.gpu < 0 or (self.seed is not None and self.seed < 0):
            raise ValueError("deepmedic settings: gpu and seed must be >= 0")
        if self.lr <= 0 or self.lr_finetune <= 0:
            raise ValueError("deepmedic settings: learning rates must be positive")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(
                f"deepmedic settings: device must be auto, cpu or cuda[:N], got {self.device}"
            )

    def with_seed(self, default: int) -> Settings:
        """These settings with `seed` set to `default` if the section leaves it None."""
        return self if self.seed is not None else replace(self, seed=default)

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
