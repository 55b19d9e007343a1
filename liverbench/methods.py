"""The method registry: what the benchmark can run, and the settings sections it reads.

Each method declares its id, display label, family, the rule file that produces it, and what
the report draws for it (a loss CSV, warped CECTs). Every method's per-pair outputs are the
same two files (`Layout.prediction` and `Layout.runtime`): the evaluation needs nothing else.
`rule all` and the evaluation are derived from `config["methods"]` and this registry; an
unknown id stops config validation with the list of valid ids.

A user's own method is one rule file, one entry under `custom_methods:` in the config and one
line in `methods:` (docs/adding-a-method.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from liverbench.errors import ConfigError
from liverbench.layout import Layout
from liverbench.settings import load_class

LOWER_BOUND = "lower bound"
REGISTRATION = "registration"
SEGMENTATION = "direct segmentation"
FAMILIES = (LOWER_BOUND, REGISTRATION, SEGMENTATION)

# Config sections validated and filled with defaults by their Settings class
# (liverbench.settings.SettingsBase); "module:Class", imported lazily and torch-free.
SETTINGS_SECTIONS = {
    "evaluation": "liverbench.evaluation.settings:Settings",
    "prealign": "liverbench.data.prealign:Settings",
    "regsegnet": "regsegnet.settings:Settings",
    "deepmedic": "baselines.deepmedic.settings:Settings",
    "nnunet": "baselines.nnunet.settings:Settings",
    "elastix_cnn": "baselines.elastix_cnn.settings:Settings",
}


@dataclass(frozen=True)
class Method:
    """One row of the benchmark's tables."""

    id: str
    label: str
    family: str
    rules: str  # rule file: a name under workflow/rules/, or a path (custom methods)
    training_curve: Callable[[Layout], str] | None = None  # loss CSV the report plots
    warped: bool = False  # writes Layout.warped(method, pair): registration checkerboards
    mapping: bool = False  # writes Layout.mapping(method, pair): scored against the true motion
    # The mask source as a design factor: a row that carries another CECT liver through the
    # final mapping of method `carries` (its mapping is that method's; mask_source.smk).
    carries: str | None = None
    cect_mask: str = "annotation"  # the CECT liver the row carries: annotation | nnunet
    registration: str = ""  # the registration's name in the mask-source table (default: label)

    @property
    def mapping_owner(self) -> str:
        """The method whose mapping file this row's registration error is scored on."""
        return self.carries or self.id

    def outputs(self, layout: Layout, pair: str) -> tuple[str, str]:
        """The per-pair contract: the liver mask in original nCECT geometry, its runtime."""
        return layout.prediction(self.id, pair), layout.runtime(self.id, pair)


def _curve(model: str, name: str = "losses.csv") -> Callable[[Layout], str]:
    return lambda layout: layout.model_file(model, name)


BUILTIN = (
    Method("identity", "Identity (no registration)", LOWER_BOUND, "identity.smk", mapping=True),
    Method("rigid", "Rigid pre-alignment", LOWER_BOUND, "rigid.smk", mapping=True),
    Method("regsegnet", "RegSegNet", REGISTRATION, "regsegnet.smk", _curve("regsegnet"), True,
           True),
    Method("elastix_cnn", "Elastix + CNN", REGISTRATION, "elastix_cnn.smk", mapping=True,
           cect_mask="nnunet", registration="Elastix (Luu et al.)"),
    Method("nnunet_ncect", "nnU-Net on nCECT", SEGMENTATION, "nnunet.smk",
           _curve("nnunet", "ncect_losses.csv")),
    Method("deepmedic", "Revised DeepMedic (ours)", SEGMENTATION, "deepmedic.smk",
           _curve("deepmedic")),
)


# Every registration method's mapping carries both CECT livers (docs/evaluation.md): the
# annotation and nnU-Net's segmentation. Elastix + CNN (Luu et al.) carries nnU-Net's, so its
# other row is `elastix`; the others carry the annotation, so theirs is `{id}_cnnmask`.
MASK_SOURCE_ROWS = (
    Method("identity_cnnmask", "Identity, nnU-Net CECT liver", LOWER_BOUND, "mask_source.smk",
           mapping=True, carries="identity", cect_mask="nnunet"),
    Method("rigid_cnnmask", "Rigid pre-alignment, nnU-Net CECT liver", LOWER_BOUND,
           "mask_source.smk", mapping=True, carries="rigid", cect_mask="nnunet"),
    Method("regsegnet_cnnmask", "RegSegNet, nnU-Net CECT liver", REGISTRATION,
           "mask_source.smk", mapping=True, carries="regsegnet", cect_mask="nnunet"),
    Method("elastix", "Elastix, annotated CECT liver", REGISTRATION, "mask_source.smk",
           mapping=True, carries="elastix_cnn", cect_mask="annotation"),
)


def regsegnet_variants(section: Mapping[str, Any]) -> list[Method]:
    """RegSegNet's extra rows, as its Settings names them (`Settings.variants`): `_c{k}` the
    first k cascades (the cascade ablation), `_w{name}` a model trained with loss_grid entry
    `name`, `_w{name}_c{k}` both."""
    settings = load_class(SETTINGS_SECTIONS["regsegnet"]).from_mapping(section, "regsegnet")
    variants = []
    for method_id, (model, cascades) in settings.variants().items():
        if method_id == "regsegnet":
            continue  # the built-in row
        label = "RegSegNet" if model == "regsegnet" else f"RegSegNet, loss {model[11:]}"
        if method_id != model:
            label += f", {cascades} cascade{'s' if cascades > 1 else ''}"
        curve = _curve(model) if method_id == model else None
        variants.append(Method(method_id, label, REGISTRATION, "regsegnet.smk", curve, True, True))
    return variants


def custom_methods(config: Mapping[str, Any]) -> list[Method]:
    """Methods declared under `custom_methods:` (id → label, family, rules[, training_curve])."""
    methods = []
    for method_id, entry in (config.get("custom_methods") or {}).items():
        curve = entry.get("training_curve")
        methods.append(Method(
            method_id, entry.get("label", method_id), entry["family"], entry["rules"],
            (lambda layout, path=curve: f"{layout.root}/{path}") if curve else None,
            bool(entry.get("warped", False)),
            bool(entry.get("mapping", False)),
        ))
    return methods


def registry(config: Mapping[str, Any]) -> dict[str, Method]:
    """Every method this config can run, by id, in a stable order."""
    methods = (list(BUILTIN) + list(MASK_SOURCE_ROWS)
               + regsegnet_variants(config.get("regsegnet") or {}))
    custom = custom_methods(config)
    clash = sorted({m.id for m in custom} & {m.id for m in methods})
    if clash:
        raise ConfigError(f"config: key 'custom_methods': {clash} are built-in method ids")
    return {method.id: method for method in methods + custom}


def selected(config: Mapping[str, Any]) -> list[Method]:
    """The methods of `config['methods']`, in table order; an unknown id is a ConfigError."""
    known = registry(config)
    unknown = [method for method in config["methods"] if method not in known]
    if unknown:
        raise ConfigError(
            f"config: key 'methods': unknown method(s) {unknown}; valid ids: "
            f"{', '.join(known)} (or declare one under custom_methods, docs/adding-a-method.md)"
        )
    return [known[method] for method in config["methods"]]


def labels(config: Mapping[str, Any]) -> dict[str, str]:
    """Display label per selected method: the registry's, overridden by evaluation.method_labels."""
    overrides = (config.get("evaluation") or {}).get("method_labels") or {}
    return {method.id: overrides.get(method.id, method.label) for method in selected(config)}
