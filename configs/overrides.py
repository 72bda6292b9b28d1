"""Config files and typed overrides: `FILE.py[:VARIANT]` -> `ConfigDict`,
`--config.a.b=TEXT` -> a value of the field's type (used by `configs.cli`)."""

from __future__ import annotations

import ast
import importlib.util
import os

import ml_collections

from configs.validate import ConfigError

__all__ = ["apply_override", "load", "load_config", "load_module"]


def load_module(path: str):
    """Executes config file `path` and returns it as a module."""
    if not os.path.isfile(path):
        raise ConfigError(f"Config file not found: {path!r}.")
    module_spec = importlib.util.spec_from_file_location("_jaxcxai_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path} defines no get_config(variant).")
    return module


def load(spec: str):
    """(config, module) of `FILE.py[:VARIANT]`."""
    path, _, variant = spec.partition(":")
    if not os.path.isfile(path):
        raise ConfigError(f"Config file not found: {path!r} (from --config={spec}).")
    module = load_module(path)
    try:
        config = module.get_config(variant or None)
    except KeyError:
        valid = ", ".join(getattr(module, "VARIANTS", ())) or "see the file"
        raise ConfigError(
            f"Unknown variant {variant!r} in {path}; valid: {valid}"
        ) from None
    return config, module


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Loads `FILE.py[:VARIANT]` by calling its `get_config(VARIANT)`."""
    return load(spec)[0]


def _parse_value(text: str, current):
    if isinstance(current, bool):
        lowered = text.lower()
        if lowered in ("1", "true", "yes"):
            return True
        if lowered in ("0", "false", "no"):
            return False
        raise ConfigError(f"expected a boolean, got {text!r}")
    if isinstance(current, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if current is None:
            return text
        raise ConfigError(f"expected {type(current).__name__}, got {text!r}") from None
    if (
        isinstance(current, float)
        and isinstance(value, int)
        and not isinstance(value, bool)
    ):
        return float(value)
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    if current is not None and not isinstance(value, type(current)):
        raise ConfigError(f"expected {type(current).__name__}, got {text!r}")
    return value


def apply_override(config: ml_collections.ConfigDict, dotted: str, text: str) -> None:
    """Sets `config.<dotted>` from its command-line text, type-checked."""
    parts = dotted.split(".")
    node = config
    for i, name in enumerate(parts):
        if not isinstance(node, ml_collections.ConfigDict) or name not in node:
            where = ".".join(parts[:i]) or "<root>"
            valid = (
                sorted(node.keys())
                if isinstance(node, ml_collections.ConfigDict)
                else []
            )
            raise ConfigError(
                f"Unknown config field {dotted!r} in --config.{dotted}={text}; "
                f"fields under {where}: {', '.join(valid) or '(not a section)'}"
            )
        if i < len(parts) - 1:
            node = node[name]
    try:
        node[parts[-1]] = _parse_value(text, node[parts[-1]])
    except (ConfigError, TypeError) as e:
        raise ConfigError(f"Bad value for --config.{dotted}={text}: {e}") from None
