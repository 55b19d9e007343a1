"""RegSegNet settings: the `regsegnet:` config section, checked and typed.

The pipeline hands the section over as JSON (`--settings`); everything the model, the loss and
the schedule depend on comes from here, so a checkpoint stores its settings and a prediction
rebuilds exactly the network it was trained as. The working shape is not a setting: it comes
from the pairs (and `model.pt` records the shape it was trained on).

The section also names what the workflow builds: one trained model per loss setting
(`regsegnet`, and `regsegnet_w{name}` per `loss_grid` entry) and the method variants that
predict with the first k cascades of a model (`models`, `variants`). Importing this module
never imports torch.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from liverbench.settings import SettingsBase, SettingsError

__all__ = ["ANNOTATION", "BASE_MODEL", "Augmentation", "LossWeights", "Settings", "SettingsError"]

ANNOTATION = "annotation"
BASE_MODEL = "regsegnet"
SELECTIONS = ("last", "best_validation")
GRID_KEYS = ("mi", "dice", "bending")  # the weights a loss_grid entry may set
PREDICTION_KEYS = ("device", "moving_mask", "inference")  # all a prediction reads
NOT_TRAINING = ("loss_grid", "moving_mask", "inference")  # workflow or prediction only
# How a prediction runs the forward pass (regsegnet/backends.py; torch-free names here)
INFERENCE_BACKENDS = ("eager", "channels_last", "compile", "bfloat16", "onnxruntime", "openvino")


@dataclass(frozen=True)
class LossWeights(SettingsBase):
    """λ of each loss term: −MI(warped CECT, nCECT), 1 − Dice(masks), bending energy."""

    mi: float = 1.0
    dice: float = 1.0
    bending: float = 0.01

    def validate(self) -> None:
        for name, value in asdict(self).items():
            self.check(_number(value) and value >= 0, name, "must be a number >= 0")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Augmentation(SettingsBase):
    """Random perturbation of each TRAINING pair's moving CECT and its liver, drawn per step.

    Without it the demo model learned the phantom's mean breathing shift (every liver moved
    ~20 mm cranially, whatever the true motion): a constant field fits a cohort whose pairs
    all move alike. A random affine of the moving scan (uniform in ±rotation_deg about each
    axis, ±translation_voxels along each axis, 1 ± scale per axis, about the grid centre, in
    mm) makes every pair's offset different, so only reading the images pays. Intensities
    (× 1 ± intensity_scale, + ±intensity_shift, + Gaussian noise, clipped to [0, 1]) vary the
    contrast the MI term sees. The fixed nCECT and its liver are never changed; `flips`
    mirrors the whole pair (all four volumes alike), the only option that touches the fixed
    scan, off by default as before. Validation pairs are never augmented.
    """

    enabled: bool = True
    rotation_deg: float = 2.0
    translation_voxels: float = 1.5
    scale: float = 0.03
    intensity_scale: float = 0.1
    intensity_shift: float = 0.05
    noise_std: float = 0.02
    flips: bool = False

    def validate(self) -> None:
        for name in ("enabled", "flips"):
            self.check(isinstance(getattr(self, name), bool), name, "must be true or false")
        for name, value in asdict(self).items():
            if name not in ("enabled", "flips"):
                self.check(_number(value) and value >= 0, name, "must be a number >= 0")
        self.check(self.rotation_deg <= 45, "rotation_deg", "must be <= 45 (a perturbation)")
        self.check(self.scale < 0.5, "scale", "must be < 0.5 (a perturbation)")
        self.check(self.intensity_scale < 1, "intensity_scale", "must be < 1")


@dataclass(frozen=True)
class Settings(SettingsBase):
    cascades: int = 3
    channels: tuple[int, ...] = (16, 32, 32, 32, 32)
    field_smoothing: float = 5.0  # Gaussian sigma (working voxels) of each cascade's field
    loss: LossWeights = field(default_factory=LossWeights)
    mi_bins: int = 23
    mi_samples: int = 16384  # voxels drawn per MI evaluation; 0 = every voxel
    lr: float = 1e-3
    epochs: int = 4
    iterations: int = 60  # per cascade per epoch
    batch_size: int = 1
    # Which epoch's weights model.pt keeps: `last` (as nnU-Net and DeepMedic keep theirs, so
    # every trained method follows one rule) or `best_validation` (best validation Dice with
    # all cascades; with the demo's 2 validation pairs that choice is mostly noise).
    model_selection: str = "last"
    augmentation: Augmentation = field(default_factory=Augmentation)  # training pairs only
    seed: int = 0  # config resolution puts the top-level seed here when the config says null
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    moving_mask: str = ANNOTATION  # annotation | <method that segments the CECT>
    inference: str = "eager"  # test-time forward backend: one of INFERENCE_BACKENDS
    gpu: int = 0  # GPUs the training rule asks the cluster for (a resource, not a switch)
    threads: int = 2  # CPU threads of the training rule (a resource: the model does not change)
    loss_grid: tuple[dict, ...] = ()  # loss-weight experiment: [{name, mi?, dice?, bending?}]

    @classmethod
    def prepare(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """Fold the flag of before the augmentation section, `augment` (random flips), into
        `augmentation.flips`, so older configs and model files still read."""
        if "augment" in raw:
            section = dict(raw.get("augmentation") or {})
            if "flips" in section:
                raise SettingsError("augment: replaced by augmentation.flips; give only that")
            raw["augmentation"] = {**section, "flips": raw.pop("augment")}
        return raw

    def validate(self) -> None:
        self.check(self.cascades >= 1, "cascades", "must be >= 1")
        self.check(len(self.channels) >= 2, "channels", "needs at least two levels")
        self.check(all(c > 0 for c in self.channels), "channels", "must be positive")
        self.check(_number(self.field_smoothing) and self.field_smoothing >= 0,
                   "field_smoothing", "must be a number >= 0 (0: none)")
        self.check(self.mi_bins >= 4, "mi_bins", "must be >= 4")
        self.check(self.mi_samples >= 0, "mi_samples", "must be >= 0 (0 = all voxels)")
        self.check(self.lr > 0, "lr", "must be > 0")
        self.check(self.epochs >= 1, "epochs", "must be >= 1")
        self.check(self.iterations >= 1, "iterations", "must be >= 1")
        self.check(self.batch_size >= 1, "batch_size", "must be >= 1")
        self.check(self.model_selection in SELECTIONS, "model_selection",
                   f"must be one of {SELECTIONS}, got {self.model_selection!r}")
        self.check(isinstance(self.seed, int), "seed", "must be an integer")
        self.check(self.gpu >= 0, "gpu", "must be >= 0")
        self.check(isinstance(self.threads, int) and self.threads >= 1, "threads",
                   "must be an integer >= 1")
        self.check(bool(self.moving_mask), "moving_mask", "must be 'annotation' or a method name")
        self.check(self.inference in INFERENCE_BACKENDS, "inference",
                   f"must be one of {INFERENCE_BACKENDS}, got {self.inference!r}")
        names = []
        for entry in self.loss_grid:
            self.check(isinstance(entry, dict) and isinstance(entry.get("name"), str),
                       "loss_grid", f"entry {entry!r} needs a name")
            name = entry["name"]
            unknown = sorted(set(entry) - {"name", *GRID_KEYS})
            self.check(not unknown, "loss_grid", f"entry {name!r}: unknown key(s) {unknown}; "
                       f"use name, {', '.join(GRID_KEYS)}")
            # a name ending in _c<k> would make regsegnet_w{name} read as a cascade variant
            self.check(not re.search(r"_c[0-9]+$", name), "loss_grid",
                       f"name {name!r} must not end in _c<k>")
            weights = {k: v for k, v in entry.items() if k != "name"}
            LossWeights.from_mapping({**self.loss.to_dict(), **weights}, f"loss_grid.{name}")
            names.append(name)
        duplicates = sorted({name for name in names if names.count(name) > 1})
        self.check(not duplicates, "loss_grid", f"names {duplicates} appear more than once")

    def with_loss(self, **weights: float) -> Settings:
        return self.replace(loss={**self.loss.to_dict(), **weights})

    def training_identity(self) -> dict[str, Any]:
        """What a resumed training must share with its checkpoint: all but the schedule length
        and where it runs (a run may be extended by more epochs, or moved to another device)."""
        data = self.to_dict()
        for key in ("epochs", "device", "gpu", "threads", "loss_grid", "moving_mask",
                    "model_selection", "inference"):
            data.pop(key)
        return data

    # --- what the workflow builds from this section ------------------------------------------

    @property
    def moving_mask_method(self) -> str | None:
        """The method whose CECT segmentations replace the annotated CECT liver, or None."""
        return None if self.moving_mask == ANNOTATION else self.moving_mask

    def models(self) -> list[str]:
        """Trained models: `regsegnet` (`loss`), then `regsegnet_w{name}` per loss_grid entry."""
        return [BASE_MODEL] + [f"{BASE_MODEL}_w{entry['name']}" for entry in self.loss_grid]

    def variants(self) -> dict[str, tuple[str, int]]:
        """Method id → (model it predicts with, cascades it uses): each model with all its
        cascades, and `{model}_c{k}` with the first k (`liverbench.methods.regsegnet_variants`)."""
        variants = {}
        for model in self.models():
            variants[model] = (model, self.cascades)
            for k in range(1, self.cascades + 1):
                variants[f"{model}_c{k}"] = (model, k)
        return variants

    def training_section(self, model: str = BASE_MODEL) -> dict[str, Any]:
        """The settings `model` trains with, JSON-able for `train --settings`: the section with
        that grid entry's loss weights and without what training never reads (so editing the
        grid or the test-time mask source retrains nothing)."""
        grids = dict(zip(self.models()[1:], self.loss_grid))
        if model != BASE_MODEL and model not in grids:
            raise SettingsError(f"{model}: not a RegSegNet model; models: {self.models()}")
        weights = {k: v for k, v in grids.get(model, {}).items() if k != "name"}
        data = self.with_loss(**weights).to_dict()
        for key in NOT_TRAINING:
            data.pop(key)
        return data

    def prediction_section(self) -> dict[str, Any]:
        """The keys a prediction reads, JSON-able for `predict --settings`."""
        data = self.to_dict()
        return {key: data[key] for key in PREDICTION_KEYS}
