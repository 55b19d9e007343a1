"""Segment-based training in two stages: pretraining on CECT, fine-tuning on nCECT.

One call trains one stage. The optimiser is DeepMedic's default, RMSProp (lr 1e-3, rho 0.9,
eps 1e-4, momentum 0.6, L2 1e-4), with the learning rate halved at 50 % and 75 % of the
stage's iterations (DeepMedic halves it on a schedule too). A fine-tuning stage starts from
the pretrained weights of the same architecture. A checkpoint beside the output is written
every `checkpoint_every` iterations and a rerun with the same settings and data resumes from
it; the loss history of all stages travels inside the model files and goes to a CSV.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from baselines.deepmedic.checkpoint import (
    CheckpointError,
    load_payload,
    load_pretrained,
    save_model,
    save_payload,
)
from baselines.deepmedic.model import DeepMedic, torch_device
from baselines.deepmedic.predict import segment
from baselines.deepmedic.sampling import IGNORE, SegmentSampler, Volume
from baselines.deepmedic.settings import Settings
from liverbench.data.io import write_text
from liverbench.progress import log_epoch

log = logging.getLogger(__name__)

STAGES = ("pretrain", "finetune")
# Settings that do not change what is learned: a checkpoint resumes across changes of these.
RUNTIME_ONLY = ("device", "threads", "gpu", "validate_every", "checkpoint_every")
DEFAULT_SEED = 2024  # the project's seed, for a direct call whose settings leave `seed` null
# One row per iteration; `epoch` counts blocks of `validate_every` iterations, continuing
# across stages, so a plot of the per-epoch means shows both stages one after the other.
LOSS_COLUMNS = ("stage", "epoch", "iteration", "loss", "lr", "seconds", "val_dsc")


def segment_sizes(model: DeepMedic, segment: Sequence[int]) -> tuple[list[int], list[int]]:
    """(input, output) sizes of a training segment from DeepMedic's segment convention."""
    geometry = model.geometry
    outputs = [
        geometry.valid_output_size(max(1, s - geometry.pathway_receptive_field + 1))
        for s in segment
    ]
    return [geometry.input_size(o) for o in outputs], outputs


def learning_rate(base: float, iteration: int, total: int) -> float:
    """Base rate, halved after 50 % and again after 75 % of the iterations."""
    passed = sum(iteration > fraction * total for fraction in (0.5, 0.75))
    return base * 0.5**passed


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    both = prediction.sum() + truth.sum()
    return 1.0 if both == 0 else float(2 * np.logical_and(prediction, truth).sum() / both)


def write_losses(history: list[dict[str, Any]], path: str | os.PathLike) -> None:
    frame = pd.DataFrame(history, columns=list(LOSS_COLUMNS))
    write_text(frame.to_csv(index=False), path)


def train_stage(
    settings: Settings,
    stage: str,
    train_volumes: Sequence[Volume],
    out_path: str | os.PathLike,
    *,
    val_volumes: Sequence[Volume] = (),
    init_path: str | os.PathLike | None = None,
    losses_path: str | os.PathLike | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    fingerprint: Any = None,
    on_iteration: Callable[[int], None] | None = None,
    progress: bool = True,
) -> DeepMedic:
    """Train one stage and write the model (and the loss CSV of all stages so far).

    `fingerprint` identifies the data (e.g. the input paths); a checkpoint is resumed only
    when it was written with the same settings, stage, data and initial weights.
    `on_iteration(i)` is called after each iteration (the tests interrupt training there).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    total = settings.iterations_pretrain if stage == "pretrain" else settings.iterations_finetune
    base_lr = settings.lr if stage == "pretrain" else settings.lr_finetune
    device = torch_device(settings.device)
    if settings.seed is None:
        settings = settings.replace(seed=DEFAULT_SEED)
    stage_seed = settings.seed + STAGES.index(stage)
    torch.manual_seed(stage_seed)
    rng = np.random.default_rng(stage_seed)

    model = DeepMedic(settings.architecture)
    history = load_pretrained(model, init_path) if init_path is not None else []
    history = [row for row in history if row.get("stage") != stage]
    model.to(device)
    optimiser = torch.optim.RMSprop(model.parameters(), lr=base_lr, alpha=0.9, eps=1e-4,
                                    momentum=0.6, weight_decay=1e-4)
    input_size, output_size = segment_sizes(model, settings.segment_train)
    sampler = SegmentSampler(train_volumes, input_size, output_size,
                             settings.foreground_fraction, rng)
    loss_function = nn.CrossEntropyLoss(ignore_index=IGNORE)

    checkpoint_path = Path(checkpoint_path or f"{out_path}.checkpoint")
    learned = {k: v for k, v in settings.to_dict().items() if k not in RUNTIME_ONLY}
    identity = {"settings": learned, "stage": stage, "data": fingerprint,
                "init": str(init_path) if init_path else None}
    start, history = _resume(checkpoint_path, identity, model, optimiser, sampler, history)
    log.info("%s: segments %s -> %s, receptive field %d, %d iterations from %d",
             stage, input_size, output_size, model.geometry.receptive_field, total, start)

    epoch_offset = max((row["epoch"] for row in history if row["stage"] != stage), default=0)
    clock = time.perf_counter() - (history[-1]["seconds"] if history and
                                   history[-1]["stage"] == stage else 0.0)
    bar = tqdm(range(start + 1, total + 1), desc=f"deepmedic {stage}", disable=not progress,
               initial=start, total=total, mininterval=2.0)
    for iteration in bar:
        lr = learning_rate(base_lr, iteration, total)
        for group in optimiser.param_groups:
            group["lr"] = lr
        model.train()
        images, labels = sampler.sample(settings.batch_size)
        logits = model(torch.from_numpy(images).to(device))
        loss = loss_function(logits, torch.from_numpy(labels).to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        epoch = epoch_offset + math.ceil(iteration / settings.validate_every)
        row = {"stage": stage, "epoch": epoch, "iteration": iteration, "loss": loss.item(),
               "lr": lr, "seconds": time.perf_counter() - clock, "val_dsc": math.nan}
        if val_volumes and (iteration % settings.validate_every == 0 or iteration == total):
            row["val_dsc"] = validate(model, val_volumes, settings, device)
        history.append(row)
        if iteration % settings.validate_every == 0 or iteration == total:
            _log_epoch(stage, history, settings.validate_every, total)
        bar.set_postfix(loss=f"{row['loss']:.3f}", refresh=False)
        if iteration % settings.checkpoint_every == 0 and iteration < total:
            _save_checkpoint(checkpoint_path, identity, iteration, model, optimiser, sampler,
                             history)
            if losses_path is not None:
                write_losses(history, losses_path)
        if on_iteration is not None:
            on_iteration(iteration)
    bar.close()

    save_model(out_path, model, stage, history, settings.to_dict())
    if losses_path is not None:
        write_losses(history, losses_path)
    checkpoint_path.unlink(missing_ok=True)
    return model



def _log_epoch(stage: str, history: list[dict], validate_every: int, total: int) -> None:
    """One line per epoch (`validate_every` iterations) into the job's log
    (liverbench.progress): mean loss, validation DSC, seconds."""
    rows = [row for row in history if row["stage"] == stage and row["epoch"] == history[-1][
        "epoch"]]
    before = [row["seconds"] for row in history if row["stage"] == stage
              and row["epoch"] < history[-1]["epoch"]]
    log_epoch(f"deepmedic {stage}", math.ceil(rows[-1]["iteration"] / validate_every),
              math.ceil(total / validate_every),
              {"loss": float(np.mean([row["loss"] for row in rows]))},
              ("val_dsc", rows[-1]["val_dsc"]), rows[-1]["seconds"] - max(before, default=0.0))

def validate(model: DeepMedic, volumes: Sequence[Volume], settings: Settings,
             device: torch.device) -> float:
    """Mean DSC of full inference (with post-processing) on the working grid."""
    scores = [dice(segment(model, volume, settings.segment_infer, device), volume.label)
              for volume in volumes]
    return float(np.mean(scores))


def _resume(path: Path, identity: Any, model: DeepMedic, optimiser: torch.optim.Optimizer,
            sampler: SegmentSampler, history: list[dict[str, Any]]
            ) -> tuple[int, list[dict[str, Any]]]:
    if not path.exists():
        return 0, history
    try:
        saved = load_payload(path)
    except CheckpointError as error:
        log.warning("ignoring unreadable checkpoint: %s", error)
        return 0, history
    if saved.get("identity") != identity:
        log.warning("%s: checkpoint of other settings or data; starting afresh", path)
        return 0, history
    model.load_state_dict(saved["model"])
    optimiser.load_state_dict(saved["optimiser"])
    sampler.rng.bit_generator.state = saved["sampler_rng"]
    torch.set_rng_state(saved["torch_rng"])
    log.info("%s: resuming after iteration %d", path, saved["iteration"])
    return int(saved["iteration"]), list(saved["history"])


def _save_checkpoint(path: Path, identity: Any, iteration: int, model: DeepMedic,
                     optimiser: torch.optim.Optimizer, sampler: SegmentSampler,
                     history: list[dict[str, Any]]) -> None:
    save_payload({
        "identity": identity,
        "iteration": iteration,
        "model": model.state_dict(),
        "optimiser": optimiser.state_dict(),
        "sampler_rng": copy.deepcopy(sampler.rng.bit_generator.state),
        "torch_rng": torch.get_rng_state(),
        "history": history,
    }, path)
