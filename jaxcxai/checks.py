"""Checks of inputs and of resumed work: non-finite arrays and fingerprints.

Non-finite input: every method family checks its array inputs once at its
public entry with `check_finite` (one reduction per array where it lives, one
transfer of all counts) and raises `NonFiniteError` naming the argument and
the count of bad entries. Nothing is ever zeroed silently.

Fingerprints: what produced stored work, recorded and checked on resume. A
fingerprint record is JSON next to the stored result (a feature cache's
index, a LoCE store's `meta.json`, a study's `fingerprint.json`, a main-job
stage's `stage.json`): plain settings verbatim, arrays and weight pytrees as
SHA-256 digests of their bytes (`fingerprint`). Resuming work compares this
run's record with the stored one field by field; any difference raises
`FingerprintError`, which names every changed field (dotted, e.g.
`settings.net2vec.lr` or `backbone.weights`) and how to start afresh, so a
resumed result is never a mix of two runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.metric_writers import write_json_atomic

__all__ = [
    "FingerprintError",
    "NonFiniteError",
    "check_finite",
    "check_fingerprint",
    "fingerprint",
    "fingerprint_record",
    "resume_check",
]


class NonFiniteError(ValueError):
    """An input array holds NaN or inf: names the argument and the count.

    Example: ``"acts has 3 non-finite entries (NaN or inf) out of 4096"``.
    """

    def __init__(self, name: str, count: int, size: int, hint: str = ""):
        self.name, self.count, self.size, self.hint = name, count, size, hint
        super().__init__(
            f"{name} has {count} non-finite entries (NaN or inf) out of {size}"
            + (f"; {hint}" if hint else "")
        )

    def __reduce__(self):
        return type(self), (self.name, self.count, self.size, self.hint)


def _named_leaves(name: str, x: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(x, Mapping):
        for key, value in x.items():
            yield from _named_leaves(f"{name}[{key!r}]", value)
    elif isinstance(x, tuple) and hasattr(x, "_fields"):  # NamedTuple: w, b
        for key, value in zip(x._fields, x):
            yield from _named_leaves(f"{name}.{key}", value)
    elif x is not None:
        yield name, x


@jax.jit
def _probe(x):
    """0 where x is all finite, NaN otherwise (0 * inf and 0 * NaN are NaN):
    one fused pass, 4-8x faster on XLA:CPU than counting `~isfinite`."""
    return jnp.sum(x * jnp.zeros((), x.dtype))


def check_finite(
    arrays: Mapping[str, Any], *, hint: str = "", allow_neg_inf: Iterable[str] = ()
) -> None:
    """Raises `NonFiniteError` for the first argument holding NaN or inf.

    Each array is reduced where it lives (on device for a `jax.Array`, with
    NumPy for host arrays), and all results cross to the host in one
    transfer; device arrays are first probed in one fused pass, and counted
    only when the probe finds something. Integer and boolean arrays pass;
    inside a trace the values are unknown and the check is skipped (call it
    at the eager entry point).

    Args:
      arrays: {argument name: array, or a mapping / NamedTuple of arrays
        (named `name['key']` / `name.field`)}.
      hint: appended to the message (what to check).
      allow_neg_inf: argument names where -inf is meaningful (disabled
        thresholds); only NaN and +inf count there.
    """
    allow = set(allow_neg_inf)
    found = {}  # name -> (bad count, or a probe: NaN if any; size, array)
    for arg, value in arrays.items():
        for name, x in _named_leaves(arg, value):
            if isinstance(x, jax.core.Tracer):
                continue
            xp = jnp if isinstance(x, jax.Array) else np
            x = x if xp is jnp else np.asarray(x)
            if x.dtype == object:
                raise ValueError(f"{name} must be a numeric array, got dtype object")
            if not xp.issubdtype(x.dtype, xp.inexact):
                continue
            if xp is jnp and arg not in allow:
                count = _probe(x)
            else:
                bad = xp.isnan(x) | (x == xp.inf) if arg in allow else ~xp.isfinite(x)
                count = xp.sum(bad)
            # A concrete array closed over by a traced function: inside the
            # trace, ops on it are staged too, so its values are unknown here.
            if isinstance(count, jax.core.Tracer):
                continue
            found[name] = (count, x.size, x)
    counts = jax.device_get({k: v[0] for k, v in found.items()})
    for name, count in counts.items():
        if np.isnan(count):  # a probe that found NaN or inf: count them
            count = jnp.sum(~jnp.isfinite(found[name][2]))
        if count:
            raise NonFiniteError(name, int(count), int(found[name][1]), hint)


class FingerprintError(ValueError):
    """Stored work was produced by other inputs than this run's.

    Attributes:
      path: the record (or the directory holding it).
      changed: the dotted names of the fields that differ.

    Example: ``"feature cache w/features/train holds the work of another
    config or other inputs: backbone.weights changed (recorded
    sha256:1f0c2b4a9e01..., now sha256:9ab2e07c5d13...). To start afresh,
    delete w/features/train (or use another cache_dir)."``
    """

    def __init__(self, path: str, what: str, changed: list, fresh: str):
        self._args = (path, what, changed, fresh)
        self.path, self.changed = path, [name for name, _ in changed]
        super().__init__(
            f"{what} holds the work of another config or other inputs: "
            f"{'; '.join(text for _, text in changed)}. To start afresh, {fresh}."
        )

    def __reduce__(self):  # picklable across processes despite four arguments
        return type(self), self._args


_MAX_VERBATIM = 64  # longer lists are recorded as a digest
_SCALARS = (str, bool, int, float)


def fingerprint(obj: Any) -> str:
    """``"sha256:<hex>"`` of a canonical encoding of `obj`.

    Mappings (in sorted key order), sequences, dataclasses, strings, numbers,
    None and arrays (dtype, shape and bytes; JAX arrays are fetched) are
    encoded; a pytree of weights (`{'params': ..., 'batch_stats': ...}`)
    hashes all its bytes. Equal inputs give equal digests on every host.
    """
    h = hashlib.sha256()
    _feed(h, obj)
    return "sha256:" + h.hexdigest()


def _as_fields(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _feed(h, obj: Any) -> None:
    obj = _as_fields(obj)
    if isinstance(obj, Mapping):
        h.update(b"{%d" % len(obj))
        for key in sorted(obj, key=str):
            _feed(h, str(key))
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(b"[%d" % len(obj))
        for item in obj:
            _feed(h, item)
    elif obj is None or isinstance(obj, _SCALARS):
        h.update(json.dumps(obj).encode() + b";")
    elif isinstance(obj, (np.ndarray, jax.Array)):
        a = np.ascontiguousarray(jax.device_get(obj))
        h.update(f"<{a.dtype.str}{a.shape}".encode())
        h.update(a.reshape(-1).view(np.uint8).data if a.size else b"")
    else:
        raise TypeError(f"cannot fingerprint a {type(obj).__name__}")


def fingerprint_record(fields: Mapping[str, Any]) -> dict:
    """The JSON record of `fields`: settings verbatim, arrays as digests.

    Nested mappings and dataclasses become nested dicts (so a difference is
    named down to the field), strings, numbers, booleans and None stay as
    they are (so the message shows the values), short lists of those too;
    arrays and long lists become `fingerprint` digests. Pass a weight pytree
    as `fingerprint(variables)` (one digest) rather than as a mapping (one
    digest per parameter).
    """

    def norm(x):
        x = _as_fields(x)
        if isinstance(x, Mapping):
            return {str(k): norm(v) for k, v in x.items()}
        if isinstance(x, float) and not math.isfinite(x):
            return str(x)
        if x is None or isinstance(x, _SCALARS):
            return x
        plain = isinstance(x, (list, tuple)) and len(x) <= _MAX_VERBATIM
        if plain and all(v is None or isinstance(_as_fields(v), _SCALARS) for v in x):
            return [norm(v) for v in x]
        return fingerprint(x)

    return json.loads(json.dumps(norm(dict(fields))))


def _short(value: Any) -> str:
    if isinstance(value, str) and value.startswith("sha256:"):
        return value[:19] + "..."
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _diff(recorded: Any, current: Any, prefix: str) -> list[tuple[str, str]]:
    if isinstance(recorded, dict) and isinstance(current, dict):
        out = []
        for key in list(recorded) + [k for k in current if k not in recorded]:
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in current:
                out.append((name, f"{name} removed (recorded {_short(recorded[key])})"))
            elif key not in recorded:
                out.append((name, f"{name} added (now {_short(current[key])})"))
            else:
                out.extend(_diff(recorded[key], current[key], name))
        return out
    if recorded == current:
        return []
    name = prefix or "fingerprint"
    text = f"recorded {_short(recorded)}, now {_short(current)}"
    return [(name, f"{name} changed ({text})")]


def check_fingerprint(
    recorded: Any, current: Mapping, *, path: str, what: str, fresh: str
) -> None:
    """Raises `FingerprintError` if `recorded` differs from `current`'s record.

    Args:
      recorded: the record stored with the work; None means the work was
        stored without one (before fingerprints) and cannot be checked.
      current: this run's fields (`fingerprint_record` is applied).
      path: the stored work or its record (the error's `path`).
      what: the work, for the message (e.g. "feature cache DIR").
      fresh: how to start afresh (e.g. "delete DIR").
    """
    if recorded is None:
        changed = [("fingerprint", "it carries no fingerprint (written by an "
                    "older jaxcxai), so its inputs cannot be checked")]  # fmt: skip
    else:
        changed = _diff(recorded, fingerprint_record(current), "")
    if changed:
        raise FingerprintError(path, what, changed, fresh)


def resume_check(
    path: str,
    fields: Mapping,
    *,
    what: str,
    fresh: str,
    guard: Iterable[str] = (),
    read_only: bool = False,
) -> dict:
    """Records `fields` at `path` (JSON, atomically), or checks the record there.

    Call it before writing anything else, so every later file of the work is
    covered by the record.

    Args:
      path: the record file (e.g. `workdir/fingerprint.json`).
      fields: this run's fields (`fingerprint_record` is applied).
      what, fresh: for the message (see `check_fingerprint`).
      guard: files of the work; if one exists while the record does not, the
        work predates fingerprints and is refused (it cannot be checked).
      read_only: only check (before reading the work): no record is refused.

    Returns:
      The record.

    Raises:
      FingerprintError: `path` holds another record, or unrecorded work.
    """
    record = fingerprint_record(fields)
    if os.path.exists(path):
        with open(path) as f:
            recorded = json.load(f)
        check_fingerprint(recorded, fields, path=path, what=what, fresh=fresh)
        return record
    if read_only or any(os.path.exists(g) for g in guard):
        check_fingerprint(None, fields, path=path, what=what, fresh=fresh)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json_atomic(path, record)
    return record
