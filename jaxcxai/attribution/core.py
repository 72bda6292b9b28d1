"""The shared contract of every explainer: input checks, targets, scalars, chunks.

An explainer takes a pure model function `f(x) -> logits` (or the backbone
contract `f(x) -> (logits, {layer: activation})`), inputs `x` of shape
(N, ...), a `target` and, where it samples, a PRNG key, and returns
attributions of the input's (or a layer's) shape. The helpers here fix how
those arguments are read, so that every method rejects bad input the same
way and builds the same per-sample scalar:

- `check_finite`, `check_key`: eager argument checks (a `ValueError` naming
  the argument; never silent zeroing).
- `logits_of`, `resolve_target`, `scalar_output`: which number is explained.
- `chunked_map`, `chunked_sum`, `host_chunked_sum`, `map_samples` (from
  `batching`): memory bounded by a chunk of perturbations, not by their
  total count; the sample axis vmapped and optionally sharded.
- `tiled_pool_grads` (from `batching`): the model with a scatter-free
  max-pool VJP, used by `scalar_output` (the gradient methods).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import checks

# The batching helpers are part of the contract; they live in `batching`.
from jaxcxai.attribution.batching import chunked_map as chunked_map
from jaxcxai.attribution.batching import chunked_sum as chunked_sum
from jaxcxai.attribution.batching import host_chunked_sum as host_chunked_sum
from jaxcxai.attribution.batching import map_samples as map_samples
from jaxcxai.attribution.batching import tiled_pool_grads as tiled_pool_grads

__all__ = [
    "check_finite",
    "check_key",
    "check_chunk",
    "logits_of",
    "resolve_target",
    "scalar_output",
    "tiled_pool_grads",
    "chunked_map",
    "chunked_sum",
    "host_chunked_sum",
    "map_samples",
    "prepare",
]


def check_finite(name: str, x: Any) -> None:
    """Raises if `x` holds NaN or inf, naming `name` and the count.

    The attribution family's spelling of `jaxcxai.checks.check_finite` (one
    array, name first): the count is reduced where the array lives, integer
    and boolean arrays pass, and inside a trace the check is a no-op (call
    it at the eager entry point).

    Raises:
      checks.NonFiniteError: "`name` has K non-finite entries (NaN or inf)
        out of M" (a ValueError).
    """
    checks.check_finite({name: x})


def check_key(name: str, key: Any) -> None:
    """Raises unless `key` is one PRNG key (typed `jax.random.key` or raw)."""
    if isinstance(key, jax.core.Tracer):
        return
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"{name} must be a single PRNG key, got shape {key.shape}")
        return
    arr = np.asarray(key)
    if arr.shape != (2,) or arr.dtype != np.uint32:
        raise ValueError(
            f"{name} must be a PRNG key from jax.random.key (or a raw uint32 "
            f"(2,) key), got {type(key).__name__} of shape {arr.shape}"
        )


def check_chunk(name: str, value: Any) -> int | None:
    """A positive int or None (no chunking), else a ValueError naming `name`."""
    if value is not None and (int(value) != value or value < 1):
        raise ValueError(f"{name} must be a positive integer or None, got {value}")
    return None if value is None else int(value)


def logits_of(outputs: Any) -> jax.Array:
    """The logits of a model output: `outputs[0]` for `(logits, acts)`."""
    if isinstance(outputs, (tuple, list)) and len(outputs) == 2:
        return outputs[0]
    return outputs


@partial(jax.jit, static_argnums=0)
def _predicted(f: Callable, x: jax.Array) -> jax.Array:
    return jnp.argmax(logits_of(f(x)), axis=-1).astype(jnp.int32)


def resolve_target(f: Callable, x: Any, target: Any) -> jax.Array:
    """The class explained for each sample, as an (N,) int32 array.

    Args:
      f: model function, `f(x) -> logits (N, C)` or `(logits, acts)`.
      x: inputs (N, ...).
      target: None (the predicted class, argmax of the logits, one jitted
        forward pass per distinct `f`), an int (the same class for every
        sample), or an (N,) integer array (one class per sample).

    Returns:
      (N,) int32 class indices in [0, C).

    Raises:
      ValueError: naming `target` for a wrong shape, a non-integer dtype or
        values outside [0, C) (with the offending values).
    """
    n = x.shape[0]
    if target is None:
        return _predicted(f, x)
    out = jax.eval_shape(f, jax.ShapeDtypeStruct(x.shape, x.dtype))
    logits = logits_of(out)
    if len(logits.shape) != 2 or logits.shape[0] != n:
        raise ValueError(
            f"f must return logits of shape (N, C) = ({n}, C) for a class target, "
            f"got {logits.shape}"
        )
    num_classes = logits.shape[1]
    t = np.asarray(target)
    if not np.issubdtype(t.dtype, np.integer) or t.dtype == np.bool_:
        raise ValueError(f"target must be integer class indices, got dtype {t.dtype}")
    if t.ndim == 0:
        t = np.full((n,), int(t))
    if t.shape != (n,):
        raise ValueError(f"target must be an int or of shape ({n},), got {t.shape}")
    bad = (t < 0) | (t >= num_classes)
    if bad.any():
        raise ValueError(
            f"target has {int(bad.sum())} values outside [0, {num_classes}): "
            f"{np.unique(t[bad])[:10].tolist()}"
        )
    return jnp.asarray(t, jnp.int32)


def prepare(
    f: Callable, x: Any, target: Any, target_fn: Callable | None = None
) -> tuple[jax.Array, jax.Array]:
    """Checks `x` and resolves `target`: the eager front of every explainer.

    Args:
      f: model function on a batch.
      x: (N, ...) floating-point inputs, N >= 1.
      target: see `resolve_target`; ignored (zeros) when `target_fn` is given.
      target_fn: optional custom scalar, see `scalar_output`.

    Returns:
      `(x, t)`: `x` as a JAX array and (N,) int32 targets.

    Raises:
      ValueError: naming `x` (not floating point, no sample axis, non-finite
        entries) or `target` (see `resolve_target`).
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be floating point, got dtype {x.dtype}")
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"x must have a non-empty leading sample axis, got {x.shape}")
    check_finite("x", x)
    if target_fn is not None:
        return x, jnp.zeros((x.shape[0],), jnp.int32)
    return x, resolve_target(f, x, target)


def scalar_output(
    f: Callable, target_fn: Callable | None = None, *, tiled_pool_vjp: bool = True
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Builds `g(x_single, t) -> scalar`, the number explained for one sample.

    Args:
      f: model function on a batch.
      target_fn: optional `target_fn(outputs) -> (N,)` giving a custom scalar
        per sample from `f`'s raw outputs (e.g. a detection score); `t` is
        then ignored.
      tiled_pool_vjp: differentiate `f`'s tiling max pools with
        `tiled_pool_grads` (the same values and gradients, faster on CPU).

    Returns:
      `g(x_single, t)`: logit `t` of `f(x_single[None])`, or
      `target_fn(f(x_single[None]))[0]`.
    """
    model = tiled_pool_grads(f) if tiled_pool_vjp else f

    def g(x_single: jax.Array, t: jax.Array) -> jax.Array:
        outputs = model(x_single[None])
        if target_fn is not None:
            return jnp.reshape(target_fn(outputs), (-1,))[0]
        return logits_of(outputs)[0, t]

    return g
