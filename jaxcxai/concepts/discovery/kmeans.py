"""k-means: k-means++ seeding and Lloyd iterations, as prototype concepts.

Centers are the components (k, d); codes are one-hot assignments (N, k), so
`codes @ components` is each row's center (the vector-quantization view of
k-means used for concept prototypes, e.g. ACE, Ghorbani et al. 2019).

* `kmeans_plusplus`: Arthur & Vassilvitskii (2007, "k-means++: the
  advantages of careful seeding"), greedy variant (as scikit-learn): at each
  step `2 + floor(log k)` candidates are drawn with probability
  proportional to D(x)^2 and the one giving the lowest potential is kept.
* `fit_kmeans`: a static number of Lloyd iterations; an empty cluster keeps its
  previous center (scikit-learn relocates it to a far point instead; the two
  agree whenever no cluster empties). `losses[t]` is the inertia
  sum_i min_j ||x_i - c_j||^2 of the centers after t iterations, which
  never increases.
"""

import functools
import math

import jax
import jax.numpy as jnp

from jaxcxai.concepts.discovery.common import Factorization, as_rows, check_rank

__all__ = ["fit_kmeans", "kmeans_plusplus", "sq_distances"]


def sq_distances(x, centers):
    """||x_i - c_j||^2 (N, k), clipped at zero against rounding."""
    x2 = jnp.sum(x * x, axis=1, keepdims=True)
    c2 = jnp.sum(centers * centers, axis=1)
    return jnp.maximum(x2 - 2.0 * x @ centers.T + c2[None, :], 0.0)


@functools.partial(jax.jit, static_argnames=("k", "trials"))
def _plusplus(x, k, key, trials):
    n = x.shape[0]
    k0, key = jax.random.split(key)
    first = x[jax.random.randint(k0, (), 0, n)]
    centers = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(first)
    closest = jnp.sum((x - first[None]) ** 2, axis=1)

    def body(j, carry):
        centers, closest = carry
        kj = jax.random.fold_in(key, j)
        # Inverse-CDF sampling of `trials` candidates with p ~ D(x)^2.
        cdf = jnp.cumsum(closest)
        u = jax.random.uniform(kj, (trials,), x.dtype) * cdf[-1]
        cand = jnp.minimum(jnp.searchsorted(cdf, u), n - 1)
        d_cand = sq_distances(x, x[cand])  # (N, trials)
        new_closest = jnp.minimum(closest[:, None], d_cand)
        best = jnp.argmin(jnp.sum(new_closest, axis=0))
        centers = centers.at[j].set(x[cand[best]])
        return centers, new_closest[:, best]

    centers, _ = jax.lax.fori_loop(1, k, body, (centers, closest))
    return centers


def kmeans_plusplus(acts, k, key, *, trials=None):
    """k-means++ initial centers (k, d) drawn from the rows of `acts`.

    Args:
      acts: (N, d) or (N, ..., C) activations.
      k: number of centers, 1 <= k <= rows.
      key: PRNG key.
      trials: candidates per step; default 2 + floor(log k) (greedy).
    """
    x = as_rows(acts, "acts")
    k = check_rank(k, x.shape[0], None)
    trials = 2 + int(math.log(k)) if trials is None else int(trials)
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    return _plusplus(x, k, key, trials)


@functools.partial(jax.jit, static_argnames=("iters",))
def _lloyd(x, centers, iters):
    k = centers.shape[0]

    def assign(centers):
        d2 = sq_distances(x, centers)
        labels = jnp.argmin(d2, axis=1)
        return labels, jnp.sum(jnp.min(d2, axis=1))

    def body(centers, _):
        labels, inertia = assign(centers)
        onehot = jax.nn.one_hot(labels, k, dtype=x.dtype)
        counts = jnp.sum(onehot, axis=0)
        sums = onehot.T @ x
        new = sums / jnp.maximum(counts, 1.0)[:, None]
        return jnp.where(counts[:, None] > 0, new, centers), inertia

    centers, losses = jax.lax.scan(body, centers, None, length=iters)
    labels, inertia = assign(centers)
    codes = jax.nn.one_hot(labels, k, dtype=x.dtype)
    losses = jnp.concatenate([losses, inertia[None]])
    return Factorization(centers, codes, losses, jnp.zeros(x.shape[1], x.dtype))


def fit_kmeans(acts, k, key, *, iters=100, init="k-means++"):
    """k-means clustering of activation rows (Lloyd 1982).

    Args:
      acts: (N, d) or (N, ..., C) activations (spatial axes become rows).
      k: number of clusters, 1 <= k <= rows.
      key: PRNG key of the k-means++ init.
      iters: number of Lloyd iterations (static).
      init: "k-means++" or explicit (k, d) initial centers.

    Returns:
      `Factorization` with components = centers (k, d), codes = one-hot
      assignments (rows, k) (labels = `codes.argmax(-1)`), losses = inertia
      (iters + 1,) and zero mean.
    """
    x = as_rows(acts, "acts")
    k = check_rank(k, x.shape[0], None)
    if isinstance(init, str):
        if init != "k-means++":
            raise ValueError(
                f"init must be 'k-means++' or (k, d) centers, got {init!r}"
            )
        centers = kmeans_plusplus(x, k, key)
    else:
        centers = jnp.asarray(init, x.dtype)
        if centers.shape != (k, x.shape[1]):
            raise ValueError(f"init centers must have shape {(k, x.shape[1])}")
    return _lloyd(x, centers, iters)
