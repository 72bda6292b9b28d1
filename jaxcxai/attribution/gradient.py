"""Plain input-gradient attributions: gradient, saliency, gradient x input.

- Saliency (Simonyan, Vedaldi & Zisserman 2014, "Deep Inside Convolutional
  Networks"): |d S_t / d x|, element-wise (Captum's `Saliency(abs=True)`;
  reduce the channels afterwards with `reduce_channels`, e.g. "abs_max" for
  the paper's maximum over colour channels).
- Gradient x input (Shrikumar et al. 2016, "Not Just a Black Box"):
  x * d S_t / d x.

S_t is the logit of the target class (see `core.scalar_output`) or a custom
scalar. Every sample is differentiated on its own (a vmapped per-sample
gradient of `f(x[None])`), so results do not depend on the batch, and each
method is one jitted program per model function `f` (pass the same `f` object
to reuse it).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jaxcxai.attribution.core import map_samples, prepare, scalar_output

__all__ = ["gradients", "saliency", "gradient_x_input", "reduce_channels"]

_MODES = ("raw", "abs", "x_input")


def per_sample_attribution(
    f: Callable, target_fn: Callable | None, mode: str
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """`a(x_single, t)` for one of the gradient modes ("raw", "abs", "x_input").

    Shared with SmoothGrad, which averages it over noisy copies.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    grad = jax.grad(scalar_output(f, target_fn))

    def one(xs: jax.Array, t: jax.Array) -> jax.Array:
        g = grad(xs, t)
        if mode == "abs":
            return jnp.abs(g)
        if mode == "x_input":
            return g * xs
        return g

    return one


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _run(f, target_fn, mode, mesh, x, t):
    return map_samples(per_sample_attribution(f, target_fn, mode), x, t, mesh=mesh)


def gradients(
    f: Callable,
    x: Any,
    target: Any = None,
    *,
    target_fn: Callable | None = None,
    mesh: Mesh | None = None,
) -> jax.Array:
    """The raw gradient d S_t / d x of each sample's target scalar.

    Args:
      f: model function, `f(x) -> logits (N, C)` or `(logits, acts)`.
      x: (N, ...) inputs.
      target: None (predicted class), an int, or (N,) ints.
      target_fn: optional `target_fn(outputs) -> (N,)` custom scalar.
      mesh: optional mesh; samples are split over its `data` axis.

    Returns:
      (N, ...) gradients, the shape of `x`.

    Raises:
      ValueError: naming `x` (non-finite, not floating) or `target`.
    """
    x, t = prepare(f, x, target, target_fn)
    return _run(f, target_fn, "raw", mesh, x, t)


def saliency(
    f: Callable,
    x: Any,
    target: Any = None,
    *,
    abs: bool = True,
    target_fn: Callable | None = None,
    mesh: Mesh | None = None,
) -> jax.Array:
    """Saliency map |d S_t / d x| (Simonyan et al. 2014).

    Args:
      f, x, target, target_fn, mesh: as in `gradients`.
      abs: take the absolute value (the paper's and Captum's default); False
        returns the signed gradient.

    Returns:
      (N, ...) attributions, the shape of `x`.
    """
    x, t = prepare(f, x, target, target_fn)
    return _run(f, target_fn, "abs" if abs else "raw", mesh, x, t)


def gradient_x_input(
    f: Callable,
    x: Any,
    target: Any = None,
    *,
    target_fn: Callable | None = None,
    mesh: Mesh | None = None,
) -> jax.Array:
    """Gradient x input, x * d S_t / d x (Shrikumar et al. 2016).

    Args and returns as in `gradients`.
    """
    x, t = prepare(f, x, target, target_fn)
    return _run(f, target_fn, "x_input", mesh, x, t)


def reduce_channels(attributions: Any, how: str = "mean", axis: int = -1) -> jax.Array:
    """Collapses the channel axis of image attributions to one map.

    Args:
      attributions: (N, H, W, C) (channels last by default).
      how: "mean" (signed channel mean, the uncertainty-gating reference's
        grayscale map), "sum", "abs_sum", or "abs_max" (Simonyan et al.'s
        maximum of |grad| over channels).
      axis: the channel axis.

    Returns:
      The attributions without `axis`, e.g. (N, H, W).
    """
    a = jnp.asarray(attributions)
    reducers = {
        "mean": lambda v: jnp.mean(v, axis=axis),
        "sum": lambda v: jnp.sum(v, axis=axis),
        "abs_sum": lambda v: jnp.sum(jnp.abs(v), axis=axis),
        "abs_max": lambda v: jnp.max(jnp.abs(v), axis=axis),
    }
    if how not in reducers:
        raise ValueError(f"how must be one of {sorted(reducers)}, got {how!r}")
    return reducers[how](a)
