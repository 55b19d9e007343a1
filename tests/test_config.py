"""Config: scales merge, unknown and ill-typed keys are named."""

from pathlib import Path

import pytest
import yaml

from liverbench.config import ConfigError, deep_merge, load, resolve

CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"


def raw() -> dict:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def test_default_is_demo_and_every_scale_resolves():
    assert load(CONFIG)["scale"] == "demo"
    smoke = load(CONFIG, {"scale": "smoke"})
    assert smoke["cohort"]["patients"] < load(CONFIG)["cohort"]["patients"]
    assert load(CONFIG, {"scale": "paper"})["preprocess"]["shape"] == [128, 128, 128]


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="'patiens' was unexpected"):
        resolve(deep_merge(raw(), {"cohort": {"patiens": 3}}))


def test_unknown_key_inside_a_scale_is_named():
    with pytest.raises(ConfigError, match=r"scale 'smoke'.*key 'preprocess'.*'shap'"):
        resolve(deep_merge(raw(), {"scales": {"smoke": {"preprocess": {"shap": [1, 2, 3]}}}}))


def test_ill_typed_key_is_named():
    with pytest.raises(ConfigError, match=r"key 'preprocess.shape'"):
        resolve(deep_merge(raw(), {"preprocess": {"shape": [64, 64]}}))
    with pytest.raises(ConfigError, match=r"key 'seed'"):
        resolve(deep_merge(raw(), {"seed": "many"}))
