"""KernelSHAP (Lundberg & Lee 2017, "A Unified Approach to Interpreting Model
Predictions", NeurIPS), batched over samples and chunked over coalitions.

For one sample x with d features and a background set B (rows b_1..b_m), the
value of a coalition z in {0,1}^d is the expected model output with the
features in z taken from x and the others from a background row,

    v(z) = (1/m) sum_j f(z * x + (1 - z) * b_j)            (as shap does),

so v(0) = E f(B) and v(1) = f(x). phi solves the weighted least squares

    min_phi sum_z pi(z) (v(z) - v(0) - z . phi)^2
    s.t.    sum_i phi_i = f(x) - E f(B)                    (efficiency)

with the Shapley kernel pi (`coalitions`). The constraint is eliminated
exactly (Lagrange: phi = u - v (1.u - total) / (1.v) with A u = b, A v = 1),
so efficiency holds to rounding. With a budget of at least 2^d - 2
coalitions every coalition is enumerated and phi is the exact Shapley value
of v; otherwise sizes are enumerated or sampled in pairs as in shap
(`coalition_plan`).

Models: a jax-traceable `f(x) -> (N, C)` (or `(logits, acts)`) runs inside
one jitted program, vmapped over samples and scanned over chunks of
coalitions (memory: N x chunk_size x m rows per step), optionally sharded
over a mesh's `data` axis. A host function (`host=True`, e.g. scikit-learn's
`predict_proba`) gets the same coalitions, with all coalition x background
rows of a chunk of samples in one call of at most `rows_per_call` rows.

Differences from shap's KernelExplainer: no L1 feature selection (shap's
current default `l1_reg="num_features(10)"` keeps only 10 features when
d > 10; ours is the unregularised estimator of the paper, shap's
`l1_reg=False`), features equal to every background row are not dropped
before the fit (their exact Shapley value is 0 and the fit returns ~0), and
duplicate random coalitions use up budget (see `coalitions`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxcxai.attribution.coalitions import coalition_plan, sample_coalitions
from jaxcxai.attribution.core import check_finite, map_samples
from jaxcxai.attribution.perturb import (
    check_features,
    host_outputs,
    model_outputs,
    pad_samples,
    sample_keys,
    target_classes,
)
from jaxcxai.parallel import DATA_AXIS

__all__ = ["kernel_shap", "constrained_wls"]

_ROWS_PER_STEP = 2**16  # model rows per scan step when chunk_size is None


def constrained_wls(
    masks: jax.Array, weights: jax.Array, y: jax.Array, total: jax.Array
) -> jax.Array:
    """KernelSHAP's fit for one sample: WLS with sum(phi) = total, exactly.

    Args:
      masks: (M, d) bool coalitions; weights: (M,) kernel weights.
      y: (M, C) coalition values minus v(0); total: (C,) f(x) - v(0).

    Returns:
      phi: (d, C).
    """
    z = masks.astype(y.dtype)
    zw = z * weights[:, None].astype(y.dtype)
    a = zw.T @ z
    b = zw.T @ y
    rhs = jnp.concatenate([b, jnp.ones((z.shape[1], 1), y.dtype)], axis=1)
    sol = jnp.linalg.solve(a, rhs)
    # Few coalitions can leave Z'WZ singular (a feature pair always in or out
    # together): then the minimum-norm least-squares solution, as shap falls
    # back to lstsq, instead of the NaN or garbage of an exact solve.
    w, v = jnp.linalg.eigh(a)
    keep = w > jnp.max(w) * a.shape[0] * jnp.finfo(a.dtype).eps
    inv = jnp.where(keep, 1.0 / jnp.where(keep, w, 1.0), 0.0)
    ok = jnp.all(keep) & jnp.all(jnp.isfinite(sol))
    sol = jnp.where(ok, sol, v @ ((v.T @ rhs) * inv[:, None]))
    u, v = sol[:, :-1], sol[:, -1:]
    lam = (jnp.sum(u, axis=0) - total) / jnp.sum(v)
    return u - v * lam[None, :]


def _coalition_values(out, x, masks, background, chunk, mesh):
    """v(z) - for all samples and coalitions: (N, M, C), chunked over M."""
    n, m, d = masks.shape
    nb = background.shape[0]
    num = -(-m // chunk)
    pad = num * chunk - m
    if pad:
        masks = jnp.concatenate([masks, jnp.zeros((n, pad, d), bool)], axis=1)
    steps = masks.reshape(n, num, chunk, d).transpose(1, 0, 2, 3)
    if mesh is not None:
        steps = jax.lax.with_sharding_constraint(
            steps, NamedSharding(mesh, P(None, DATA_AXIS))
        )

    def step(_, mc):
        rows = jnp.where(mc[:, :, None, :], x[:, None, None, :], background[None, None])
        y = out(rows.reshape(n * chunk * nb, d))
        return None, jnp.mean(y.reshape(n, chunk, nb, -1), axis=2)

    _, ys = jax.lax.scan(step, None, steps)
    return ys.transpose(1, 0, 2, 3).reshape(n, num * chunk, -1)[:, :m]


@partial(jax.jit, static_argnums=(0,))
def _sample_all(plan, keys):
    return jax.vmap(lambda k: sample_coalitions(k, plan))(keys)


@partial(jax.jit, static_argnums=(0, 1))
def _solve_all(mesh, n, masks, weights, y, total):
    phi = map_samples(constrained_wls, masks, weights, y, total, mesh=mesh)
    return phi[:n]


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _run_jax(f, softmax, plan, chunk, mesh, x, background, keys):
    n = x.shape[0]
    out = lambda z: model_outputs(f, z, softmax)
    pad = pad_samples(n, mesh)
    if pad:
        x = jnp.concatenate([x, jnp.repeat(x[:1], pad, axis=0)])
        keys = jnp.concatenate([keys, jnp.repeat(keys[:1], pad, axis=0)])
    fnull = jnp.mean(out(background), axis=0)
    fx = out(x)
    masks, weights = map_samples(lambda k: sample_coalitions(k, plan), keys, mesh=mesh)
    values = _coalition_values(out, x, masks, background, chunk, mesh)
    phi = map_samples(
        constrained_wls, masks, weights, values - fnull[None, None, :], fx - fnull[None],
        mesh=mesh,
    )  # fmt: skip
    return phi[:n], fx[:n]


def _host_values(f, x, masks, background, rows_per_call):
    """Coalition values with a host `f`: (N, M, C) float64-or-32 NumPy."""
    n, m, d = masks.shape
    nb = background.shape[0]
    flat = masks.reshape(n * m, d)
    owner = np.repeat(np.arange(n), m)
    per_call = max(1, rows_per_call // nb)
    parts = []
    for start in range(0, n * m, per_call):
        mc = flat[start : start + per_call]
        xc = x[owner[start : start + per_call]]
        rows = np.where(mc[:, None, :], xc[:, None, :], background[None])
        y = host_outputs(f, rows.reshape(-1, d))
        parts.append(y.reshape(len(mc), nb, -1).mean(axis=1))
    return np.concatenate(parts).reshape(n, m, -1)


def kernel_shap(
    f: Callable,
    x: Any,
    background: Any,
    target: Any = None,
    *,
    key: Any,
    nsamples: int | None = None,
    softmax: bool = False,
    host: bool = False,
    chunk_size: int | None = None,
    rows_per_call: int = 2**18,
    mesh: Mesh | None = None,
) -> jax.Array:
    """KernelSHAP values of a batch of tabular samples (see the module doc).

    Args:
      f: a jax-traceable model, `f(z) -> (rows, C)` outputs or
        `(logits, acts)`; with `host=True` a NumPy function (e.g.
        `predict_proba`) called on NumPy arrays. 1-D outputs count as C = 1.
      x: (N, d) samples to explain.
      background: (m, d) background rows; E f(background) is the base value.
      target: None (the class of the largest output of f(x)), an int, an (N,)
        int array, or "all" for every output.
      key: a PRNG key (split over samples) or (N,) keys, one per sample.
      nsamples: coalitions per sample (None: shap's "auto", 2 d + 2048;
        capped at 2^d - 2, where the result is exact).
      softmax: explain softmax(f) instead of f's outputs (jax models).
      host: f is a host (NumPy) function.
      chunk_size: coalitions per scan step (None: about 65536 model rows per
        step over all samples).
      rows_per_call: the most rows per call of a host `f`.
      mesh: optional mesh; samples are split over its `data` axis.

    Returns:
      (N, d) Shapley values of the target output, or (N, d, C) for "all";
      each row sums to f(x)[c] - mean f(background)[c].

    Raises:
      ValueError: naming `x`, `background` (shape, dtype, non-finite),
        `target`, `key`, `nsamples` or `chunk_size`.
    """
    x = check_features("x", x)
    background = check_features("background", background, x.shape[1])
    check_finite("x", x)
    check_finite("background", background)
    n, d = x.shape
    plan = coalition_plan(d, nsamples)
    keys = sample_keys(key, n)
    if host:
        xn, bn = np.asarray(x), np.asarray(background)
        fx = host_outputs(f, xn)
        t = target_classes(target, n, fx.shape[1])
        fnull = host_outputs(f, bn).mean(axis=0)
        masks, weights = _sample_all(plan, keys)
        values = _host_values(f, xn, np.asarray(masks), bn, rows_per_call)
        dt = jnp.result_type(float)
        y, total = jnp.asarray(values - fnull, dt), jnp.asarray(fx - fnull, dt)
        phi = _solve_all(None, n, masks, weights, y, total)
    else:
        x, background = jnp.asarray(x), jnp.asarray(background, x.dtype)
        out = jax.eval_shape(lambda z: model_outputs(f, z, softmax), x)
        t = target_classes(target, n, out.shape[1])
        if chunk_size is None:
            rows = n * background.shape[0]
            chunk_size = max(1, min(plan.nsamples, _ROWS_PER_STEP // rows))
        if int(chunk_size) != chunk_size or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
        phi, fx = _run_jax(f, softmax, plan, int(chunk_size), mesh, x, background, keys)
    if isinstance(t, str):
        return phi
    if t is None:
        t = jnp.argmax(jnp.asarray(fx), axis=1).astype(jnp.int32)
    return jnp.take_along_axis(phi, t[:, None, None], axis=2)[:, :, 0]
