"""PCA by exact or randomized SVD: components = top right singular vectors.

X - mean ~ codes @ components with components (k, d) orthonormal rows, codes
(N, k) = (X - mean) components^T; the variance explained by component j is
`codes[:, j].var(ddof=1)` (= s_j^2 / (N - 1)). Signs follow scikit-learn's
`svd_flip(u_based_decision=False)`: the largest-magnitude entry of every
component is positive, so runs are comparable.

`randomized_svd` is Halko, Martinsson & Tropp (2011, "Finding structure with
randomness", Alg. 4.4 with QR re-orthonormalization in each power
iteration): for large d it costs O(N d (k + p)) per pass instead of the
O(N d min(N, d)) of the exact SVD.
"""

import functools

import jax
import jax.numpy as jnp

from jaxcxai.concepts.discovery.common import Factorization, as_rows, check_rank

__all__ = ["METHODS", "fit_pca", "randomized_svd", "sign_flip"]

METHODS = ("exact", "randomized")


def sign_flip(components: jax.Array) -> jax.Array:
    """Flips each row so that its largest-|.| entry is positive."""
    idx = jnp.argmax(jnp.abs(components), axis=-1)
    pick = jnp.take_along_axis(components, idx[..., None], axis=-1)
    return components * jnp.where(pick < 0, -1.0, 1.0).astype(components.dtype)


@functools.partial(jax.jit, static_argnames=("k", "oversample", "power_iters"))
def randomized_svd(x, k, key, *, oversample=10, power_iters=4):
    """Truncated SVD of X (N, d) by a randomized range finder.

    Args:
      x: (N, d) matrix.
      k: rank (static).
      key: PRNG key of the Gaussian test matrix.
      oversample: extra columns p of the sketch (static).
      power_iters: subspace (power) iterations q; each multiplies by
        (X X^T) to sharpen a slowly decaying spectrum (static).

    Returns:
      (u (N, k), s (k,), vt (k, d)), singular values in descending order.
    """
    n, d = x.shape
    ell = min(k + oversample, n, d)
    omega = jax.random.normal(key, (d, ell), x.dtype)
    q, _ = jnp.linalg.qr(x @ omega)

    def power(_, q):
        z, _ = jnp.linalg.qr(x.T @ q)
        return jnp.linalg.qr(x @ z)[0]

    q = jax.lax.fori_loop(0, power_iters, power, q)
    ub, s, vt = jnp.linalg.svd(q.T @ x, full_matrices=False)
    return (q @ ub)[:, :k], s[:k], vt[:k]


@functools.partial(
    jax.jit, static_argnames=("k", "center", "method", "oversample", "power_iters")
)
def _pca(x, k, key, center, method, oversample, power_iters):
    mean = jnp.mean(x, axis=0) if center else jnp.zeros(x.shape[1], x.dtype)
    xc = x - mean[None]
    if method == "exact":
        _, _, vt = jnp.linalg.svd(xc, full_matrices=False)
        vt = vt[:k]
    else:
        _, _, vt = randomized_svd(
            xc, k, key, oversample=oversample, power_iters=power_iters
        )
    comps = sign_flip(vt)
    codes = xc @ comps.T
    return Factorization(comps, codes, jnp.zeros((0,), x.dtype), mean)


def fit_pca(
    acts,
    k,
    key=None,
    *,
    center=True,
    method="exact",
    oversample=10,
    power_iters=4,
):
    """Principal components of activations (Pearson 1901; via the SVD).

    Args:
      acts: (N, d) or (N, ..., C) activations (spatial axes become rows).
      k: number of components, 1 <= k <= min(rows, d).
      key: PRNG key (needed by method="randomized").
      center: subtract the row mean first (PCA); False gives a plain
        truncated SVD of X.
      method: "exact" (full thin SVD) or "randomized" (`randomized_svd`).
      oversample: sketch oversampling of the randomized method.
      power_iters: power iterations of the randomized method.

    Returns:
      `Factorization` with components (k, d) (orthonormal rows), codes
      (rows, k), empty losses and the mean (d,).
    """
    x = as_rows(acts, "acts")
    k = check_rank(k, *x.shape)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "randomized" and key is None:
        raise ValueError("method='randomized' needs a PRNG key")
    for name, value in (("oversample", oversample), ("power_iters", power_iters)):
        if int(value) != value or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    key = jax.random.key(0) if key is None else key
    return _pca(x, k, key, center, method, oversample, power_iters)
