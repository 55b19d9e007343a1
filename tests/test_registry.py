"""The method registry, config resolution that fills every method section, and the layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from liverbench import methods
from liverbench.config import ConfigError, deep_merge, resolve
from liverbench.layout import Layout, pair_id, parse_pair
from liverbench.settings import load_class

CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"


def raw() -> dict:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def test_unknown_method_stops_validation_with_the_valid_ids():
    with pytest.raises(ConfigError, match=r"unknown method\(s\) \['regsegnett'\]; valid ids: "
                                          r"identity, rigid, regsegnet, elastix_cnn"):
        resolve(deep_merge(raw(), {"methods": ["identity", "regsegnett"]}))


def test_resolution_fills_every_method_section_from_its_settings_class():
    config = raw()
    del config["regsegnet"]["epochs"], config["nnunet"]["gpu"]
    config["regsegnet"]["seed"] = None
    resolved = resolve(config)
    for section, dotted in methods.SETTINGS_SECTIONS.items():
        assert resolved[section] == load_class(dotted).from_mapping(resolved[section]).to_dict()
        assert set(resolved[section]) == set(load_class(dotted)().to_dict()), section
    assert resolved["regsegnet"]["epochs"] == 4  # the dataclass default, the only one
    assert resolved["nnunet"]["gpu"] == 0
    assert resolved["regsegnet"]["seed"] == resolved["seed"]


def test_bad_method_setting_names_the_scale_and_dotted_key():
    with pytest.raises(ConfigError, match=r"scale 'smoke'.*regsegnet\.loss\.mii"):
        resolve(deep_merge(raw(), {"scales": {"smoke": {"regsegnet": {"loss": {"mii": 1}}}}}))


def test_labels_come_from_the_registry_unless_overridden():
    config = deep_merge(raw(), {"evaluation": {"method_labels": {"identity": "No reg."}}})
    labels = resolve(config)["evaluation"]["method_labels"]
    assert labels["identity"] == "No reg."
    assert labels["regsegnet_c1"] == "RegSegNet, 1 cascade"
    assert labels["deepmedic"] == "Revised DeepMedic (ours)"


def test_custom_method_is_registered_and_may_not_shadow_a_builtin():
    custom = {"thresh": {"label": "Threshold", "family": "direct segmentation",
                         "rules": "tests/data/threshold.smk"}}
    config = resolve(deep_merge(raw(), {"custom_methods": custom,
                                        "methods": ["identity", "thresh"]}))
    selected = methods.selected(config)
    assert [m.id for m in selected] == ["identity", "thresh"]
    assert selected[1].family == methods.SEGMENTATION
    with pytest.raises(ConfigError, match="built-in"):
        resolve(deep_merge(raw(), {"custom_methods": {"identity": custom["thresh"]}}))


def test_layout_spells_each_path_once():
    layout = Layout("results/x")
    assert layout.case_file("P001", "cect") == "results/x/data/h108/P001/cect.nii"
    assert layout.prediction("m", "{pair}") == "results/x/predictions/m/{pair}.nii.gz"
    assert parse_pair(pair_id("A_1", "B")) == ("A_1", "B")
    with pytest.raises(ValueError, match="MOVING__FIXED"):
        parse_pair("A__B__C")
