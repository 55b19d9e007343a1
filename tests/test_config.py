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


def test_a_configfile_adds_its_own_scale():
    """configs/paper_memory.yaml: a scale of its own, merged like the shipped ones; a scale no
    block defines, or an ill-named one, is named."""
    extra = yaml.safe_load((CONFIG.parent / "configs" / "paper_memory.yaml").read_text())
    config = resolve(deep_merge(raw(), extra))
    assert config["scale"] == "paper_memory" and config["cohort"]["patients"] == 6
    assert config["preprocess"]["shape"] == [128, 128, 128]
    assert config["regsegnet"]["channels"] == [16, 32, 64, 128, 256]
    with pytest.raises(ConfigError, match="no block 'huge' under 'scales'"):
        resolve(deep_merge(raw(), {"scale": "huge"}))
    with pytest.raises(ConfigError, match="scales"):
        resolve(deep_merge(raw(), {"scales": {"my scale": {}}}))


@pytest.mark.parametrize("window", [[240, -160], [40, 40]])
def test_reversed_or_empty_window_is_named(window):
    """A reversed or zero-width window gave constant images silently (issue #15)."""
    with pytest.raises(ConfigError, match=r"preprocess\.window.*low < high"):
        resolve(deep_merge(raw(), {"preprocess": {"window": window}}))


@pytest.mark.parametrize("experiment", ["..", ".", ".hidden", "a/b"])
def test_experiment_must_be_a_name_not_a_path(experiment):
    """`experiment: ..` wrote data/, models/ and benchmark files into the repository."""
    with pytest.raises(ConfigError, match="key 'experiment'"):
        resolve(deep_merge(raw(), {"experiment": experiment}))
