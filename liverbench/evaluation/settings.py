"""Evaluation settings: the `evaluation:` config section, typed and with its defaults.

The tables read these (reference method of the paired tests, bootstrap resamples, display
labels, the paper's printed Table 1); config resolution fills the section from this class,
so neither the rule files nor the tables hold a fallback of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from liverbench.settings import SettingsBase


@dataclass(frozen=True)
class Settings(SettingsBase):
    reference_method: str = "regsegnet"  # paired tests are against this method
    # The Holm family: the methods tested against the reference. The paper's Table 1
    # competitors (Elastix + CNN, DeepMedic), elastix carrying the same annotated CECT liver
    # as RegSegNet (the comparison that isolates the registration), and nnU-Net on the nCECT;
    # the bounds (identity, rigid) and the reference's own ablations are shown without a
    # test, so they do not dilute the correction.
    tested_methods: tuple[str, ...] = ("elastix", "elastix_cnn", "deepmedic", "nnunet_ncect")
    bootstrap_samples: int = 2000  # resamples of the 95% CI of the mean
    method_labels: dict[str, str] = field(default_factory=dict)  # {method id: display name}
    # The paper's rows: {citation, label?, rows: [{method, dsc, fnr, fpr, msd, runtime}]},
    # or the list of rows alone; values "0.92±0.02"-style strings, numbers, [mean, std].
    paper_table1: dict[str, Any] | tuple[dict[str, Any], ...] | None = None

    def validate(self) -> None:
        self.check(bool(self.reference_method), "reference_method", "must name a method")
        self.check(self.bootstrap_samples >= 0, "bootstrap_samples", "must be >= 0")
        self.check(all(isinstance(m, str) and m for m in self.tested_methods),
                   "tested_methods", "must be a list of method ids")
        self.check(isinstance(self.method_labels, dict), "method_labels",
                   "must be a mapping {method id: label}")
