"""The settings base every method's Settings inherits: build, reject, validate, round-trip."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

import pytest
from conftest import ROOT

from liverbench.settings import SettingsBase, SettingsError, load_class, read_settings


@dataclass(frozen=True)
class Stage(SettingsBase):
    schedule: tuple[tuple[int, ...], ...] = ((4, 4, 2),)
    iterations: int = 10

    def validate(self) -> None:
        self.check(self.iterations >= 1, "iterations", "must be >= 1")


@dataclass(frozen=True)
class Toy(SettingsBase):
    channels: tuple[int, ...] = (8, 16)
    rigid: Stage = field(default_factory=lambda: Stage(((8, 8, 4), (2, 2, 1)), 50))
    bspline: Stage = field(default_factory=Stage)
    seed: int | None = None

    def validate(self) -> None:
        self.check(len(self.channels) >= 2, "channels", "needs two levels")


def test_defaults_round_trip_and_lists_become_tuples():
    toy = Toy.from_mapping({"channels": [1, 2, 3]})
    assert toy.channels == (1, 2, 3) and toy.rigid.iterations == 50
    assert Toy.from_mapping(toy.to_dict()) == toy
    assert toy.to_dict()["rigid"]["schedule"] == [[8, 8, 4], [2, 2, 1]]


def test_partial_nested_mapping_merges_over_the_fields_own_default():
    toy = Toy.from_mapping({"rigid": {"iterations": 7}})
    assert toy.rigid == Stage(((8, 8, 4), (2, 2, 1)), 7)  # the rigid default, not Stage()'s
    assert toy.bspline == Stage()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"chanels": [1, 2]}, r"^toy\.chanels: unknown setting; known: bspline, channels"),
        ({"rigid": {"iters": 3}}, r"^toy\.rigid\.iters: unknown setting"),
        ({"rigid": {"iterations": 0}}, r"^toy\.rigid\.iterations: must be >= 1"),
        ({"channels": [4]}, r"^toy\.channels: needs two levels"),
        ({"rigid": [1, 2]}, r"^toy\.rigid: must be a mapping"),
    ],
)
def test_bad_settings_name_their_dotted_key(raw, message):
    with pytest.raises(SettingsError, match=message):
        Toy.from_mapping(raw, section="toy")


def test_settings_text_is_json_or_a_file(tmp_path):
    assert read_settings('{"a": 1}') == {"a": 1}
    assert read_settings("") == {}
    path = tmp_path / "s.yaml"
    path.write_text("a: 2\n")
    assert read_settings(str(path)) == {"a": 2}
    with pytest.raises(SettingsError, match="not valid JSON"):
        read_settings("{bad")
    with pytest.raises(SettingsError, match="must be an object"):
        read_settings("[1, 2]")
    assert Toy.from_text('{"seed": 3}').seed == 3


def test_replace_validates():
    toy = Toy()
    assert toy.replace(seed=5).seed == 5
    with pytest.raises(SettingsError):
        toy.replace(channels=[1])


def test_no_settings_module_imports_torch():
    """The workflow resolves every method section without torch (or MONAI, nnU-Net, ITK)."""
    from liverbench.methods import SETTINGS_SECTIONS

    code = (
        "import sys\n"
        "from liverbench.settings import load_class\n"
        f"for dotted in {list(SETTINGS_SECTIONS.values())!r}:\n"
        "    load_class(dotted).from_mapping({})\n"
        "import regsegnet, baselines.deepmedic, baselines.nnunet, baselines.elastix_cnn\n"
        "heavy = [m for m in ('torch', 'monai', 'nnunetv2', 'itk') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_every_method_section_round_trips():
    from liverbench.methods import SETTINGS_SECTIONS

    for section, dotted in SETTINGS_SECTIONS.items():
        settings = load_class(dotted).from_mapping({}, section)
        assert type(settings).from_mapping(settings.to_dict(), section) == settings, section
