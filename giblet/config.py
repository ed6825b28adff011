"""Load and validate giblet configuration files against the JSON schema."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jsonschema
import yaml

__all__ = ["SCHEMA_PATH", "ConfigError", "load_config", "validate_config"]

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration file that does not match the schema."""


def _with_defaults(validator_class):
    """A validator that fills in schema defaults (as snakemake.utils.validate does)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(name, sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _describe(error):
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        return f"{where}: {error.message}; check the spelling against giblet/schemas/config.schema.yaml"
    return f"key {where!r}: {error.message}"


def _cross_key_errors(config):
    """Rules that tie values together, which a JSON schema cannot state."""
    fractions = config["split"]["fractions"]
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        yield (f"key 'split.fractions': {fractions} sum to {sum(fractions):g}; the shares of the train, val and "
               "test blocks must sum to 1")
    unknown = sorted(set(config["fmri"]["published_isc"]) - set(config["fmri"]["rois"]))
    if unknown:
        yield (f"key 'fmri.published_isc': ROIs {unknown} are not in fmri.rois {sorted(config['fmri']['rois'])}; "
               "name the published table by the ROI it was computed on")
    sound = config["evaluate"]["sound_classes"]
    if sound is not None and sound not in config["text"]["label_columns"]:
        yield (f"key 'evaluate.sound_classes': {sound!r} is not among text.label_columns "
               f"{config['text']['label_columns']}; name a label column of the annotations")


def validate_config(config, source="config"):
    """Validate ``config`` (a dict) in place, filling defaults; raise ConfigError naming every bad key."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = [_describe(e) for e in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))]
    if not errors:
        errors = list(_cross_key_errors(config))
    if errors:
        lines = "\n  ".join(errors)
        raise ConfigError(f"{source}: invalid configuration:\n  {lines}")
    return config


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader for which a key written twice in one mapping is an error (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"key {key!r} is written twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1}); "
                    "keep one", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_config(path):
    """Read a YAML config file, validate it and return it with defaults filled in."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        config = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return validate_config(config, source=str(path))


def check_choice(name, value, allowed):
    """``value`` if it is one of ``allowed``, else a ValueError naming ``name``, the choices and ``value``.

    Choices are listed in their own order for a tuple or list, sorted for a set or a dict (their keys).
    """
    if value not in allowed:
        choices = list(allowed) if isinstance(allowed, (tuple, list)) else sorted(allowed)
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_keys(name, section, known):
    """A ValueError naming the config section ``name``'s keys that are not in ``known``, and the known ones."""
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise ValueError(f"{name}: unknown keys {unknown}; known keys are {sorted(known)}")


def from_section(cls, name, section):
    """The dataclass ``cls`` built from the config section ``name`` (unknown keys are an error)."""
    check_keys(name, section, [f.name for f in dataclasses.fields(cls)])
    return cls(**section)
