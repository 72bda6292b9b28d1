"""Faithfulness: log-odds removal shift, deletion and insertion curves.

Log-odds removal shift (uncertainty gating, arXiv 2603.29915, section 5.5;
reference code comrados/uq-xai): sort the features of x by |phi|
(descending, stable), set the top k to a replacement (the training-set
per-feature median) to get x^(k), and measure
MSE_k = (1/K) sum_c (z_c(x) - z_c(x^(k)))^2 with the log-odds
z_c = log p_c - log p_0, probabilities clipped to [1e-12, 1 - 1e-12]; the
mean runs over all K classes including c0 (whose z is 0), as the
reference does. Higher shift = more faithful.

Deletion and insertion (Petsiuk, Das & Saenko 2018, "RISE: Randomized Input
Sampling for Explanation of Black-box Models"): remove (deletion) or reveal
(insertion) the features in order of decreasing attribution, `steps`
increments of d / steps features each, and record the target-class
probability; the AUC is the trapezoid mean over the fraction in [0, 1]
(lower deletion AUC and higher insertion AUC = more faithful). The paper's
deletion fills in zeros and its insertion starts from a blurred image: pass
the blurred image as `baseline`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "log_odds",
    "removal_inputs",
    "removal_shift",
    "feature_ranks",
    "deletion_curve",
    "insertion_curve",
    "curve_auc",
]


def log_odds(probs: Any, eps: float = 1e-12) -> jax.Array:
    """z_c = log p_c - log p_0 of (..., K) probabilities clipped to [eps, 1 - eps]."""
    p = jnp.clip(jnp.asarray(probs, jnp.float32), eps, 1.0 - eps)
    logp = jnp.log(p)
    return logp - logp[..., :1]


def feature_ranks(phi: Any) -> jax.Array:
    """Rank of each feature by decreasing attribution (0 = most important;
    ties: the lower index first), for (N, ...) attributions, same shape."""
    phi = jnp.asarray(phi)
    flat = phi.reshape(phi.shape[0], -1)
    order = jnp.argsort(-flat, axis=-1, stable=True)
    ranks = jax.vmap(lambda o: jnp.zeros_like(o).at[o].set(jnp.arange(o.shape[0])))(
        order
    )
    return ranks.reshape(phi.shape)


@partial(jax.jit, static_argnums=3)
def _removal(x, phi, replacement, ks):
    ranks = feature_ranks(jnp.abs(phi))
    rep = jnp.broadcast_to(replacement, x.shape)
    return jnp.stack([jnp.where(ranks < k, rep, x) for k in ks], axis=1)


def removal_inputs(
    x: Any, phi: Any, replacement: Any, ks: Sequence[int] = (1, 2, 3, 4, 5)
) -> jax.Array:
    """x^(k) for each k: the top-k features by |phi| set to `replacement`.

    Args:
      x: (N, d) inputs.
      phi: (N, d) attributions.
      replacement: (d,) values (e.g. the training median) or (N, d).
      ks: numbers of removed features.

    Returns:
      (N, len(ks), d) inputs.
    """
    x, phi = jnp.asarray(x, jnp.float32), jnp.asarray(phi, jnp.float32)
    if x.ndim != 2 or phi.shape != x.shape:
        raise ValueError(
            f"x and phi must both be (N, d), got {x.shape} and {phi.shape}"
        )
    d = x.shape[1]
    if not ks or any(int(k) != k or not 0 <= k <= d for k in ks):
        raise ValueError(f"ks must be integers in [0, {d}], got {ks}")
    return _removal(x, phi, jnp.asarray(replacement, jnp.float32), tuple(map(int, ks)))


def removal_shift(
    predict_proba: Callable,
    x: Any,
    phi: Any,
    replacement: Any,
    ks: Sequence[int] = (1, 2, 3, 4, 5),
    eps: float = 1e-12,
) -> jax.Array:
    """Log-odds shift MSE_k(x) after removing the top-k features, (N, len(ks)).

    `predict_proba` maps (B, d) -> (B, K) probabilities; it may be a JAX or a
    NumPy function (e.g. a scikit-learn model's): it is called once, on the
    (N (1 + len(ks)), d) stack of clean and reduced inputs.
    """
    xk = removal_inputs(x, phi, replacement, ks)
    n, m, d = xk.shape
    batch = jnp.concatenate([jnp.asarray(x, jnp.float32)[:, None], xk], axis=1)
    probs = jnp.asarray(predict_proba(np.asarray(batch.reshape(-1, d))))
    z = log_odds(probs.reshape(n, m + 1, -1), eps)
    return jnp.mean((z[:, :1] - z[:, 1:]) ** 2, axis=-1)


def _logits(outputs: Any) -> jax.Array:
    # The backbone contract returns (logits, acts); plain functions logits.
    if isinstance(outputs, (tuple, list)) and len(outputs) == 2:
        return outputs[0]
    return outputs


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _curve(f, insertion, steps, output, chunk, x, ranks, baseline, t):
    lead = ranks.ndim - 1
    d = int(np.prod(ranks.shape[1:]))
    counts = (jnp.arange(steps + 1) * d) // steps
    if t is None:  # the predicted class of the full input
        t = jnp.argmax(_logits(f(x)), axis=-1)

    def one(xs, rs, bs, ts):
        mask_shape = rs.shape + (1,) * (xs.ndim - lead)

        def at(m):
            hidden = (rs < m).reshape(mask_shape)
            xi = jnp.where(hidden, xs, bs) if insertion else jnp.where(hidden, bs, xs)
            logits = _logits(f(xi[None]))[0]
            if output == "probability":
                return jax.nn.softmax(logits)[ts]
            return logits[ts]

        return jax.lax.map(at, counts, batch_size=chunk)

    return jax.vmap(one)(x, ranks, baseline, t)


def _run_curve(f, x, phi, target, baseline, steps, output, chunk_size, insertion):
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be floating point, got dtype {x.dtype}")
    bad = int(jnp.sum(~jnp.isfinite(x)))
    if bad:
        raise ValueError(f"x has {bad} non-finite entries (NaN or inf)")
    phi = jnp.asarray(phi, jnp.float32)
    if phi.shape != x.shape[: phi.ndim] or phi.ndim < 2:
        raise ValueError(
            f"phi must be (N, ...) with x.shape starting with it, got {phi.shape} "
            f"for x {x.shape}"
        )
    if output not in ("probability", "logit"):
        raise ValueError(f"output must be 'probability' or 'logit', got {output!r}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
        raise ValueError(
            f"chunk_size must be a positive integer or None, got {chunk_size}"
        )
    if target is not None:
        target = np.broadcast_to(np.asarray(target), (x.shape[0],))
        if not np.issubdtype(target.dtype, np.integer):
            raise ValueError(
                f"target must be integer class indices, got {target.dtype}"
            )
        num = _logits(jax.eval_shape(f, x)).shape[-1]
        if ((target < 0) | (target >= num)).any():
            raise ValueError(f"target has values outside [0, {num}): {target}")
        target = jnp.asarray(target, jnp.int32)
    if isinstance(baseline, str):
        if baseline != "zero":
            raise ValueError(f"baseline must be 'zero' or an array, got {baseline!r}")
        base = jnp.zeros_like(x)
    else:
        base = jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
    ranks = feature_ranks(phi)
    chunk = None if chunk_size is None else int(chunk_size)
    return _curve(f, insertion, int(steps), output, chunk, x, ranks, base, target)


def deletion_curve(
    f: Callable,
    x: Any,
    phi: Any,
    target: Any = None,
    *,
    baseline: Any = "zero",
    steps: int = 32,
    output: str = "probability",
    chunk_size: int | None = 8,
) -> jax.Array:
    """Target score as features are deleted in order of decreasing phi.

    Args:
      f: model function, `f(x) -> logits` or `(logits, acts)`.
      x: (N, *P, ...) inputs, e.g. (N, H, W, C) images.
      phi: (N, *P) attributions, e.g. (N, H, W) pixel maps: a feature is a
        position of phi; trailing axes of x (channels) go with it.
      target: None (predicted class), an int or (N,) ints.
      baseline: "zero" or an array broadcastable to x (the deleted values).
      steps: increments; after step s the top (s d) // steps features are gone.
      output: "probability" (softmax of the target) or "logit".
      chunk_size: steps evaluated together (None: all).

    Returns:
      (N, steps + 1) scores, from the full input to the all-baseline input.
    """
    return _run_curve(f, x, phi, target, baseline, steps, output, chunk_size, False)


def insertion_curve(
    f: Callable,
    x: Any,
    phi: Any,
    target: Any = None,
    *,
    baseline: Any = "zero",
    steps: int = 32,
    output: str = "probability",
    chunk_size: int | None = 8,
) -> jax.Array:
    """Target score as features are revealed on `baseline` in order of
    decreasing phi; arguments as in `deletion_curve`. Returns (N, steps + 1)."""
    return _run_curve(f, x, phi, target, baseline, steps, output, chunk_size, True)


def curve_auc(curve: Any) -> jax.Array:
    """Trapezoid area under (..., S + 1) curves on an even grid over [0, 1]."""
    c = jnp.asarray(curve, jnp.float32)
    return (jnp.sum(c, axis=-1) - (c[..., 0] + c[..., -1]) / 2) / (c.shape[-1] - 1)
