"""The `elastix_cnn:` config section as typed settings (`liverbench.settings.SettingsBase`).

The defaults are the published values of Luu et al. 2023 (the `paper` scale): a rigid Euler
stage and a B-spline stage, each with 5 resolutions, 500 iterations and 2048 random samples,
Mattes mutual information with 32 bins, bending-energy weight 200, 10 mm final grid. The demo
and smoke scales use fewer resolutions, iterations and samples. Schedules are given per
resolution as (x, y, z) triples, the order of elastix parameter files. A partial stage
mapping (e.g. only `iterations`) keeps that stage's own default schedule.
With a pre-alignment, `centre_livers` shifts it so that the phase-1 liver masks' centroids
coincide before the Euler stage (without one, elastix's centre-of-gravity initialisation, as
published). `mapping_spacing_mm` is the grid step of the written final mapping (a
displacement field over the nCECT field of view; the true motion is stored at about the same
step).
`parameter_files` replaces the schedule by the user's own elastix parameter files, run in the
given order as they are (`baselines.elastix_cnn.parameter_files`; paths from the working
directory); each file must exist and parse, so a bad one stops the config, naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from baselines.elastix_cnn import parameter_files as user_files
from liverbench.settings import SettingsBase

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class Stage(SettingsBase):
    """One elastix stage. `schedule`: per resolution, the rigid stage's shrink factors or the
    B-spline stage's smoothing factors (Gaussian sigma = 0.5 x factor x voxel spacing, no
    downsampling, i.e. elastix's smoothing pyramid; a factor may be fractional, e.g. 0.5)."""

    schedule: tuple[Triple, ...]
    iterations: int = 500
    samples: int = 2048

    def validate(self) -> None:
        self.check(bool(self.schedule), "schedule", "needs >= 1 resolution")
        for level in self.schedule:
            self.check(len(level) == 3 and min(level) > 0, "schedule",
                       f"entries must be 3 positive factors (x, y, z), got {list(level)}")
        self.check(self.iterations >= 1, "iterations", "must be >= 1")
        self.check(self.samples >= 1, "samples", "must be >= 1")

    @property
    def resolutions(self) -> int:
        return len(self.schedule)


def _rigid() -> Stage:
    return Stage(((32, 32, 16), (16, 16, 8), (4, 4, 2), (2, 2, 1), (1, 1, 1)))


def _bspline() -> Stage:
    return Stage(((64, 64, 32), (32, 32, 16), (8, 8, 4), (4, 4, 2), (1, 1, 0.5)))


@dataclass(frozen=True)
class Settings(SettingsBase):
    rigid: Stage = field(default_factory=_rigid)
    bspline: Stage = field(default_factory=_bspline)
    bins: int = 32
    grid_spacing_mm: float = 10.0
    bending_weight: float = 200.0
    fixed_mask_dilation_mm: float = 10.0
    moving_mask_dilation_mm: float = 10.0
    min_volume_ratio: float = 0.5
    centre_livers: bool = True
    mapping_spacing_mm: float = 4.0
    threads: int = 2
    # The user's elastix parameter files, in order; None: the schedule above (rigid, bspline,
    # bins, grid_spacing_mm and bending_weight are then unused).
    parameter_files: tuple[str, ...] | None = None

    def validate(self) -> None:
        # elastix's recursive pyramid (the rigid stage) shrinks by whole factors only.
        for level in self.rigid.schedule:
            self.check(all(float(f) == int(f) for f in level), "rigid.schedule",
                       f"shrink factors must be whole numbers, got {list(level)}")
        self.check(self.bins >= 4, "bins", f"must be >= 4, got {self.bins}")
        self.check(self.grid_spacing_mm > 0, "grid_spacing_mm", "must be > 0")
        self.check(self.bending_weight >= 0, "bending_weight", "must be >= 0")
        for key in ("fixed_mask_dilation_mm", "moving_mask_dilation_mm"):
            self.check(getattr(self, key) >= 0, key, "must be >= 0 mm")
        self.check(0 < self.min_volume_ratio <= 1, "min_volume_ratio", "must lie in (0, 1]")
        self.check(self.mapping_spacing_mm > 0, "mapping_spacing_mm", "must be > 0")
        self.check(self.threads >= 1, "threads", "must be >= 1")
        if self.parameter_files is not None:
            files = self.parameter_files
            self.check(isinstance(files, tuple) and len(files) >= 1
                       and all(isinstance(name, str) and name for name in files),
                       "parameter_files", f"a list of at least one file (elastix parameter "
                       f"maps, run in order), or null for the schedule; got {files!r}")
            for index, name in enumerate(files):
                problem = user_files.problem(name)
                self.check(problem is None, f"parameter_files[{index}]", str(problem))
