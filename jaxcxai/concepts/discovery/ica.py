"""FastICA (Hyvarinen 1999, "Fast and robust fixed-point algorithms for
independent component analysis"), parallel (symmetric) form, logcosh.

Steps, as scikit-learn's `FastICA(whiten="unit-variance",
algorithm="parallel", fun="logcosh")`:

1. Whitening by PCA: Z = (X - mean) K^T with K (k, d) = V_k^T sqrt(N) / s_k
   from the thin SVD of X - mean, so that Z (N, k) has identity covariance
   (1/N normalization).
2. Fixed point on the unmixing matrix W (k, k), all rows at once:
   W <- E[g(W z) z^T] - diag(E[g'(W z)]) W, g(u) = tanh(a u),
   g'(u) = a (1 - tanh(a u)^2), followed by the symmetric decorrelation
   W <- (W W^T)^{-1/2} W (eigendecomposition of W W^T).
3. Sources S = Z W^T (unit variance) are the codes; the components are the
   rows of the mixing matrix A^T = pinv(W K)^T, so X - mean ~ S A^T.

The iteration count is static (no tolerance stop); `losses[t]` holds
scikit-learn's convergence gap max_i |1 - |<w_i^new, w_i^old>|| of
iteration t (not an objective: FastICA has no monotone one).
"""

import functools

import jax
import jax.numpy as jnp

from jaxcxai.concepts.discovery.common import Factorization, as_rows, check_rank
from jaxcxai.concepts.discovery.pca import sign_flip

__all__ = ["fastica", "whiten", "symmetric_decorrelation"]


def whiten(x, k):
    """PCA whitening of X (N, d) to k unit-variance columns.

    Returns:
      (z (N, k), whitening K (k, d), mean (d,)) with z = (x - mean) K^T.
    """
    mean = jnp.mean(x, axis=0)
    xc = x - mean[None]
    _, s, vt = jnp.linalg.svd(xc, full_matrices=False)
    vt = sign_flip(vt[:k])
    k_mat = vt * (jnp.sqrt(jnp.asarray(x.shape[0], x.dtype)) / s[:k])[:, None]
    return xc @ k_mat.T, k_mat, mean


def symmetric_decorrelation(w):
    """(W W^T)^{-1/2} W: the closest matrix with orthonormal rows."""
    vals, vecs = jnp.linalg.eigh(w @ w.T)
    vals = jnp.maximum(vals, jnp.finfo(w.dtype).tiny)
    return (vecs * (1.0 / jnp.sqrt(vals))[None, :]) @ vecs.T @ w


@functools.partial(jax.jit, static_argnames=("k", "iters"))
def _fastica(x, k, w0, iters, alpha):
    z, k_mat, mean = whiten(x, k)
    n = z.shape[0]

    def body(w, _):
        wz = jnp.tanh(alpha * (z @ w.T))  # (N, k)
        g_prime = alpha * (1.0 - wz * wz)
        w_new = symmetric_decorrelation(
            wz.T @ z / n - jnp.mean(g_prime, 0)[:, None] * w
        )
        gap = jnp.max(jnp.abs(jnp.abs(jnp.sum(w_new * w, axis=1)) - 1.0))
        return w_new, gap

    w, gaps = jax.lax.scan(body, symmetric_decorrelation(w0), None, length=iters)
    sources = z @ w.T
    components = jnp.linalg.pinv(w @ k_mat).T
    return Factorization(components, sources, gaps, mean)


def fastica(acts, k, key, *, iters=200, alpha=1.0, w_init=None):
    """Independent components of activations by parallel FastICA (logcosh).

    Args:
      acts: (N, d) or (N, ..., C) activations (spatial axes become rows).
      k: number of components, 1 <= k <= min(rows, d).
      key: PRNG key of the Gaussian initial unmixing matrix (k, k).
      iters: number of fixed-point iterations (static).
      alpha: logcosh parameter a in [1, 2].
      w_init: optional explicit (k, k) initial unmixing matrix.

    Returns:
      `Factorization` with components (k, d) (mixing directions), codes
      (rows, k) (unit-variance sources), losses = convergence gaps (iters,)
      and the mean (d,). Sign and order of components are arbitrary.
    """
    x = as_rows(acts, "acts")
    k = check_rank(k, *x.shape)
    if not 1.0 <= alpha <= 2.0:
        raise ValueError(f"alpha must be in [1, 2], got {alpha}")
    if w_init is None:
        w0 = jax.random.normal(key, (k, k), x.dtype)
    else:
        w0 = jnp.asarray(w_init, x.dtype)
        if w0.shape != (k, k):
            raise ValueError(f"w_init must have shape {(k, k)}, got {w0.shape}")
    return _fastica(x, k, w0, iters, alpha)
