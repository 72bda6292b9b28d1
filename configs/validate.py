"""Config checks at the script boundary: declared ranges, batch sizes, devices,
and the workdir, all before anything is written.

Each config file declares its rules beside its fields (explicit lists, no
naming convention; `undeclared` lists numeric fields that have none):

  CONSTRAINTS = {"> 0": ("train.steps", ...), ">= 0": (...), "(0, 1]": (...)}
      Every named field (each entry, for a tuple) lies in the range. Keys are
      "> x", ">= x" or an interval "(lo, hi]" ("[" / "]" closed, "(" / ")"
      open). A name ending in ".*" covers every field of that section.
  BATCH_LIMITS = ((batch, size), (batch, size, when), ...)
      batch <= size, where size is a field or a product "a * b" of fields,
      rounded down (`int(train_frac * num_images)` training rows as the
      split does); `when` = {field: (allowed values)} limits the rule to the
      configs where the size is known (e.g. a synthetic data source).
  DEVICE_BATCHES = {field: "mesh" | "all" | ("all", when)}
      Global batch sizes that must divide by the number of data-parallel
      devices (the README's rule, same message everywhere): "mesh" the
      devices the config's `mesh` section selects (`num_devices`, 0 = all,
      divided by `num_model`), "all" every device (activation extraction).
  SECTIONS = {"probes": probes_module, "backbones.*": classifier_module}
      Sub-configs checked with another config file's rules (the main job).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re

import ml_collections

__all__ = [
    "ConfigError",
    "WorkdirError",
    "check_config",
    "check_workdir",
    "config_diff",
    "flatten",
    "undeclared",
]


class ConfigError(ValueError):
    """A bad `--config` argument, override or config value (exit status 2)."""


class WorkdirError(ConfigError):
    """A `--workdir` that is a file, cannot be written, or holds another run."""


def flatten(config, prefix: str = "") -> dict:
    """{dotted name: leaf value} of a `ConfigDict` (or nested dicts)."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, ml_collections.ConfigDict | dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


_NUM = r"\s*([-+]?[\d.]+(?:e[-+]?\d+)?)\s*"
_BOUND = re.compile(rf"^(>=|>){_NUM}$")
_INTERVAL = re.compile(rf"^([\[(]){_NUM},{_NUM}([\])])$")


def _in_range(x, rule: str) -> bool:
    m = _BOUND.match(rule)
    if m:
        return x >= float(m[2]) if m[1] == ">=" else x > float(m[2])
    m = _INTERVAL.match(rule)
    if not m:
        raise ValueError(f"unknown constraint {rule!r}")
    lo, hi = float(m[2]), float(m[3])
    above = x >= lo if m[1] == "[" else x > lo
    below = x <= hi if m[4] == "]" else x < hi
    return above and below


def _is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern) if "*" in pattern else name == pattern


def _applies(fields: dict, when: dict) -> bool:
    return all(fields.get(k) in tuple(v) for k, v in when.items())


def _size(fields: dict, expr: str) -> tuple[int, str]:
    names = [part.strip() for part in expr.split("*")]
    value = 1.0
    for name in names:
        value *= fields[name]
    shown = " * ".join(f"{fields[n]}" for n in names)
    return int(value), (f"{expr} = {shown}" if len(names) > 1 else expr)


def _devices(config, kind: str, where: str) -> tuple[int, list[str]]:
    """(data-parallel devices, problems) of `kind` ("mesh" or "all")."""
    import jax

    total = jax.device_count()
    mesh = config.get("mesh", None) if kind == "mesh" else None
    if mesh is None:
        return total, []
    used, model = mesh.get("num_devices", 0) or total, mesh.get("num_model", 1)
    if used < 1 or model < 1:
        return 0, []  # the declared ranges report these
    if used > total:
        return 0, [f"{where}mesh.num_devices={used} but only {total} devices exist"]
    if used % model:
        return 0, [f"{where}mesh.num_model={model} must divide the {used} devices"]
    return used // model, []


def problems(config, module, where: str = "") -> list[str]:
    """Every violation of `module`'s declared rules in `config` (a section of
    a larger config when `where` is its dotted prefix with a final dot)."""
    fields = flatten(config)
    out = []
    for rule, names in getattr(module, "CONSTRAINTS", {}).items():
        for pattern in names:
            for name in [n for n in fields if _matches(n, pattern)]:
                value = fields[name]
                items = value if isinstance(value, tuple | list) else (value,)
                if not all(_is_number(x) and _in_range(x, rule) for x in items):
                    shown = rule if rule[0] in "<>" else f"in {rule}"
                    out.append(f"{where}{name}={value!r} must be {shown}")
    for batch, expr, *when in getattr(module, "BATCH_LIMITS", ()):
        if when and not _applies(fields, when[0]):
            continue
        size, shown = _size(fields, expr)
        if size > 0 and _is_number(fields.get(batch)) and fields[batch] > size:
            out.append(
                f"{where}{batch}={fields[batch]} exceeds the dataset size {size} "
                f"({where}{shown})"
            )
    for batch, kind in getattr(module, "DEVICE_BATCHES", {}).items():
        kind, when = (kind, {}) if isinstance(kind, str) else kind
        value = fields.get(batch)
        if not _applies(fields, when) or not _is_number(value) or value <= 0:
            continue
        n, bad = _devices(config, kind, where)
        out += bad
        if n and value % n:
            out.append(
                f"global batch size {value} ({where}{batch}) does not divide by "
                f"the number of devices {n}; use a multiple of {n}"
            )
    for path, sub in getattr(module, "SECTIONS", {}).items():
        parent, _, last = path.rpartition(".")
        node = config
        for part in parent.split(".") if parent else ():
            node = node.get(part, None) if node is not None else None
        if node is None:
            continue
        keys = list(node.keys()) if last == "*" else [last] if last in node else []
        for key in keys:
            prefix = f"{where}{parent + '.' if parent else ''}{key}."
            out += problems(node[key], sub, prefix)
    return list(dict.fromkeys(out))  # a mesh problem once, not per batch


def check_config(config, module) -> None:
    """Raises `ConfigError` listing every rule of `module` that `config` breaks."""
    bad = problems(config, module)
    if bad:
        raise ConfigError("bad config: " + "; ".join(bad))


def undeclared(config, module) -> list[str]:
    """Numeric fields that no rule of `module` (or its SECTIONS) covers."""
    fields = flatten(config)
    covered = [
        p for names in getattr(module, "CONSTRAINTS", {}).values() for p in names
    ]
    out = []
    sections = getattr(module, "SECTIONS", {})
    for name, value in fields.items():
        items = value if isinstance(value, tuple | list) else (value,)
        if not items or not all(_is_number(x) for x in items):
            continue
        if any(_matches(name, p) for p in covered):
            continue
        if any(_matches(name, p + ".*") for p in sections):
            continue
        out.append(name)
    for path, sub in sections.items():
        parent, _, last = path.rpartition(".")
        node = config
        for part in parent.split(".") if parent else ():
            node = node[part]
        keys = list(node.keys()) if last == "*" else [last]
        for key in keys:
            prefix = f"{parent + '.' if parent else ''}{key}."
            out += [prefix + n for n in undeclared(node[key], sub)]
    return out


def config_diff(old, new) -> list[str]:
    """["a.b: old -> new", ...] between two resolved configs (dicts)."""
    a, b = flatten(old), flatten(new)
    out = []
    for name in sorted(set(a) | set(b)):
        if a.get(name, "<absent>") != b.get(name, "<absent>"):
            out.append(
                f"{name}: {a.get(name, '<absent>')} -> {b.get(name, '<absent>')}"
            )
    return out


def check_workdir(config, workdir: str, existing: bool | str = False) -> None:
    """Refuses an unusable `--workdir` before anything is written to it.

    Args:
      config: the resolved config about to run.
      workdir: the directory.
      existing: the script reads a finished run (evaluation): the directory
        must exist (a string names the script that writes it); otherwise it
        is created later if missing.

    Raises:
      WorkdirError: the path is a file, cannot be created or written, does not
        exist (`existing`), or its `config.json` records a different config
        (naming the differing fields, old -> new).
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise WorkdirError(f"--workdir {workdir} is a file, not a directory")
    if not os.path.isdir(workdir):
        if existing:
            script = existing if isinstance(existing, str) else "the training script"
            raise WorkdirError(
                f"--workdir {workdir} does not exist; run {script} into it first"
            )
        parent = os.path.dirname(os.path.abspath(workdir))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise WorkdirError(f"cannot create --workdir {workdir}: {parent} is a file")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise WorkdirError(
                f"cannot create --workdir {workdir}: {parent} is read-only"
            )
        return
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise WorkdirError(f"--workdir {workdir} is not writable")
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError) as e:
        raise WorkdirError(f"{path} is unreadable ({e}); delete it or the workdir")
    diff = config_diff(old, json.loads(config.to_json_best_effort()))
    # Shallow fields first: `variant: tiny -> default` says more than the
    # nested fields that follow from it.
    diff.sort(key=lambda d: (d.partition(":")[0].count("."), d))
    if diff:
        more = f"; and {len(diff) - 6} more" if len(diff) > 6 else ""
        raise WorkdirError(
            f"--workdir {workdir} holds a run of another config ("
            + "; ".join(diff[:6])
            + more
            + "); use a new --workdir, or delete this one to start afresh"
        )
