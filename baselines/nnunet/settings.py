"""The `nnunet:` config section as typed settings (`liverbench.settings.SettingsBase`).

The defaults are the `paper` scale: nnU-Net's own `3d_fullres` and its default schedule
(1000 epochs of 250 iterations). The demo and smoke scales switch to a small extra plans
configuration (see `plans.add_small_configuration`) and short schedules. Importing this
module imports neither torch nor nnunetv2: the workflow reads `pretraining_sources` from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from liverbench.settings import SettingsBase

FULLRES = "3d_fullres"
TARGETS = ("cect", "ncect")  # the cohort's two nnU-Net datasets


@dataclass(frozen=True)
class Schedule(SettingsBase):
    """One training run's length: what `nnUNetTrainerShort` reads from the environment."""

    epochs: int = 1000
    iterations_per_epoch: int = 250
    val_iterations: int = 50

    def validate(self) -> None:
        for key in ("epochs", "iterations_per_epoch", "val_iterations"):
            self.check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")


@dataclass(frozen=True)
class SmallNetwork(SettingsBase):
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
        self.check(len(self.features) >= 3 and min(self.features) >= 1, "features",
                   f"needs >= 3 positive feature counts (one per stage), got "
                   f"{list(self.features)}")
        divisor = 2 ** (len(self.features) - 1)
        self.check(len(self.patch_size) == 3 and not any(p % divisor for p in self.patch_size),
                   "patch_size", f"{list(self.patch_size)} must be 3 sizes divisible by "
                   f"{divisor} (2 ** (stages - 1), {len(self.features)} stages)")
        self.check(len(self.spacing) == 3 and min(self.spacing) > 0, "spacing",
                   f"must be 3 positive mm values, got {list(self.spacing)}")
        self.check(self.batch_size >= 1, "batch_size", "must be >= 1")


@dataclass(frozen=True)
class PretrainedModels(SettingsBase):
    """`pretrained_model:` trained nnU-Net v2 model folders used instead of training a target
    (baselines/nnunet/pretrained.py checks them); paths from the working directory."""

    cect: str | None = None  # the CECT segmenter (Elastix + CNN's phase 1)
    ncect: str | None = None  # the nCECT baseline, method nnunet_ncect
    fold: int | str = 0  # the fold folder (fold_N), or "all"
    checkpoint: str = "checkpoint_final.pth"
    liver_labels: tuple[str, ...] = ("liver",)  # dataset.json label names: the liver

    def validate(self) -> None:
        self.check(self.fold == "all" or (isinstance(self.fold, int) and self.fold >= 0),
                   "fold", f"must be a fold number >= 0 or 'all', got {self.fold!r}")
        self.check(bool(self.checkpoint) and "/" not in self.checkpoint, "checkpoint",
                   f"must be a file name in the fold folder, got {self.checkpoint!r}")
        self.check(len(self.liver_labels) >= 1, "liver_labels", "must name >= 1 label")

    def folder(self, target: str) -> str | None:
        return getattr(self, target)

    def files(self, target: str) -> list[str]:
        """The files a target's model record is made from (the import rule's inputs)."""
        folder = self.folder(target)
        return [f"{folder}/plans.json", f"{folder}/dataset.json",
                f"{folder}/fold_{self.fold}/{self.checkpoint}"]

    def imported(self, targets: tuple[str, ...] | list[str] = TARGETS) -> list[str]:
        """The targets whose model comes from a folder, not from training."""
        return [target for target in targets if self.folder(target)]


@dataclass(frozen=True)
class Settings(SettingsBase):
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
    threads: int = 2  # CPU threads and worker processes of a prediction (timed)
    # ... and of the training rules (prepare, pretrain, train; untimed); None: `threads`
    train_threads: int | None = None
    # Training's data-augmentation processes: 0 = in the training process, which makes a
    # seeded training reproducible (docs/nnunet.md); N = N worker processes (faster on many
    # cores, a GPU's need; their batches arrive in any order); None: the training's threads
    augmentation_workers: int | None = 0
    gpu: int = 0  # GPUs the training rules request from a cluster (the paper scale asks for 1)
    # Your trained nnU-Net models, per target, instead of training here (docs/nnunet.md)
    pretrained_model: PretrainedModels = field(default_factory=PretrainedModels)

    @property
    def is_small(self) -> bool:
        return self.configuration != FULLRES

    @classmethod
    def prepare(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """A partial `pretraining` mapping: the targets it leaves out train from scratch."""
        if isinstance(raw.get("pretraining"), Mapping):
            raw = {**raw, "pretraining": {t: None for t in TARGETS} | dict(raw["pretraining"])}
        return raw

    def validate(self) -> None:
        self.check(bool(self.configuration) and "/" not in self.configuration, "configuration",
                   f"must be a plans configuration name, got {self.configuration!r}")
        self.check(isinstance(self.pretraining, dict), "pretraining",
                   f"must map targets to a target or null, got {self.pretraining!r}")
        for target, source in self.pretraining.items():
            self.check(target in TARGETS and source in (*TARGETS, None), "pretraining",
                       f"maps targets {TARGETS} to one of them or null, got {target}: {source}")
            self.check(source in (None, target) or self.is_small, "pretraining",
                       f"{target} from {source}'s plans needs the same network for both, which "
                       f"only a small configuration guarantees; with {FULLRES} each target is "
                       "pretrained with its own plans")
        self.check(self.mirroring in ("auto", "on", "off"), "mirroring",
                   f"must be auto, on or off, got {self.mirroring!r}")
        self.check(0 < self.tile_step_size <= 1, "tile_step_size", "must lie in (0, 1]")
        self.check(self.device in ("auto", "cpu", "cuda"), "device",
                   f"must be auto, cpu or cuda, got {self.device!r}")
        self.check(self.threads >= 1, "threads", "must be >= 1")
        self.check(self.train_threads is None or self.train_threads >= 1, "train_threads",
                   "must be >= 1 or null (then: threads)")
        self.check(self.augmentation_workers is None or self.augmentation_workers >= 0,
                   "augmentation_workers", "must be >= 0 or null (then: the threads)")
        self.check(self.gpu >= 0, "gpu", "must be >= 0")

    def pretraining_sources(self, targets: tuple[str, ...] | list[str] = TARGETS) -> list[str]:
        """The targets whose plans MSD pretraining runs with, for the given targets."""
        return sorted({self.pretraining.get(t) for t in targets} - {None})

    def use_mirroring(self, device_type: str) -> bool:
        """Test-time mirroring: 8x the inference cost, so off on CPU unless asked for."""
        if self.mirroring == "auto":
            return device_type == "cuda"
        return self.mirroring == "on"
