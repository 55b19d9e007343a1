"""The `nnunet:` config section, parsed once into typed settings with clear errors.

The defaults are the `paper` scale: nnU-Net's own `3d_fullres` and its default schedule
(1000 epochs of 250 iterations). The demo and smoke scales switch to a small extra plans
configuration (see `plans.add_small_configuration`) and short schedules. Unknown keys are
refused, so a typo in config.yaml never falls back to a default silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

FULLRES = "3d_fullres"
TARGETS = ("cect", "ncect")  # the cohort's two nnU-Net datasets


@dataclass(frozen=True)
class Schedule:
    """One training run's length: what `nnUNetTrainerShort` reads from the environment."""

    epochs: int = 1000
    iterations_per_epoch: int = 250
    val_iterations: int = 50

    def validate(self, name: str) -> None:
        for key in ("epochs", "iterations_per_epoch", "val_iterations"):
            if getattr(self, key) < 1:
                raise ValueError(f"nnunet settings: {name}.{key} must be >= 1, got "
                                 f"{getattr(self, key)}")


@dataclass(frozen=True)
class SmallNetwork:
    """The extra plans configuration used when `configuration` is not 3d_fullres.

    It inherits everything from 3d_fullres (normalisation, resampling, loss, augmentation)
    and changes only what makes CPU training affordable: fewer stages and features, a coarse
    target spacing and a small patch. Sizes and spacing are (z, y, x), like the rest of the
    config; they are mapped onto nnU-Net's (possibly transposed) axis order when written.
    """

    features: tuple[int, ...] = (8, 16, 32, 64)
    patch_size: tuple[int, int, int] = (64, 64, 64)
    spacing: tuple[float, float, float] = (4.0, 5.0, 5.0)
    batch_size: int = 2

    def validate(self) -> None:
        # nnU-Net's deep supervision gives the lowest output weight 0 and normalises the
        # rest: with 2 stages nothing is left and the loss is NaN.
        if len(self.features) < 3 or min(self.features) < 1:
            raise ValueError("nnunet settings: small_network.features needs >= 3 positive "
                             f"feature counts (one per stage), got {list(self.features)}")
        divisor = 2 ** (len(self.features) - 1)
        if len(self.patch_size) != 3 or any(p % divisor for p in self.patch_size):
            raise ValueError(
                f"nnunet settings: small_network.patch_size {list(self.patch_size)} must be 3 "
                f"sizes divisible by {divisor} (2 ** (stages - 1), {len(self.features)} stages)"
            )
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"nnunet settings: small_network.spacing must be 3 positive mm "
                             f"values, got {list(self.spacing)}")
        if self.batch_size < 1:
            raise ValueError("nnunet settings: small_network.batch_size must be >= 1")


@dataclass(frozen=True)
class Settings:
    """Everything the CLI needs besides paths."""

    configuration: str = FULLRES
    small_network: SmallNetwork = field(default_factory=SmallNetwork)
    pretrain: Schedule = field(default_factory=Schedule)
    train: Schedule = field(default_factory=Schedule)
    # target -> the target whose plans the MSD model is pretrained with (None: from scratch)
    pretraining: dict[str, str | None] = field(default_factory=lambda: {t: t for t in TARGETS})
    validate_after_training: bool = True
    largest_component: bool = True
    mirroring: str = "auto"
    tile_step_size: float = 0.5
    device: str = "auto"
    threads: int = 2
    gpu: int = 1

    @property
    def is_small(self) -> bool:
        return self.configuration != FULLRES

    @classmethod
    def from_dict(cls, section: dict[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = set(section) - known
        if unknown:
            raise ValueError(f"nnunet settings: unknown key(s) {sorted(unknown)}; known: "
                             f"{', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for key, value in section.items():
            if key == "small_network":
                values[key] = _build(SmallNetwork, value, "small_network")
            elif key in ("pretrain", "train"):
                values[key] = _build(Schedule, value, key)
            elif key == "pretraining":
                if not isinstance(value, dict):
                    raise ValueError(f"nnunet settings: pretraining must map targets to a "
                                     f"target or null, got {value!r}")
                values[key] = {t: None for t in TARGETS} | dict(value)
            else:
                values[key] = tuple(value) if isinstance(value, list) else value
        settings = cls(**values)
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
            raise ValueError("--settings must be a JSON object (the nnunet config section)")
        return cls.from_dict(section)

    def validate(self) -> None:
        if not self.configuration or "/" in self.configuration:
            raise ValueError(f"nnunet settings: configuration must be a plans configuration "
                             f"name, got {self.configuration!r}")
        self.small_network.validate()
        self.pretrain.validate("pretrain")
        self.train.validate("train")
        for target, source in self.pretraining.items():
            if target not in TARGETS or source not in (*TARGETS, None):
                raise ValueError(f"nnunet settings: pretraining maps targets {TARGETS} to one of "
                                 f"them or null, got {target}: {source}")
            if source not in (None, target) and not self.is_small:
                raise ValueError(
                    f"nnunet settings: pretraining {target} from {source}'s plans needs the same "
                    f"network for both, which only a small configuration guarantees; with "
                    f"{FULLRES} each target is pretrained with its own plans"
                )
        if self.mirroring not in ("auto", "on", "off"):
            raise ValueError(f"nnunet settings: mirroring must be auto, on or off, got "
                             f"{self.mirroring!r}")
        if not 0 < self.tile_step_size <= 1:
            raise ValueError("nnunet settings: tile_step_size must lie in (0, 1]")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"nnunet settings: device must be auto, cpu or cuda, got "
                             f"{self.device!r}")
        if self.threads < 1 or self.gpu < 0:
            raise ValueError("nnunet settings: threads must be >= 1 and gpu >= 0")

    def pretraining_sources(self, targets: tuple[str, ...] | list[str] = TARGETS) -> list[str]:
        """The targets whose plans MSD pretraining runs with, for the given targets."""
        return sorted({self.pretraining.get(t) for t in targets} - {None})

    def use_mirroring(self, device_type: str) -> bool:
        """Test-time mirroring: 8x the inference cost, so off on CPU unless asked for."""
        if self.mirroring == "auto":
            return device_type == "cuda"
        return self.mirroring == "on"


def _build(kind: type, value: Any, name: str) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"nnunet settings: {name} must be a mapping, got {value!r}")
    known = {f.name for f in fields(kind)}
    unknown = set(value) - known
    if unknown:
        raise ValueError(f"nnunet settings: unknown key(s) {sorted(unknown)} in {name}; known: "
                         f"{', '.join(sorted(known))}")
    return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
