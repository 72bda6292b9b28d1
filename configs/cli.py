"""Script-boundary command line: `--config FILE:VARIANT --workdir DIR` plus
dotted overrides such as `--config.optim.lr=3e-4`.

Configs are ml_collections `ConfigDict`s returned by `get_config(variant)` in
`configs/*.py`. Overrides are type-checked against the existing field, and an
unknown field or a bad value is rejected with a message that names it and
lists the valid choices. The resolved config is written to the workdir.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
import json
import os
import sys
import typing

import ml_collections

__all__ = [
    "ConfigError",
    "apply_override",
    "load_config",
    "parse_args",
    "save_config",
    "to_spec",
]


class ConfigError(ValueError):
    """A bad `--config` argument or override."""


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Loads `FILE.py[:VARIANT]` by calling its `get_config(VARIANT)`."""
    path, _, variant = spec.partition(":")
    if not os.path.isfile(path):
        raise ConfigError(f"Config file not found: {path!r} (from --config={spec}).")
    module_spec = importlib.util.spec_from_file_location("_jaxcxai_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path} defines no get_config(variant).")
    try:
        config = module.get_config(variant or None)
    except KeyError as e:
        raise ConfigError(f"Unknown variant {variant!r} in {path}: {e}") from None
    return config


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


def parse_args(
    argv: list[str] | None = None, description: str = "", extra=None
) -> argparse.Namespace:
    """Parses `--config FILE:VARIANT --workdir DIR [--config.x.y=V ...]`.

    Args:
      argv: arguments (default `sys.argv[1:]`).
      description: help text of the script.
      extra: optional `parser -> None` that adds script-specific flags.

    Returns:
      A namespace with `config` (a resolved, locked `ConfigDict`), `workdir`
      and any extra flags.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    overrides, rest = [], []
    for arg in argv:
        if arg.startswith("--config."):
            key, sep, value = arg[len("--config.") :].partition("=")
            if not sep:
                raise ConfigError(
                    f"Override {arg!r} needs the form --config.a.b=VALUE."
                )
            overrides.append((key, value))
        else:
            rest.append(arg)
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, help="FILE.py[:VARIANT]")
    parser.add_argument("--workdir", required=True, help="output directory")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(rest)
    config = load_config(args.config)
    for key, value in overrides:
        apply_override(config, key, value)
    config.lock()
    args.config = config
    return args


def save_config(config: ml_collections.ConfigDict, workdir: str) -> str:
    """Writes the resolved config as `workdir/config.json` (atomically)."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(json.loads(config.to_json_best_effort()), f, indent=2)
    os.replace(tmp, path)
    return path


def to_spec(cls, config, where: str = "config"):
    """The library's frozen dataclass `cls` filled from a config section.

    Field names must match one to one: a config field the dataclass lacks, or
    a dataclass field the config lacks, is an error naming it (so configs and
    library settings cannot drift apart). Nested dataclass fields take nested
    sections; lists become tuples.

    Args:
      cls: a dataclass type (e.g. `jaxcxai.concepts.probes.study.ProbeStudy`).
      config: a `ConfigDict` (or mapping) section.
      where: the section's dotted name, for messages.
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    keys = list(config.keys())
    extra = sorted(set(keys) - set(names))
    missing = sorted(set(names) - set(keys))
    if extra or missing:
        raise ConfigError(
            f"{where} does not match {cls.__name__}: "
            + "; ".join(
                part
                for part in (
                    f"unknown fields {extra}" if extra else "",
                    f"missing fields {missing}" if missing else "",
                )
                if part
            )
        )
    values = {}
    for name in names:
        value, hint = config[name], hints[name]
        if dataclasses.is_dataclass(hint):
            value = to_spec(hint, value, f"{where}.{name}")
        elif isinstance(value, list | tuple):
            value = tuple(value)
        values[name] = value
    return cls(**values)
