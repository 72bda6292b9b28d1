"""Non-negative matrix factorization X ~ W H (W codes >= 0, H components >= 0).

Objective: 0.5 ||X - W H||_F^2 + l1 * sum(W) (an optional L1 penalty on the
codes, as scikit-learn's `alpha_W * l1_ratio * d`). Solvers, each a fixed
number of iterations in one `lax.scan`, updating W then H per iteration
(scikit-learn's order, so a shared init reproduces `sklearn.decomposition.NMF`):

* "mu": multiplicative updates (Lee & Seung 2001, "Algorithms for
  non-negative matrix factorization"); zero denominators are replaced by the
  float32 epsilon, as scikit-learn does.
* "hals": hierarchical alternating least squares (Cichocki & Phan 2009,
  "Fast local algorithms for large scale NMF"), exact coordinate descent on
  one column of W (row of H) at a time; identical to scikit-learn's "cd".
* `semi_fit`: H signed, W >= 0, for signed activations (Ding, Li & Jordan
  2010, "Convex and semi-nonnegative matrix factorizations"): H by least
  squares, W by the paper's square-root multiplicative rule.

All three never increase the objective; `losses[t]` is its value after t
iterations (computed from products the update needs anyway).

Rank masking: a 0/1 mask over the k slots zeroes padded components at init;
both update rules keep a zero column of W / row of H at zero, so a rank-k fit
padded to k_max slots equals the rank-k fit (`bulk.nmf_ranks` uses this).
Zero rows of X with zero rows of W (padding N) likewise stay inert.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.concepts.discovery.common import host_rng

__all__ = [
    "SOLVERS",
    "INITS",
    "init_factors",
    "init_seeds",
    "fit_factors",
    "semi_fit",
    "transform_codes",
]

SOLVERS = ("mu", "hals")
INITS = ("random", "nndsvd", "nndsvda")
_EPS = float(jnp.finfo(jnp.float32).eps)  # scikit-learn's EPSILON


def init_factors(x, k, key, method="random", mask=None):
    """Initial (W (N, k), H (k, d)) for NMF of X (N, d) >= 0.

    "random" is scikit-learn's: |N(0, 1)| * sqrt(mean(X) / k) for both
    factors, drawn on the host by a NumPy generator seeded with the key's
    data (the draw is tiny next to the fit, and it spares a threefry
    compilation per shape). "nndsvd" is the non-negative double SVD of
    Boutsidis & Gallopoulos (2008, "SVD based initialization: a head start
    for NMF"), with entries below 1e-6 set to zero; "nndsvda" fills those
    zeros with mean(X) (better for MU, which cannot move a zero).

    Args:
      x: (N, d) non-negative rows.
      k: number of slots.
      key: PRNG key (used by "random").
      method: one of `INITS`.
      mask: optional (k,) 0/1 mask; masked slots are set to zero.
    """
    if method not in INITS:
        raise ValueError(f"init must be one of {INITS} or (W, H), got {method!r}")
    n, d = x.shape
    if method == "random":
        rng = host_rng(key)
        avg = np.sqrt(float(jnp.mean(x)) / k)
        w = avg * np.abs(rng.standard_normal((n, k)))
        h = avg * np.abs(rng.standard_normal((k, d)))
    else:
        w, h = (np.asarray(a) for a in _nndsvd(x, k, method == "nndsvda"))
    if mask is not None:
        m = np.asarray(mask)
        w, h = w * m[None, :], h * m[:, None]
    return jnp.asarray(w, x.dtype), jnp.asarray(h, x.dtype)


def init_seeds(x, k, keys, method="random", masks=None):
    """`init_factors` for a batch of keys (S,) (and optional masks (S, k)):
    W (S, N, k), H (S, k, d). NNDSVD is deterministic: one SVD, S copies."""
    if method != "random" and masks is None:
        w, h = init_factors(x, k, None, method)
        return jnp.stack([w] * len(keys)), jnp.stack([h] * len(keys))
    masks = [None] * len(keys) if masks is None else masks
    pairs = [init_factors(x, k, kk, method, m) for kk, m in zip(keys, masks)]
    return jnp.stack([p[0] for p in pairs]), jnp.stack([p[1] for p in pairs])


@functools.partial(jax.jit, static_argnames=("k", "fill"))
def _nndsvd(x, k, fill):
    u, s, vt = jnp.linalg.svd(x, full_matrices=False)
    u, s, vt = u[:, :k].T, s[:k], vt[:k]  # (k, N), (k,), (k, d)
    up, un, vp, vn = (jnp.maximum(a, 0) for a in (u, -u, vt, -vt))
    nup, nun = jnp.linalg.norm(up, axis=1), jnp.linalg.norm(un, axis=1)
    nvp, nvn = jnp.linalg.norm(vp, axis=1), jnp.linalg.norm(vn, axis=1)
    pos = nup * nvp >= nun * nvn  # keep the dominant sign pattern per factor
    sigma = jnp.where(pos, nup * nvp, nun * nvn)
    tiny = jnp.finfo(x.dtype).tiny
    uu = jnp.where(pos[:, None], up / (nup[:, None] + tiny), un / (nun[:, None] + tiny))
    vv = jnp.where(pos[:, None], vp / (nvp[:, None] + tiny), vn / (nvn[:, None] + tiny))
    lam = jnp.sqrt(s * sigma)
    # The leading singular pair of a non-negative matrix is sign-consistent.
    lam = lam.at[0].set(jnp.sqrt(s[0]))
    uu = uu.at[0].set(jnp.abs(u[0]))
    vv = vv.at[0].set(jnp.abs(vt[0]))
    w, h = (lam[:, None] * uu).T, lam[:, None] * vv
    w, h = jnp.where(w < 1e-6, 0.0, w), jnp.where(h < 1e-6, 0.0, h)
    if fill:
        avg = jnp.mean(x)
        w, h = jnp.where(w == 0, avg, w), jnp.where(h == 0, avg, h)
    return w, h


def _loss(sq_norm, w, xht, hht, l1):
    """0.5 ||X - W H||^2 + l1 sum(W) from X H^T and H H^T (trace identity).

    The identity cancels ||X||^2, so its rounding error is about
    eps ||X||^2; the clip at zero only removes a negative rounding residue.
    `common.frobenius_loss` is the direct (costlier) form.
    """
    wtw = w.T @ w
    fit = 0.5 * sq_norm - jnp.sum(w * xht) + 0.5 * jnp.sum(wtw * hht)
    return jnp.maximum(fit, 0.0) + l1 * jnp.sum(w)


def _safe(den):
    return jnp.where(den == 0, _EPS, den)


def _mu_step(x, w, h, xht, hht, l1):
    w = w * xht / _safe(w @ hht + l1)
    h = h * (w.T @ x) / _safe((w.T @ w) @ h)
    return w, h


def _hals_columns(w, xht, hht, l1):
    """One sweep of exact coordinate updates over the columns of W."""

    def col(j, w):
        hjj = hht[j, j]
        grad = xht[:, j] - l1 - w @ hht[:, j]
        new = jnp.maximum(w[:, j] + grad / jnp.where(hjj > 0, hjj, 1.0), 0.0)
        # A dead slot (H row all zero) or a masked slot keeps its column.
        return w.at[:, j].set(jnp.where(hjj > 0, new, w[:, j]))

    return jax.lax.fori_loop(0, w.shape[1], col, w)


def _hals_step(x, w, h, xht, hht, l1):
    w = _hals_columns(w, xht, hht, l1)
    ht = _hals_columns(h.T, x.T @ w, w.T @ w, 0.0)
    return w, ht.T


@functools.partial(jax.jit, static_argnames=("solver", "iters"))
def fit_factors(x, w, h, *, solver="mu", iters=200, l1=0.0):
    """Runs `iters` NMF iterations from (W, H); jit- and vmap-friendly.

    Args:
      x: (N, d) non-negative rows.
      w: (N, k) initial codes (>= 0); zero columns stay zero (masking).
      h: (k, d) initial components (>= 0).
      solver: "mu" or "hals" (static).
      iters: number of iterations T (static).
      l1: L1 penalty on the codes W.

    Returns:
      (W (N, k), H (k, d), losses (T + 1,)) with losses[t] the objective after
      t iterations.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    step = _mu_step if solver == "mu" else _hals_step
    sq_norm = jnp.sum(x * x)

    def body(carry, _):
        w, h = carry
        xht, hht = x @ h.T, h @ h.T
        loss = _loss(sq_norm, w, xht, hht, l1)
        return step(x, w, h, xht, hht, l1), loss

    (w, h), losses = jax.lax.scan(body, (w, h), None, length=iters)
    final = _loss(sq_norm, w, x @ h.T, h @ h.T, l1)
    return w, h, jnp.concatenate([losses, final[None]])


@functools.partial(jax.jit, static_argnames=("iters",))
def semi_fit(x, w, *, iters=200):
    """Semi-NMF X ~ W H with W >= 0 and H signed (Ding, Li & Jordan 2010).

    Each iteration: H = argmin_H ||X - W H|| (least squares, a tiny ridge
    of eps * trace(W^T W) / k keeps dead slots solvable), then
    W <- W * sqrt(((X H^T)^+ + W (H H^T)^-) / ((X H^T)^- + W (H H^T)^+)).
    The paper orders F (our H) then G (our W); losses[t] is the objective
    0.5 ||X - W H||^2 after t iterations, with H = least squares of W.

    Args:
      x: (N, d) signed rows.
      w: (N, k) initial codes (> 0); zero columns stay zero (masking).
      iters: number of iterations T (static).

    Returns:
      (W (N, k), H (k, d), losses (T + 1,)).
    """
    sq_norm = jnp.sum(x * x)
    k = w.shape[1]
    eye = jnp.eye(k, dtype=x.dtype)
    eps = jnp.finfo(x.dtype).eps

    def least_squares(w):
        wtw = w.T @ w
        ridge = eps * jnp.trace(wtw) / k + jnp.finfo(x.dtype).tiny
        return jnp.linalg.solve(wtw + ridge * eye, w.T @ x)

    def body(carry, _):
        w, h = carry
        xht, hht = x @ h.T, h @ h.T
        loss = _loss(sq_norm, w, xht, hht, 0.0)
        num = jnp.maximum(xht, 0) + w @ jnp.maximum(-hht, 0)
        den = jnp.maximum(-xht, 0) + w @ jnp.maximum(hht, 0)
        w = w * jnp.sqrt(num / _safe(den))
        return (w, least_squares(w)), loss

    h = least_squares(w)
    (w, h), losses = jax.lax.scan(body, (w, h), None, length=iters)
    final = _loss(sq_norm, w, x @ h.T, h @ h.T, 0.0)
    return w, h, jnp.concatenate([losses, final[None]])


@functools.partial(jax.jit, static_argnames=("iters",))
def transform_codes(x, h, *, iters=200, l1=0.0):
    """Codes W >= 0 of new rows X for fixed components H (MU on W only).

    Used to project held-out activations onto a discovered dictionary (ICE
    presence maps of new images). Starts from scikit-learn's constant
    sqrt(mean(X) / k) init.

    Args:
      x: (N, d) non-negative rows.
      h: (k, d) non-negative components.

    Returns:
      (N, k) codes.
    """
    k = h.shape[0]
    w = jnp.full((x.shape[0], k), jnp.sqrt(jnp.mean(x) / k), x.dtype)
    xht, hht = x @ h.T, h @ h.T

    def body(_, w):
        return w * xht / _safe(w @ hht + l1)

    return jax.lax.fori_loop(0, iters, body, w)
