"""The `elastix_cnn:` config section, parsed once into typed settings with clear errors.

The defaults are the published values of Luu et al. 2023 (the `paper` scale): a rigid Euler
stage and a B-spline stage, each with 5 resolutions, 500 iterations and 2048 random samples,
Mattes mutual information with 32 bins, bending-energy weight 200, 10 mm final grid. The demo
and smoke scales use fewer resolutions, iterations and samples. Schedules are given per
resolution as (x, y, z) triples, the order of elastix parameter files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class Stage:
    """One elastix stage. `schedule`: per resolution, the rigid stage's shrink factors or the
    B-spline stage's smoothing factors (Gaussian sigma = 0.5 x factor x voxel spacing, no
    downsampling, i.e. elastix's smoothing pyramid; a factor may be fractional, e.g. 0.5)."""

    schedule: tuple[Triple, ...]
    iterations: int = 500
    samples: int = 2048

    def validate(self, name: str, integral: bool) -> None:
        if not self.schedule:
            raise ValueError(f"elastix_cnn settings: {name}.schedule needs >= 1 resolution")
        for level in self.schedule:
            if len(level) != 3 or min(level) <= 0:
                raise ValueError(f"elastix_cnn settings: {name}.schedule entries must be 3 "
                                 f"positive factors (x, y, z), got {list(level)}")
            if integral and any(float(f) != int(f) for f in level):
                raise ValueError(f"elastix_cnn settings: {name}.schedule shrink factors must be "
                                 f"whole numbers, got {list(level)}")
        if self.iterations < 1 or self.samples < 1:
            raise ValueError(f"elastix_cnn settings: {name}.iterations and .samples must be >= 1")

    @property
    def resolutions(self) -> int:
        return len(self.schedule)


def _rigid() -> Stage:
    return Stage(((32, 32, 16), (16, 16, 8), (4, 4, 2), (2, 2, 1), (1, 1, 1)))


def _bspline() -> Stage:
    return Stage(((64, 64, 32), (32, 32, 16), (8, 8, 4), (4, 4, 2), (1, 1, 0.5)))


@dataclass(frozen=True)
class Settings:
    rigid: Stage = field(default_factory=_rigid)
    bspline: Stage = field(default_factory=_bspline)
    bins: int = 32
    grid_spacing_mm: float = 10.0
    bending_weight: float = 200.0
    fixed_mask_dilation_mm: float = 10.0
    moving_mask_dilation_mm: float = 10.0
    min_volume_ratio: float = 0.5
    threads: int = 2

    @classmethod
    def from_dict(cls, section: dict[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = set(section) - known
        if unknown:
            raise ValueError(f"elastix_cnn settings: unknown key(s) {sorted(unknown)}; known: "
                             f"{', '.join(sorted(known))}")
        values = dict(section)
        for name, default in (("rigid", _rigid()), ("bspline", _bspline())):
            if name in values:
                values[name] = _stage(values[name], default, name)
        settings = cls(**values)
        settings.validate()
        return settings

    @classmethod
    def from_json(cls, text: str | None) -> Settings:
        if not text:
            return cls()
        try:
            section = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"--settings is not valid JSON: {error}") from error
        if not isinstance(section, dict):
            raise ValueError("--settings must be a JSON object (the elastix_cnn config section)")
        return cls.from_dict(section)

    def validate(self) -> None:
        self.rigid.validate("rigid", integral=True)
        self.bspline.validate("bspline", integral=False)
        if self.bins < 4:
            raise ValueError(f"elastix_cnn settings: bins must be >= 4, got {self.bins}")
        if self.grid_spacing_mm <= 0 or self.bending_weight < 0:
            raise ValueError("elastix_cnn settings: grid_spacing_mm must be > 0 and "
                             "bending_weight >= 0")
        if self.fixed_mask_dilation_mm < 0 or self.moving_mask_dilation_mm < 0:
            raise ValueError("elastix_cnn settings: mask dilations must be >= 0 mm")
        if not 0 < self.min_volume_ratio <= 1:
            raise ValueError("elastix_cnn settings: min_volume_ratio must lie in (0, 1]")
        if self.threads < 1:
            raise ValueError("elastix_cnn settings: threads must be >= 1")


def _stage(value: Any, default: Stage, name: str) -> Stage:
    if not isinstance(value, dict):
        raise ValueError(f"elastix_cnn settings: {name} must be a mapping, got {value!r}")
    known = {f.name for f in fields(Stage)}
    unknown = set(value) - known
    if unknown:
        raise ValueError(f"elastix_cnn settings: unknown key(s) {sorted(unknown)} in {name}; "
                         f"known: {', '.join(sorted(known))}")
    merged = {f.name: getattr(default, f.name) for f in fields(Stage)} | value
    merged["schedule"] = tuple(tuple(level) for level in merged["schedule"])
    return Stage(**merged)
