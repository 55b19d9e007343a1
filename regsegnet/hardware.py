"""Where the network runs: device choice and CPU threads."""

from __future__ import annotations

import torch

from liverbench.settings import SettingsError


def select_device(name: str = "auto") -> torch.device:
    """`auto` takes CUDA when there is one; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SettingsError(f"device {name!r} requested but CUDA is not available; use auto or cpu")
    return device


def set_threads(threads: int | None) -> int:
    """Limit torch's intra-op threads (the rule's `threads`); returns the number in use."""
    if threads:
        torch.set_num_threads(int(threads))
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only settable before the first parallel work
            pass
    return torch.get_num_threads()


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings measure the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_device_memory_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None
