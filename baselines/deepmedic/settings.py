"""The `deepmedic:` config section as typed settings (torch-free: the workflow imports it).

Defaults are the paper-scale values (DeepMedic's published configuration); the scale blocks of
config.yaml shrink them for the demo and smoke runs. The network's hyper-parameters
(`Architecture`, stored in every model file) sit FLAT in the config section beside the training
settings: `prepare` nests them, `to_dict` flattens them back, so
`Settings.from_mapping(settings.to_dict()) == settings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from liverbench.settings import SettingsBase

SECTION = "deepmedic"


@dataclass(frozen=True)
class Architecture(SettingsBase):
    """Hyper-parameters that fix the network; stored in every model file."""

    feature_maps: tuple[int, ...] = (30, 30, 40, 40, 40, 40, 50, 50)
    residual_layers: tuple[int, ...] = (4, 6, 8)
    subsample_factors: tuple[int, ...] = (3,)
    fc: tuple[int, ...] = (150, 150)
    dropout: float = 0.5
    kernel: int = 3
    in_channels: int = 1
    classes: int = 2

    def validate(self) -> None:
        self.check(bool(self.feature_maps) and min(self.feature_maps) >= 1, "feature_maps",
                   f"must be positive, got {self.feature_maps}")
        self.check(self.kernel >= 1 and self.kernel % 2 == 1, "kernel",
                   f"must be odd, got {self.kernel}")
        layers = len(self.feature_maps)
        for layer in self.residual_layers:
            self.check(2 <= layer <= layers, "residual_layers",
                       f"layer {layer} out of range: residual connections add the input of "
                       f"layer i-1 to the output of layer i, so 2 <= i <= {layers}")
        self.check(all(f >= 2 for f in self.subsample_factors), "subsample_factors",
                   f"must be >= 2, got {self.subsample_factors}")
        self.check(all(c >= 1 for c in self.fc), "fc", f"sizes must be positive, got {self.fc}")
        self.check(0.0 <= self.dropout < 1.0, "dropout", f"must lie in [0, 1), got {self.dropout}")
        self.check(self.in_channels >= 1, "in_channels", "must be >= 1")
        self.check(self.classes >= 2, "classes", "must be >= 2")

    def validate_in(self, section: str) -> None:
        """Name a problem by its flat config key (`deepmedic.kernel`), not the nested one."""
        super().validate_in(section.removesuffix(".architecture"))


ARCHITECTURE_KEYS = frozenset(f.name for f in fields(Architecture))


@dataclass(frozen=True)
class Settings(SettingsBase):
    """Everything the CLI needs besides paths.

    Segment sizes follow DeepMedic's convention: the size of the normal-resolution pathway's
    input (25³ for training, 45³ for inference in the original); the context pathways' larger
    inputs and the output size are derived from them (see `model.Geometry`). `seed` None
    means the project's top-level seed (config resolution fills it in; `train.DEFAULT_SEED`
    for a direct call); `gpu` is only read by the scheduler (the GPUs a training job asks for).
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
    threads: int = 2  # CPU threads of a prediction (timed)
    train_threads: int | None = None  # ... and of pretraining and fine-tuning; None: `threads`
    gpu: int = 0

    @classmethod
    def prepare(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """Nest the flat architecture keys; an explicit `architecture` (a mapping or an
        `Architecture`, as `replace(architecture=...)` gives) wins over flat keys."""
        nested = {key: raw.pop(key) for key in list(raw) if key in ARCHITECTURE_KEYS}
        explicit = raw.pop("architecture", None)
        if isinstance(explicit, Architecture):
            explicit = explicit.to_dict()
        if isinstance(explicit, dict):
            nested.update(explicit)
        elif explicit is not None:
            raw["architecture"] = explicit  # not a mapping: let the base class refuse it
        if nested:
            raw["architecture"] = nested
        return raw

    def to_dict(self) -> dict[str, Any]:
        """The config section's flat form (architecture keys beside the others)."""
        values = super().to_dict()
        return {**values.pop("architecture"), **values}

    def validate(self) -> None:
        for name in ("segment_train", "segment_infer"):
            value = getattr(self, name)
            self.check(len(value) == 3 and min(value) >= 1, name,
                       f"must be 3 positive sizes, got {value}")
        for name in ("batch_size", "iterations_pretrain", "iterations_finetune",
                     "validate_every", "checkpoint_every", "threads"):
            self.check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        self.check(0.0 <= self.foreground_fraction <= 1.0, "foreground_fraction",
                   "must lie in [0, 1]")
        self.check(self.train_threads is None or self.train_threads >= 1, "train_threads",
                   "must be >= 1 or null (then: threads)")
        self.check(self.gpu >= 0, "gpu", "must be >= 0")
        self.check(self.seed is None or self.seed >= 0, "seed", "must be >= 0 or null")
        for name in ("lr", "lr_finetune"):
            self.check(getattr(self, name) > 0, name, "must be positive")
        self.check(self.device in ("auto", "cpu") or self.device.startswith("cuda"), "device",
                   f"must be auto, cpu or cuda[:N], got {self.device}")
