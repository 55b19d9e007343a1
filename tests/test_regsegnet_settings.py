"""RegSegNet settings: the `regsegnet:` section checked, round-tripped, and what the workflow
builds from it (models, variants, training and prediction sections). No torch needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from liverbench.methods import regsegnet_variants
from regsegnet.settings import Augmentation, LossWeights, Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent


def test_unknown_setting_is_named():
    with pytest.raises(SettingsError, match="regsegnet.casades: unknown setting"):
        Settings.from_mapping({"casades": 2}, section="regsegnet")
    with pytest.raises(SettingsError, match="regsegnet.cascades: must be >= 1"):
        Settings.from_mapping({"cascades": 0}, section="regsegnet")
    with pytest.raises(SettingsError, match="regsegnet.loss.mii: unknown setting"):
        Settings.from_mapping({"loss": {"mii": 1.0}}, section="regsegnet")
    with pytest.raises(SettingsError, match="regsegnet.shape: unknown setting"):
        Settings.from_mapping({"shape": [8, 8, 8]}, section="regsegnet")  # from the data


@pytest.mark.parametrize("entry, problem", [
    ({"name": "wide_c2"}, "regsegnet.loss_grid: name 'wide_c2' must not end in _c<k>"),
    ({"name": "x", "mii": 0.0}, r"regsegnet.loss_grid: entry 'x': unknown key\(s\) \['mii'\]"),
    ({"name": "x", "dice": -1.0}, "regsegnet.loss_grid.x.dice: must be a number >= 0"),
    ({"dice": 2.0}, "regsegnet.loss_grid: entry .* needs a name"),
])
def test_bad_loss_grid_entry_is_named(entry, problem):
    with pytest.raises(SettingsError, match=problem):
        Settings.from_mapping({"loss_grid": [entry]}, section="regsegnet")


def test_settings_round_trip_and_partial_loss():
    settings = Settings.from_mapping({"loss": {"dice": 2.0}, "loss_grid": [{"name": "a"}]})
    assert settings.loss == LossWeights(mi=1.0, dice=2.0, bending=0.01)
    assert Settings.from_mapping(settings.to_dict()) == settings
    assert settings.with_loss(mi=0.0).loss == LossWeights(mi=0.0, dice=2.0, bending=0.01)


def test_training_section_per_model():
    section = {"loss": {"dice": 2.0}, "seed": 5, "moving_mask": "nnunet_cect",
               "loss_grid": [{"name": "mi_only", "dice": 0.0}]}
    settings = Settings.from_mapping(section)
    assert settings.models() == ["regsegnet", "regsegnet_wmi_only"]
    base = settings.training_section("regsegnet")
    assert "loss_grid" not in base and "moving_mask" not in base and "shape" not in base
    assert base["loss"] == {"mi": 1.0, "dice": 2.0, "bending": 0.01} and base["seed"] == 5
    grid = settings.training_section("regsegnet_wmi_only")
    assert grid["loss"] == {"mi": 1.0, "dice": 0.0, "bending": 0.01}
    assert Settings.from_mapping(json.loads(json.dumps(grid))).loss.dice == 0.0
    assert settings.prediction_section() == {"device": "auto", "moving_mask": "nnunet_cect",
                                             "inference": "eager"}
    assert settings.moving_mask_method == "nnunet_cect"
    with pytest.raises(SettingsError, match="regsegnet_wother: not a RegSegNet model"):
        settings.training_section("regsegnet_wother")


def test_variants_match_the_method_registry():
    section = Settings.from_mapping(
        {"cascades": 2, "loss_grid": [{"name": "stiff", "bending": 0.1}]}
    )
    variants = section.variants()
    registry = {method.id for method in regsegnet_variants(section.to_dict())} | {"regsegnet"}
    assert set(variants) == registry
    assert variants["regsegnet"] == ("regsegnet", 2)
    assert variants["regsegnet_wstiff_c1"] == ("regsegnet_wstiff", 1)


def test_settings_and_package_import_no_torch():
    code = "import sys, regsegnet, regsegnet.settings; assert 'torch' not in sys.modules"
    code += "; import os; assert 'OMP_WAIT_POLICY' not in os.environ"
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_augmentation_is_on_by_default_without_flips():
    augmentation = Settings.from_mapping({}).augmentation
    assert augmentation.enabled and not augmentation.flips
    # both ways along every axis, spanning what the pre-alignment leaves (docs/regsegnet.md)
    assert augmentation.rotation_deg > 0 and augmentation.translation_voxels >= 1
    assert augmentation.scale == pytest.approx(0.03)
    partial = Settings.from_mapping({"augmentation": {"noise_std": 0.0}}).augmentation
    assert partial == Augmentation(noise_std=0.0)  # a partial section merges over the defaults
    assert "augmentation" in Settings().training_identity()  # other augmentation: retrain


def test_old_augment_flag_becomes_flips():
    settings = Settings.from_mapping({"augment": True, "augmentation": {"scale": 0.02}})
    assert settings.augmentation == Augmentation(flips=True, scale=0.02)
    assert Settings.from_mapping(settings.to_dict()) == settings
    assert "augment" not in settings.to_dict()
    with pytest.raises(SettingsError, match="augment: replaced by augmentation.flips"):
        Settings.from_mapping({"augment": True, "augmentation": {"flips": False}})


@pytest.mark.parametrize("section, problem", [
    ({"rotation_deg": -1.0}, "regsegnet.augmentation.rotation_deg: must be a number >= 0"),
    ({"rotation_deg": 90.0}, "regsegnet.augmentation.rotation_deg: must be <= 45"),
    ({"scale": 0.7}, "regsegnet.augmentation.scale: must be < 0.5"),
    ({"noise_std": "a"}, "regsegnet.augmentation.noise_std: must be a number"),
    ({"flips": 1}, "regsegnet.augmentation.flips: must be true or false"),
    ({"shear": 0.1}, "regsegnet.augmentation.shear: unknown setting"),
])
def test_bad_augmentation_is_named(section, problem):
    with pytest.raises(SettingsError, match=problem):
        Settings.from_mapping({"augmentation": section}, section="regsegnet")
