"""Distances between LoCEs and the class-separation measures built on them:
pairwise distances, one-vs-rest and pairwise separation, overlap.

All run in JAX (one matmul and masked segment reductions, O(N^2) memory,
fine for N up to ~10^4 per call). `analysis` re-exports every public name.

Conventions: `labels` are any hashable values; results indexed by class use
the order of `np.unique(labels)`, returned alongside. Distances: "euclidean"
(computed from centred data via |x|^2 + |y|^2 - 2 x.y, clamped at 0) or
"cosine" (1 - cos, zero vectors at distance 1 like sklearn).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "overlap_ratio",
    "pairwise_distances",
    "pairwise_separation",
    "separation_index",
]

_HI = jax.lax.Precision.HIGHEST


def _encode(labels):
    classes, inv = np.unique(np.asarray(labels), return_inverse=True)
    return classes, jnp.asarray(inv, jnp.int32)


@functools.partial(jax.jit, static_argnames="metric")
def pairwise_distances(x, y=None, metric: str = "euclidean") -> jax.Array:
    """(N, M) distances between rows of x (N, C) and y (M, C) (default y = x)."""
    x = jnp.asarray(x, jnp.float32)
    y = x if y is None else jnp.asarray(y, jnp.float32)
    if metric == "cosine":
        xn = x / jnp.where(
            jnp.linalg.norm(x, axis=1, keepdims=True) > 0,
            jnp.linalg.norm(x, axis=1, keepdims=True),
            1.0,
        )
        yn = y / jnp.where(
            jnp.linalg.norm(y, axis=1, keepdims=True) > 0,
            jnp.linalg.norm(y, axis=1, keepdims=True),
            1.0,
        )
        return jnp.clip(1.0 - jnp.matmul(xn, yn.T, precision=_HI), 0.0, 2.0)
    if metric != "euclidean":
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    # Centring first keeps |x|^2 + |y|^2 - 2x.y from cancelling catastrophically.
    mu = jnp.mean(jnp.concatenate([x, y]), axis=0, keepdims=True)
    x, y = x - mu, y - mu
    sq = (
        jnp.sum(x * x, 1)[:, None]
        + jnp.sum(y * y, 1)[None, :]
        - 2.0 * jnp.matmul(x, y.T, precision=_HI)
    )
    return jnp.sqrt(jnp.maximum(sq, 0.0))


def _self_distances(x, metric):
    d = pairwise_distances(x, metric=metric)
    return d * (1.0 - jnp.eye(d.shape[0], dtype=d.dtype))  # exact zeros on the diagonal


def _block_reductions(d, inv, k):
    """(K, K) minimum and maximum of d over each pair of class blocks."""
    row_min = jax.ops.segment_min(d.T, inv, k).T  # (N, K)
    row_max = jax.ops.segment_max(d.T, inv, k).T
    return jax.ops.segment_min(row_min, inv, k), jax.ops.segment_max(row_max, inv, k)


def separation_index(loces, labels, metric="euclidean"):
    """One-vs-rest separation: inter / intra per class (`loce_separation.py`).

    intra(c) = mean pairwise distance within c (i != j); inter(c) = minimum
    distance from c to any other point; index = inter / intra (inf if 0).

    Returns:
      (classes, index (K,), intra (K,), inter (K,)).
    """
    classes, inv = _encode(labels)
    k = len(classes)
    d = _self_distances(loces, metric)
    one_hot = jax.nn.one_hot(inv, k, dtype=jnp.float32)
    block_sum = jnp.matmul(
        one_hot.T, jnp.matmul(d, one_hot, precision=_HI), precision=_HI
    )
    n = jnp.sum(one_hot, axis=0)
    intra = jnp.diag(block_sum) / jnp.maximum(n * (n - 1), 1.0)
    bmin, _ = _block_reductions(d, inv, k)
    inter = jnp.min(jnp.where(jnp.eye(k, dtype=bool), jnp.inf, bmin), axis=1)
    index = jnp.where(intra > 0, inter / jnp.where(intra > 0, intra, 1.0), jnp.inf)
    return classes, index, intra, inter


def pairwise_separation(loces, labels, metric="euclidean"):
    """Sep(c, d) = min_{P_c x P_d} dist / (max over (P_c u P_d)^2 + 1e-6), (K, K)."""
    classes, inv = _encode(labels)
    k = len(classes)
    bmin, bmax = _block_reductions(_self_distances(loces, metric), inv, k)
    diam = jnp.maximum(
        jnp.maximum(jnp.diag(bmax)[:, None], jnp.diag(bmax)[None, :]), bmax
    )
    sep = bmin / (diam + 1e-6)
    return classes, jnp.where(jnp.eye(k, dtype=bool), 0.0, sep)


def overlap_ratio(loces, labels, metric="euclidean"):
    """Ov[c, d] = Ov(c <- d): fraction of P_c whose nearest d-point is closer
    than its nearest other c-point (asymmetric; diagonal 0)."""
    classes, inv = _encode(labels)
    k = len(classes)
    d = pairwise_distances(loces, metric=metric)
    d = jnp.where(jnp.eye(d.shape[0], dtype=bool), jnp.inf, d)
    row_min = jax.ops.segment_min(d.T, inv, k).T  # (N, K), self excluded
    own = jnp.take_along_axis(row_min, inv[:, None], axis=1)
    hits = (row_min < own).astype(jnp.float32)
    counts = jax.ops.segment_sum(jnp.ones_like(inv, jnp.float32), inv, k)
    return classes, jax.ops.segment_sum(hits, inv, k) / counts[:, None]
