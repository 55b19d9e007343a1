"""`nnUNetTrainerShort`: nnU-Net's default trainer with the schedule taken from the environment.

nnU-Net constructs trainers by class name (`-tr`), with a fixed signature, so a schedule from
the project's config cannot be passed as an argument. nnU-Net's own short trainers
(`nnUNetTrainer_5epochs`, ...) fix the epochs but keep 250 iterations per epoch, which is
hours on a CPU. This subclass reads all three numbers from environment variables that
`baselines.nnunet` sets from config; everything else is nnU-Net's default trainer.

The module stays free of project imports: nnU-Net imports it as a top-level module from the
folder named in `nnUNet_extTrainer`, e.g. for `nnUNetv2_train ... -tr nnUNetTrainerShort`.
"""

from __future__ import annotations

import os
import sys

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

CUDA = torch.device("cuda")  # nnU-Net's default device
EPOCHS = "REGSEGBENCH_NNUNET_EPOCHS"
ITERATIONS = "REGSEGBENCH_NNUNET_ITERATIONS"
VAL_ITERATIONS = "REGSEGBENCH_NNUNET_VAL_ITERATIONS"


def _positive_int(variable: str) -> int:
    text = os.environ.get(variable)
    if text is None:
        raise RuntimeError(
            f"nnUNetTrainerShort reads its schedule from {EPOCHS}, {ITERATIONS} and "
            f"{VAL_ITERATIONS}; {variable} is not set (python -m baselines.nnunet sets them "
            "from config)"
        )
    try:
        value = int(text)
    except ValueError:
        raise RuntimeError(f"{variable}={text!r} is not an integer") from None
    if value < 1:
        raise RuntimeError(f"{variable}={value} must be >= 1")
    return value


class nnUNetTrainerShort(nnUNetTrainer):  # noqa: N801 (nnU-Net's naming convention)
    """Default nnU-Net training, schedule from the environment, a checkpoint every epoch."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = CUDA):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = _positive_int(EPOCHS)
        self.num_iterations_per_epoch = _positive_int(ITERATIONS)
        self.num_val_iterations_per_epoch = _positive_int(VAL_ITERATIONS)
        # Short schedules: keep every epoch resumable (nnU-Net's default is every 50).
        self.save_every = 1

    def on_epoch_end(self) -> None:
        """nnU-Net's own epoch lines (its log file and stdout), then the pipeline's one line
        per epoch on stderr, in the format of every training rule's log
        (liverbench.progress.epoch_line; not imported: this module stays project-free)."""
        epoch = self.current_epoch + 1
        super().on_epoch_end()
        value = self.logger.get_value
        seconds = value("epoch_end_timestamps", step=-1) - value("epoch_start_timestamps", step=-1)
        print(f"nnunet {self.plans_manager.dataset_name} epoch {epoch}/{self.num_epochs}: "
              f"train_loss {value('train_losses', step=-1):.4f} "
              f"val_loss {value('val_losses', step=-1):.4f} | "
              f"ema_pseudo_dice {value('ema_fg_dice', step=-1):.4f} | {seconds:.1f} s",
              file=sys.stderr, flush=True)
