"""Config sections -> the library's frozen dataclasses, at the script
boundary (used through `configs.cli`, which re-exports both functions).

The library takes explicit, typed settings and never reads a config; a
script turns its config section into the library's dataclass once, here,
and every mismatch or rejected value is a `ConfigError` (exit status 2)
raised before anything is written.
"""

from __future__ import annotations

import dataclasses
import typing

from configs.validate import ConfigError

__all__ = ["checked_spec", "to_spec"]


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


def checked_spec(cls, config, check):
    """`to_spec(cls, config)` checked by the library's `check(spec)`: a
    ValueError it raises becomes a `ConfigError`, before anything is written.
    """
    spec = to_spec(cls, config)
    try:
        check(spec)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return spec
