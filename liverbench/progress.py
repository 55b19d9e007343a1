"""One line per training epoch, the same for every method, in the training rule's log.

A 40-minute training whose log holds only a progress bar (or nothing) looks hung; a line per
epoch with the losses, the validation score and the time tells a user following the job
(`tail -f results/<experiment>/logs/<method>/train.log`, README) that it moves and how well.
Progress bars are for terminals: in a log file their carriage returns pile up into one
unreadable line, so the CLIs draw them only when stderr is a terminal (`show_bars`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping


def show_bars() -> bool:
    """Progress bars only on a terminal, never into a job's log file."""
    return sys.stderr.isatty()


def epoch_line(method: str, epoch: int, total: int, losses: Mapping[str, float],
               validation: tuple[str, float] | None, seconds: float) -> str:
    """`regsegnet epoch 3/40: loss -0.2134 mi -0.4212 ... | val_dice 0.9123 | 12.4 s`."""
    parts = " ".join(f"{name} {value:.4f}" for name, value in losses.items())
    text = f"{method} epoch {epoch}/{total}: {parts}"
    if validation is not None and not math.isnan(validation[1]):
        text += f" | {validation[0]} {validation[1]:.4f}"
    return f"{text} | {seconds:.1f} s"


def log_epoch(method: str, epoch: int, total: int, losses: Mapping[str, float],
              validation: tuple[str, float] | None, seconds: float) -> None:
    """Print `epoch_line` to stderr at once (the log is read while the job runs)."""
    print(epoch_line(method, epoch, total, losses, validation, seconds), file=sys.stderr,
          flush=True)
