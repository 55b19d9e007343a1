"""Configuration: merge the chosen scale over the top level, then validate.

The schema is closed at every level, so a misspelt or ill-typed key stops the run with the
key's dotted path and the problem, before any job starts.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from liverbench.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


def deep_merge(base: dict, override: dict) -> dict:
    """A copy of `base` with `override` merged in; nested dicts merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def validate(config: dict, schema: dict | None = None, source: str = "config") -> None:
    schema = schema if schema is not None else load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for error in errors:
            key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
            lines.append(f"{source}: key '{key}': {error.message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


def resolve(config: dict, schema: dict | None = None) -> dict:
    """Validate the raw config and every scale's merge; return the merge for `config['scale']`.

    Every method section is built by its Settings class (the one place its defaults live) and
    written back in full, so the workflow reads values and never holds a fallback; a `seed`
    left null takes the top-level seed. `methods` must name registered methods.
    """
    schema = schema if schema is not None else load_schema()
    validate(config, schema)
    resolved = {}
    for scale, block in config["scales"].items():
        merged = deep_merge(config, block or {})
        merged["scale"] = scale
        source = f"config (scale '{scale}')"
        validate(merged, schema, source=source)
        check_values(merged, source)
        resolved[scale] = fill_sections(merged, source)
    if config["scale"] not in resolved:
        raise ConfigError(f"config: key 'scale': no block '{config['scale']}' under 'scales'")
    return resolved[config["scale"]]


def check_values(config: dict, source: str = "config") -> None:
    """What the schema cannot say: relations between values."""
    low, high = config["preprocess"]["window"]
    if not low < high:
        raise ConfigError(f"{source}: key 'preprocess.window': [{low}, {high}] must be "
                          "[low, high] HU with low < high; a reversed or empty window makes "
                          "every image constant")


def fill_sections(config: dict, source: str = "config") -> dict:
    """Each settings section rebuilt in full from its Settings class; methods checked."""
    from liverbench import methods
    from liverbench.settings import SettingsError, load_class

    filled = dict(config)
    for section, dotted in methods.SETTINGS_SECTIONS.items():
        raw = dict(config.get(section) or {})
        settings_class = load_class(dotted)
        if "seed" in {f.name for f in fields(settings_class)} and raw.get("seed") is None:
            raw["seed"] = config["seed"]
        try:
            filled[section] = settings_class.from_mapping(raw, section).to_dict()
        except SettingsError as error:
            raise ConfigError(f"{source}: key {error}") from None
    filled["evaluation"]["method_labels"] = methods.labels(filled)
    return filled


def read_yaml(path: str | Path) -> dict:
    """A config file as a mapping; an empty file is an empty mapping."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping")
    return data


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> dict:
    """Read a YAML config, apply top-level overrides, resolve and validate it."""
    raw = read_yaml(path)
    return resolve(deep_merge(raw, overrides or {}))
