"""nnU-Net's process environment: folders, worker counts, trainer search path, threads.

nnU-Net reads most of its settings from environment variables, several of them once, when
`nnunetv2.configuration` is first imported (`nnUNet_def_n_proc`). So `configure` must run
before anything imports nnunetv2; every entry point of this package calls it first and
imports the nnunetv2-using modules afterwards.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from liverbench.errors import InputError

TRAINER_DIR = Path(__file__).resolve().parent / "trainers"
SCHEDULE_VARIABLES = {
    "epochs": "REGSEGBENCH_NNUNET_EPOCHS",
    "iterations_per_epoch": "REGSEGBENCH_NNUNET_ITERATIONS",
    "val_iterations": "REGSEGBENCH_NNUNET_VAL_ITERATIONS",
}


FOLDER_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
# The user's own nnU-Net folders, as this process found them: `configure` sets the same
# variables for nnU-Net, and a later call must not take those for the user's.
USER_FOLDERS = {name: os.environ[name] for name in FOLDER_VARIABLES if os.environ.get(name)}


def folders(root: str | os.PathLike) -> dict[str, Path]:
    """nnU-Net's three folders: the user's where their variable is set (an nnU-Net user's
    datasets and models live there), else the pipeline's own under `root` (EXP/nnunet)."""
    root = Path(root)
    own = dict(zip(FOLDER_VARIABLES, (root / "raw", root / "preprocessed", root / "results")))
    return {name: Path(USER_FOLDERS.get(name, own[name])) for name in FOLDER_VARIABLES}


def folder_sources(root: str | os.PathLike) -> dict[str, str]:
    """Each folder and where it comes from, for logs and records."""
    return {name: f"{path} ({'environment' if name in USER_FOLDERS else 'pipeline'})"
            for name, path in folders(root).items()}


def configure(root: str | os.PathLike, threads: int,
              augmentation_workers: int | None = None) -> None:
    """Point nnU-Net at `root` and bound every worker pool by `threads`.

    nnU-Net otherwise starts 8 preprocessing and up to 12 augmentation processes, whatever
    the job was given; on a shared node that oversubscribes the CPU. `augmentation_workers`
    (None: `threads`) are the training's data-augmentation processes; 0 runs augmentation in
    the training process, where the seeded random streams make training reproducible (worker
    processes hand over batches in whatever order they finish).
    """
    if threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}")
    for name, path in folders(root).items():
        path.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(path.resolve())
    print("nnU-Net folders: " + ", ".join(f"{name}={where}" for name, where
                                          in folder_sources(root).items()),
          file=sys.stderr, flush=True)
    os.environ["nnUNet_def_n_proc"] = str(threads)
    workers = threads if augmentation_workers is None else augmentation_workers
    os.environ["nnUNet_n_proc_DA"] = str(workers)
    os.environ["nnUNet_extTrainer"] = str(TRAINER_DIR)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)
    loaded = sys.modules.get("nnunetv2.configuration")
    if loaded is not None and loaded.default_num_processes != threads:
        raise RuntimeError(
            "nnunetv2 was imported before baselines.nnunet.environment.configure(); its worker "
            f"count is fixed at {loaded.default_num_processes}, not {threads}. Configure first."
        )
    import torch  # after the thread variables, so that intra-op pools start at the right size

    torch.set_num_threads(threads)


def set_schedule(epochs: int, iterations_per_epoch: int, val_iterations: int) -> None:
    """The schedule `nnUNetTrainerShort` reads when nnU-Net constructs it by name."""
    values = dict(epochs=epochs, iterations_per_epoch=iterations_per_epoch,
                  val_iterations=val_iterations)
    for key, variable in SCHEDULE_VARIABLES.items():
        os.environ[variable] = str(int(values[key]))
