"""Integrated Gradients (Sundararajan, Taly & Yan 2017, "Axiomatic Attribution
for Deep Networks"), chunked over the integration steps.

    phi_i(x) = (x_i - x'_i) * int_0^1 dS_t(x' + a (x - x')) / dx_i da
             ~ (x_i - x'_i) * sum_k w_k dS_t(x' + a_k (x - x')) / dx_i

with the quadrature nodes a_k and weights w_k of `quadrature`. Completeness:
sum_i phi_i = S_t(x) - S_t(x') up to the quadrature error, returned as the
`delta` (Captum's convergence delta, same sign) when asked.

Memory: the steps are summed in chunks of `chunk_size` steps, one jitted
chunk program called in a host loop (`core.host_chunked_sum`), so memory
holds N x chunk_size gradients, never N x steps; with a mesh N is also split
over devices. Programs: one per chunk shape and one finishing step (the
multiplication by x - x' and the delta). Captum's answer to its
out-of-memory reports (captum#245, #538) is `internal_batch_size`; here the
chunk does the same inside one compiled program.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxcxai.attribution.core import (
    check_chunk,
    check_finite,
    host_chunked_sum,
    map_samples,
    prepare,
    scalar_output,
)

__all__ = [
    "METHODS",
    "quadrature",
    "resolve_baseline",
    "integrated_gradients",
    "path_gradient_sum",
]

METHODS = (
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "gausslegendre",
)


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes a_k in [0, 1] and weights w_k (summing to 1) of a rule.

    Riemann rules split [0, 1] into `steps` cells of width 1/steps and take
    the left end, right end or midpoint; the trapezoid rule puts `steps`
    nodes on 0..1 inclusive (half weight at both ends); Gauss-Legendre is
    exact for polynomials of degree < 2 steps (Captum's default).

    Returns:
      (steps,) float64 nodes and (steps,) float64 weights.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if int(steps) != steps or steps < (2 if method == "riemann_trapezoid" else 1):
        raise ValueError(
            f"steps must be a positive integer (>= 2 for trapezoid), got {steps}"
        )
    n = int(steps)
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return (nodes + 1.0) / 2.0, weights / 2.0
    if method == "riemann_trapezoid":
        w = np.full(n, 1.0 / (n - 1))
        w[[0, -1]] /= 2.0
        return np.linspace(0.0, 1.0, n), w
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    return (np.arange(n) + offset) / n, np.full(n, 1.0 / n)


def resolve_baseline(baseline: Any, x: jax.Array) -> jax.Array:
    """The reference input x' for every sample, shape (N, ...).

    Args:
      baseline: "zero"; "mean" (the mean of the N explained samples, a
        data-mean reference; pass a training mean as an array instead); a
        scalar; an array of shape x.shape[1:] (shared) or x.shape (per
        sample).
      x: (N, ...) inputs.

    Raises:
      ValueError: naming `baseline` (unknown string, wrong shape, non-finite).
    """
    if isinstance(baseline, str):
        if baseline == "zero":
            return jnp.zeros_like(x)
        if baseline == "mean":
            return jnp.broadcast_to(jnp.mean(x, axis=0, keepdims=True), x.shape)
        raise ValueError(
            f"baseline must be 'zero', 'mean' or an array, got {baseline!r}"
        )
    b = jnp.asarray(baseline, x.dtype)
    if b.shape not in ((), x.shape[1:], x.shape):
        raise ValueError(
            f"baseline must be a scalar or of shape {x.shape[1:]} or {x.shape}, "
            f"got {b.shape}"
        )
    check_finite("baseline", b)
    return jnp.broadcast_to(b, x.shape)


def path_gradient_sum(
    f: Callable, target_fn: Callable | None
) -> Callable[[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]:
    """`p(x_single, b_single, t, nodes, weights) = sum_k w_k grad S_t(b + a_k (x - b))`.

    One chunk of the path integral for one sample (vmapped over the chunk's
    nodes). Shared with SmoothIG.
    """
    grad = jax.grad(scalar_output(f, target_fn))

    def one(xs, bs, t, nodes, weights):
        diff = xs - bs
        gs = jax.vmap(lambda a: grad(bs + a.astype(xs.dtype) * diff, t))(nodes)
        return jnp.tensordot(weights.astype(gs.dtype), gs, axes=1)

    return one


@partial(jax.jit, static_argnums=(0, 1, 2))
def _chunk(f, target_fn, mesh, x, b, t, nodes, weights):
    # One flat batch of N x c path points (sample-major, so a mesh splits it
    # by samples): a single vmap level ran ~20% faster on XLA:CPU than a vmap
    # over steps nested in a vmap over samples.
    n, c = x.shape[0], nodes.shape[0]
    a = nodes.astype(x.dtype).reshape((1, c) + (1,) * (x.ndim - 1))
    points = (b[:, None] + a * (x - b)[:, None]).reshape((n * c,) + x.shape[1:])
    grad = jax.grad(scalar_output(f, target_fn))
    gs = map_samples(grad, points, jnp.repeat(t, c), mesh=mesh)
    gs = gs.reshape((n, c) + x.shape[1:])
    return jnp.tensordot(gs, weights.astype(gs.dtype), axes=[[1], [0]])


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _finish(f, target_fn, mesh, with_delta, x, b, t, path):
    scalar = scalar_output(f, target_fn)

    def one(xs, bs, ts, ps):
        phi = (xs - bs) * ps
        if not with_delta:  # no forward passes for a gap nobody reads
            return phi, jnp.zeros((), phi.dtype)
        return phi, jnp.sum(phi) - (scalar(xs, ts) - scalar(bs, ts))

    return map_samples(one, x, b, t, path, mesh=mesh)


def integrated_gradients(
    f: Callable,
    x: Any,
    target: Any = None,
    *,
    baseline: Any = "zero",
    steps: int = 50,
    method: str = "gausslegendre",
    chunk_size: int | None = 16,
    return_delta: bool = False,
    target_fn: Callable | None = None,
    mesh: Mesh | None = None,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Integrated Gradients of each sample's target scalar.

    Args:
      f: model function, `f(x) -> logits (N, C)` or `(logits, acts)`.
      x: (N, ...) inputs.
      target: None (predicted class), an int, or (N,) ints.
      baseline: see `resolve_baseline` (default "zero").
      steps: number of quadrature nodes (the reference uses 50).
      method: one of `METHODS`; "gausslegendre" is Captum's default. The
        left, right and middle rules match Captum's node for node; Captum's
        trapezoid uses weights 1/steps (halved at the ends), which sum to
        (steps - 1)/steps, so its attributions are that fraction of ours.
      chunk_size: steps evaluated together; peak memory is N x chunk_size
        gradients (None: all steps at once).
      return_delta: also return the completeness gap per sample.
      target_fn: optional `target_fn(outputs) -> (N,)` custom scalar.
      mesh: optional mesh; samples are split over its `data` axis.

    Returns:
      (N, ...) attributions, and with `return_delta` the (N,) gaps
      sum(phi) - (S_t(x) - S_t(x')).

    Raises:
      ValueError: naming `x`, `target`, `baseline`, `steps`, `method` or
        `chunk_size`.
    """
    x, t = prepare(f, x, target, target_fn)
    b = resolve_baseline(baseline, x)
    chunk = check_chunk("chunk_size", chunk_size)
    nodes, weights = quadrature(method, steps)
    # The chunks are looped on the host (`core.host_chunked_sum`): memory is
    # one chunk, and XLA:CPU runs a chunk of convolutions far faster outside
    # a `scan`.
    path = host_chunked_sum(
        lambda a, w: _chunk(f, target_fn, mesh, x, b, t, a, w),
        nodes.astype(np.float32),
        chunk,
        weights,
    )
    phi, delta = _finish(f, target_fn, mesh, return_delta, x, b, t, path)
    return (phi, delta) if return_delta else phi
