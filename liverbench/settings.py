"""One base for every method's settings: a config section, typed, checked and round-tripped.

A method's `Settings` is a frozen dataclass that inherits `SettingsBase`. Its field defaults
are the ONLY defaults of that section: config resolution (`liverbench.config.resolve`) fills
every method section from them, so rule files read values and never hold fallbacks, and a
command line rebuilds exactly the same object from the JSON the rule hands it.

    settings = Settings.from_mapping(config["regsegnet"], section="regsegnet")
    Settings.from_mapping(settings.to_dict()) == settings      # round trip

Nested dataclass fields are built from nested mappings (a partial mapping is merged over the
field's default), lists become tuples, and an unknown key at any level is an error naming its
dotted path (`regsegnet.loss.mii`). Importing this module (or a settings module) never imports
torch: `python -m liverbench.config` and the workflow resolve settings without it.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from liverbench.errors import InputError

T = TypeVar("T", bound="SettingsBase")


class SettingsError(InputError):
    """A setting that is unknown, ill-typed or out of range; the message names its dotted key."""


@dataclasses.dataclass(frozen=True)
class SettingsBase:
    """Frozen-dataclass base: `from_mapping`, `to_dict`, and a `validate` hook per class."""

    def validate(self) -> None:
        """Raise `SettingsError` naming the key when a value is out of range (override)."""

    def check(self, ok: bool, key: str, problem: str) -> None:
        """`validate` helper: raise `key: problem` unless `ok` (the section is prefixed)."""
        if not ok:
            raise SettingsError(f"{key}: {problem}")

    def validate_in(self, section: str) -> None:
        """Run `validate`, naming the problem by its dotted key under `section`."""
        try:
            self.validate()
        except ValueError as error:  # SettingsError, or a plain dataclass's ValueError
            raise SettingsError(_dotted(section, str(error)) if section else str(error)) from None

    @classmethod
    def prepare(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """Reshape a raw section before it is built (override, e.g. to nest flat keys)."""
        return raw

    @classmethod
    def from_mapping(cls: type[T], raw: Mapping[str, Any] | None, section: str = "") -> T:
        """Typed settings from a config section; absent keys take the dataclass defaults."""
        return _build(cls, raw, section, defaults=None)

    @classmethod
    def from_text(cls: type[T], text: str | None, section: str = "") -> T:
        """From `--settings`: a JSON object, or the path of a JSON/YAML file holding one."""
        return cls.from_mapping(read_settings(text, section), section)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples as lists); `from_mapping` rebuilds the same object."""
        return _plain(dataclasses.asdict(self))

    def replace(self: T, **changes: Any) -> T:
        """A validated copy with some fields changed."""
        return type(self).from_mapping({**self.to_dict(), **_plain(changes)})


def read_settings(text: str | None, section: str = "settings") -> dict[str, Any]:
    """`--settings` as a dict: empty → {}, a JSON object, or a JSON/YAML file's object."""
    if text is None or not text.strip():
        return {}
    stripped = text.lstrip()
    if not stripped.startswith("{") and Path(text).is_file():
        import yaml

        try:
            value = yaml.safe_load(Path(text).read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise SettingsError(f"{text}: not valid YAML/JSON ({error})") from error
        where = text
    else:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise SettingsError(f"--settings ({section}): not valid JSON ({error})") from error
        where = f"--settings ({section})"
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SettingsError(f"{where}: must be an object (the {section} config section)")
    return value


def load_class(dotted: str) -> type[SettingsBase]:
    """'package.module:Class' → the class (settings modules import no torch)."""
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def _dotted(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _build(cls: type[T], raw: Mapping[str, Any] | None, section: str, defaults: T | None) -> T:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise SettingsError(f"{section or cls.__name__}: must be a mapping, got {raw!r}")
    raw = cls.prepare(dict(raw))
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        names = ", ".join(_dotted(section, key) for key in unknown)
        raise SettingsError(f"{names}: unknown setting; known: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        kind = _dataclass_type(hints[name])
        if kind is None or isinstance(value, kind) or (value is None and _optional(hints[name])):
            values[name] = _typed(value)
        else:  # a nested section, built the same way (a partial one over its default)
            base = getattr(defaults, name) if defaults is not None else _default(fields[name])
            values[name] = _build(kind, value, _dotted(section, name), base)
    if defaults is not None:  # a partial nested mapping merges over the field's default
        values = {**{name: getattr(defaults, name) for name in fields}, **values}
    try:
        settings = cls(**values)
    except TypeError as error:  # a required field without a default
        raise SettingsError(f"{section or cls.__name__}: {error}") from error
    settings.validate_in(section)
    return settings


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    if field.default is not dataclasses.MISSING:
        return field.default
    return None


def _dataclass_type(hint: Any) -> type | None:
    """The dataclass of a field annotated `X` or `X | None`, else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def _typed(value: Any) -> Any:
    """Lists (also nested) become tuples, so frozen settings stay hashable and comparable."""
    if isinstance(value, list | tuple):
        return tuple(_typed(item) for item in value)
    return value
