"""Cascade-wise training, as in the paper (section 2, figure 1).

Every epoch trains cascade 1 alone (later cascades do not run), then freezes it and trains
cascade 2 on cascade 1's output, then cascade 3, each with its own optimiser. Hence the first
k cascades are a model of their own at every point, and the ablation over the number of
cascades used at inference needs no extra training.

Each step's training pairs are augmented on the fly (`regsegnet.augment`: a random affine and
intensity change of the moving CECT and its liver, so that no constant shift fits the cohort);
validation pairs never are. After each cascade's turn the validation pairs are registered with the
cascades trained so far and scored by the Dice of the warped CECT liver; the Dice with all
cascades at the end of an epoch selects the model. A checkpoint after every epoch holds what
a killed run needs to resume and end with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from liverbench.data.io import write_json, write_text
from liverbench.progress import epoch_line
from regsegnet import checkpoint
from regsegnet.augment import augment_batch
from regsegnet.data import Batch, Pair, load_pairs, make_batch
from regsegnet.hardware import select_device
from regsegnet.losses import LossTerms, RegistrationLoss, hard_dice
from regsegnet.model import RegSegNet
from regsegnet.settings import Settings

LOSS_COLUMNS = (
    "epoch", "cascade", "iterations", "loss", "mi", "dice", "bending", "val_dice", "seconds",
)
CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
LOSSES_NAME = "losses.csv"
SUMMARY_NAME = "training.json"


class Trainer:
    """The training state of one RegSegNet and the steps that change it."""

    def __init__(
        self,
        settings: Settings,
        train_pairs: Sequence[Pair],
        val_pairs: Sequence[Pair],
        device: torch.device | str = "cpu",
        progress: bool = False,
    ) -> None:
        if not train_pairs or not val_pairs:
            raise ValueError("training needs at least one training and one validation pair")
        self.settings = settings
        self.train_pairs = list(train_pairs)
        self.val_pairs = list(val_pairs)
        self.device = torch.device(device)
        self.progress = progress
        torch.manual_seed(settings.seed)
        self.model = RegSegNet.from_settings(settings).to(self.device)
        self.loss = RegistrationLoss(settings.loss, settings.mi_bins, settings.mi_samples)
        self.loss.to(self.device)
        self.optimisers = [
            torch.optim.Adam(cascade.parameters(), lr=settings.lr)
            for cascade in self.model.cascades
        ]
        self.rng = np.random.default_rng(settings.seed)  # pair order and flips
        self.mi_generator = torch.Generator().manual_seed(settings.seed)  # MI voxel samples
        # the moving scan's random affine and intensities (regsegnet.augment), its own stream
        self.augment_generator = torch.Generator().manual_seed(settings.seed + 1)
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None  # {"epoch", "val_dice", "state_dict"}

    # --- steps -------------------------------------------------------------------------------

    def sample_batch(self) -> Batch:
        """Random training pairs, augmented (`Settings.augmentation`)."""
        augmentation = self.settings.augmentation
        indices = self.rng.integers(len(self.train_pairs), size=self.settings.batch_size)
        pairs = [self.train_pairs[i] for i in indices]
        flips = None
        if augmentation.enabled and augmentation.flips:
            flips = [np.flatnonzero(self.rng.random(3) < 0.5).tolist() for _ in indices]
        batch = make_batch(pairs, flips).to(self.device)
        return augment_batch(batch, augmentation, [p.spacing for p in pairs],
                             self.augment_generator)

    def train_step(self, cascade: int, batch: Batch) -> LossTerms:
        """One optimiser step of cascade `cascade` (0-based); earlier cascades frozen, later
        ones not run."""
        self.model.freeze_all_but(cascade)
        self.model.train()
        registration = self.model(batch.moving, batch.fixed, cascades=cascade + 1, frozen=cascade)
        warped_mask = self.model.transform.mask(batch.moving_mask, registration.field)
        assert batch.fixed_mask is not None
        terms = self.loss(
            registration.warped, batch.fixed, warped_mask, batch.fixed_mask,
            registration.increments[-1], self.mi_generator,
        )
        optimiser = self.optimisers[cascade]
        optimiser.zero_grad(set_to_none=True)
        terms.total.backward()
        optimiser.step()
        return terms

    @torch.no_grad()
    def validate(self, cascades: int) -> float:
        """Mean Dice of the warped CECT liver (thresholded) on the validation pairs."""
        self.model.eval()
        scores = []
        for pair in self.val_pairs:
            batch = make_batch([pair]).to(self.device)
            field = self.model(batch.moving, batch.fixed, cascades=cascades).field
            warped_mask = self.model.transform.mask(batch.moving_mask, field)
            scores.append(hard_dice(warped_mask, batch.fixed_mask))
        return float(np.mean(scores))

    def train_cascade(self, cascade: int) -> dict[str, Any]:
        """One cascade's turn in the current epoch; returns its row of the loss table."""
        start = time.perf_counter()
        sums = {"loss": 0.0, "mi": 0.0, "dice": 0.0, "bending": 0.0}
        steps = tqdm(
            range(self.settings.iterations),
            desc=f"epoch {self.epoch + 1}/{self.settings.epochs} cascade {cascade + 1}",
            disable=not self.progress, file=sys.stderr, mininterval=2.0, leave=True,
        )
        for iteration in steps:
            values = self.train_step(cascade, self.sample_batch()).as_floats()
            values["loss"] = values.pop("total")
            for key in sums:
                sums[key] += values[key]
            if iteration % 10 == 0:
                steps.set_postfix(loss=f"{values['loss']:.4f}", dice=f"{1 - values['dice']:.3f}")
        count = self.settings.iterations
        row = {"epoch": self.epoch + 1, "cascade": cascade + 1, "iterations": count}
        row.update({key: total / count for key, total in sums.items()})
        row["val_dice"] = self.validate(cascade + 1)
        row["seconds"] = time.perf_counter() - start
        return row

    def run_epoch(self) -> float:
        """Train every cascade in turn; returns the validation Dice with all cascades."""
        for cascade in range(self.model.num_cascades):
            self.history.append(self.train_cascade(cascade))
        self.epoch += 1
        val_dice = self.history[-1]["val_dice"]
        if self.best is None or val_dice > self.best["val_dice"]:
            self.best = self.snapshot()
        return val_dice

    def snapshot(self) -> dict[str, Any]:
        """The current epoch, its validation Dice and a CPU copy of the weights."""
        state = {k: v.detach().clone().cpu() for k, v in self.model.state_dict().items()}
        return {"epoch": self.epoch, "val_dice": self.history[-1]["val_dice"],
                "state_dict": state}

    # --- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": checkpoint.TRAINING_FORMAT,
            "version": checkpoint.VERSION,
            "settings": self.settings.to_dict(),
            "identity": self.identity(),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimisers": [optimiser.state_dict() for optimiser in self.optimisers],
            "rng": {
                "numpy": self.rng.bit_generator.state, "mi": self.mi_generator.get_state(),
                "augment": self.augment_generator.get_state(),
            },
            "history": self.history,
            "best": self.best,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for optimiser, optimiser_state in zip(self.optimisers, state["optimisers"], strict=True):
            optimiser.load_state_dict(optimiser_state)
        self.rng.bit_generator.state = state["rng"]["numpy"]
        self.mi_generator.set_state(state["rng"]["mi"])
        self.augment_generator.set_state(state["rng"]["augment"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.best = state["best"]

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: settings (but the epoch count) and data,
        by content: pairs re-made with another window or grid keep their names and shape."""
        return {
            "settings": self.settings.training_identity(),
            "train_pairs": [pair.name for pair in self.train_pairs],
            "val_pairs": [pair.name for pair in self.val_pairs],
            "shape": list(self.train_pairs[0].shape),
            "data": data_digest([*self.train_pairs, *self.val_pairs]),
        }


@dataclass
class TrainingResult:
    model_path: Path
    losses_path: Path
    kept_epoch: int  # the epoch model.pt holds (Settings.model_selection)
    kept_val_dice: float
    epochs_run: int  # by this call (fewer than `epochs` after a resume)
    seconds: float


def losses_csv(history: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOSS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def data_digest(pairs: Sequence[Pair]) -> str:
    """A digest of the pairs' voxels and grids (BLAKE2b; ~0.1 s for the demo's 30 pairs)."""
    digest = hashlib.blake2b(digest_size=16)
    for pair in pairs:
        digest.update(pair.name.encode())
        for array in (pair.moving, pair.moving_mask, pair.fixed, pair.fixed_mask):
            if array is not None:
                digest.update(np.ascontiguousarray(array).tobytes())
        reference = pair.reference
        digest.update(repr((reference.GetOrigin(), reference.GetSpacing(),
                            reference.GetDirection())).encode())
    return digest.hexdigest()


def _resume(trainer: Trainer, path: Path, log: Callable[[str], None]) -> None:
    try:
        state = checkpoint.load(path, checkpoint.TRAINING_FORMAT)
    except checkpoint.CheckpointError as error:  # a damaged file must not block training
        log(f"{error}; starting afresh")
        return
    if state.get("identity") != trainer.identity():
        theirs, ours = state.get("identity") or {}, trainer.identity()
        changed = sorted(
            key for key in set(theirs) | set(ours) if theirs.get(key) != ours.get(key)
        )
        log(f"{path}: made with other settings or pairs ({', '.join(changed)}); starting afresh")
        return
    trainer.load_state_dict(state)
    log(f"{path}: resuming after epoch {trainer.epoch}")


def train(
    settings: Settings,
    train_dirs: Sequence[str | os.PathLike],
    val_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    resume: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True),
) -> TrainingResult:
    """Train on pair folders; write `checkpoint.pt` every epoch, then `model.pt` (best
    validation) and `losses.csv` into `out_dir`."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    train_pairs = load_pairs(train_dirs, log=log)  # the working shape is the data's
    val_pairs = load_pairs(val_dirs, train_pairs[0].shape, log)
    device = select_device(settings.device)
    trainer = Trainer(settings, train_pairs, val_pairs, device, progress=progress)
    checkpoint_path = out_dir / CHECKPOINT_NAME
    if resume and checkpoint_path.exists():
        _resume(trainer, checkpoint_path, log)
    log(
        f"training RegSegNet on {device}: {len(train_pairs)} train / {len(val_pairs)} val pairs, "
        f"shape {train_pairs[0].shape}, {settings.cascades} cascades, epochs "
        f"{trainer.epoch + 1}..{settings.epochs}, {settings.iterations} iterations per cascade"
    )
    first_epoch = trainer.epoch
    while trainer.epoch < settings.epochs:
        val_dice = trainer.run_epoch()
        checkpoint.save(trainer.state_dict(), checkpoint_path)
        write_text(losses_csv(trainer.history), out_dir / LOSSES_NAME)
        rows = trainer.history[-trainer.model.num_cascades:]  # this epoch, one per cascade
        log(epoch_line(out_dir.name, trainer.epoch, settings.epochs,
                       {key: float(np.mean([row[key] for row in rows]))
                        for key in ("loss", "mi", "dice", "bending")},
                       ("val_dice", val_dice), sum(row["seconds"] for row in rows)))
    assert trainer.best is not None
    kept = trainer.best if settings.model_selection == "best_validation" else trainer.snapshot()
    model_path = out_dir / MODEL_NAME
    checkpoint.save(
        checkpoint.model_payload(
            trainer.model, settings, train_pairs[0].shape, kept["state_dict"],
            epoch=kept["epoch"], val_dice=kept["val_dice"],
        ),
        model_path,
    )
    write_text(losses_csv(trainer.history), out_dir / LOSSES_NAME)
    # The model is final: a later run (new data, --forcerun) must not resume this training.
    checkpoint_path.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    write_json(
        {
            "settings": settings.to_dict(), "device": str(device),
            "threads": torch.get_num_threads(),
            "train_pairs": [p.name for p in train_pairs], "val_pairs": [p.name for p in val_pairs],
            "model_selection": settings.model_selection, "kept_epoch": kept["epoch"],
            "kept_val_dice": kept["val_dice"],
            "best_epoch": trainer.best["epoch"], "best_val_dice": trainer.best["val_dice"],
            "epochs_this_call": trainer.epoch - first_epoch, "seconds_this_call": seconds,
        },
        out_dir / SUMMARY_NAME,
    )
    return TrainingResult(
        model_path=model_path, losses_path=out_dir / LOSSES_NAME, kept_epoch=kept["epoch"],
        kept_val_dice=kept["val_dice"], epochs_run=trainer.epoch - first_epoch,
        seconds=seconds,
    )
