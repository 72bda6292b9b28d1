"""Rank agreement of two explanations: Kendall tau-b, Spearman rho, top-k overlap.

Uncertainty gating (Mikriukov, Montavon & Hoehne, arXiv 2603.29915, section
4.5) compares an explanation phi(x) with phi(x~) of a perturbed input through
the ranks R_i = rank(|phi_i|):

- Spearman rho (their Eq. 4) as scipy computes it: the Pearson correlation
  of the average ranks (equal to 1 - 6 sum d^2 / (d(d^2-1)) without ties);
- Kendall tau (Eq. 5) as scipy's tau-b: (n_c - n_d) / sqrt((n0 - n1)(n0 -
  n2)), n0 = d(d-1)/2 and n1, n2 the pairs tied in either vector. Tied |phi|
  are handled exactly (the reference code, comrados/uq-xai, sorts with
  NumPy's default argsort, which is unstable, so its tie order depends on
  the machine).

`order="argsort"` is the reference code's variant (its correlation sweep
`5_run_perturbation_explainers`, and `7_stratified` for Kendall):
correlate the two importance *orderings* (index sequences of a stable
descending sort) instead of the ranks. Constant inputs give NaN, as in scipy;
`nan_to_zero=True` maps NaN to 0 as the reference code does.

Shapes: a 1-D input is one explanation of d features; an (N, ...) input is
N explanations, each flattened. Results are () or (N,). Everything is
jittable; Kendall is O(d^2) per pair, in row blocks of `block` x d.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "average_ranks",
    "kendall_tau",
    "spearman_rho",
    "top_k_intersection",
    "top_k_jaccard",
]


def _pair(a: Any, b: Any) -> tuple[jax.Array, jax.Array, bool]:
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape, got {a.shape} and {b.shape}"
        )
    if a.ndim == 0:
        raise ValueError("a and b need at least one feature axis")
    single = a.ndim == 1
    a = a.reshape(1 if single else a.shape[0], -1).astype(jnp.float32)
    b = b.reshape(a.shape).astype(jnp.float32)
    return a, b, single


def _values(a, b, use_abs: bool, order: str):
    if order not in ("rank", "argsort"):
        raise ValueError(f"order must be 'rank' or 'argsort', got {order!r}")
    if use_abs:
        a, b = jnp.abs(a), jnp.abs(b)
    if order == "argsort":
        # The orderings: feature indices from most to least important.
        a = jnp.argsort(-a, axis=-1, stable=True).astype(jnp.float32)
        b = jnp.argsort(-b, axis=-1, stable=True).astype(jnp.float32)
    return a, b


def average_ranks(v: Any) -> jax.Array:
    """1-based ranks of the last axis with ties averaged (scipy.stats.rankdata)."""
    v = jnp.asarray(v)

    def one(row):
        idx = jnp.argsort(row, stable=True)
        s = row[idx]
        lo = jnp.searchsorted(s, s, side="left")
        hi = jnp.searchsorted(s, s, side="right")
        r = (lo + hi + 1).astype(jnp.float32) / 2.0
        return jnp.zeros_like(r).at[idx].set(r)

    flat = v.reshape(-1, v.shape[-1])
    return jax.vmap(one)(flat).reshape(v.shape)


def _tied_pairs(v: jax.Array) -> jax.Array:
    """Number of tied pairs in each row: sum over groups of t (t - 1) / 2."""
    s = jnp.sort(v, axis=-1)
    cnt = jax.vmap(
        lambda r: jnp.searchsorted(r, r, side="right") - jnp.searchsorted(r, r)
    )(s)
    return jnp.sum(cnt - 1, axis=-1).astype(jnp.float32) / 2.0


def _finish(r: jax.Array, single: bool, nan_to_zero: bool) -> jax.Array:
    r = jnp.nan_to_num(r, nan=0.0) if nan_to_zero else r
    return r[0] if single else r


def kendall_tau(
    a: Any,
    b: Any,
    *,
    use_abs: bool = True,
    order: str = "rank",
    nan_to_zero: bool = False,
    block: int = 256,
) -> jax.Array:
    """Kendall tau-b of the ranks of |a| and |b| (scipy.stats.kendalltau).

    Args:
      a, b: (d,) or (N, ...) explanations of the same shape.
      use_abs: rank |a| and |b| (the paper); False ranks the signed values.
      order: "rank" (the paper) or "argsort" (the reference code's orderings).
      nan_to_zero: report 0 instead of NaN for constant inputs.
      block: rows per pairwise block (memory N x block x d).

    Returns:
      () or (N,) tau-b in [-1, 1].
    """
    a, b, single = _pair(a, b)
    a, b = _values(a, b, use_abs, order)
    d = a.shape[1]

    def concordance(ai, bi):
        def row(i):  # integer counts: exact for d < 46k
            sa = jnp.sign(ai[i] - ai).astype(jnp.int32)
            return jnp.sum(sa * jnp.sign(bi[i] - bi).astype(jnp.int32))

        rows = jax.lax.map(row, jnp.arange(d), batch_size=min(block, d))
        return (jnp.sum(rows) // 2).astype(jnp.float32)

    s = jax.vmap(concordance)(a, b)
    n0 = d * (d - 1) / 2.0
    denom = jnp.sqrt((n0 - _tied_pairs(a)) * (n0 - _tied_pairs(b)))
    tau = jnp.where(denom > 0, s / jnp.where(denom > 0, denom, 1.0), jnp.nan)
    return _finish(jnp.clip(tau, -1.0, 1.0), single, nan_to_zero)


def spearman_rho(
    a: Any,
    b: Any,
    *,
    use_abs: bool = True,
    order: str = "rank",
    nan_to_zero: bool = False,
) -> jax.Array:
    """Spearman rho of |a| and |b|: Pearson of average ranks (scipy.stats.spearmanr).

    Args and returns as in `kendall_tau` (no `block`: this is O(d log d)).
    """
    a, b, single = _pair(a, b)
    a, b = _values(a, b, use_abs, order)
    ra = average_ranks(a)
    rb = average_ranks(b)
    ra = ra - jnp.mean(ra, axis=-1, keepdims=True)
    rb = rb - jnp.mean(rb, axis=-1, keepdims=True)
    num = jnp.sum(ra * rb, axis=-1)
    den = jnp.sqrt(jnp.sum(ra * ra, axis=-1) * jnp.sum(rb * rb, axis=-1))
    rho = jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), jnp.nan)
    return _finish(jnp.clip(rho, -1.0, 1.0), single, nan_to_zero)


def _top_k_overlap(a, b, k: int, use_abs: bool):
    a, b, single = _pair(a, b)
    d = a.shape[1]
    if not 1 <= k <= d:
        raise ValueError(f"k must be in [1, {d}], got {k}")
    if use_abs:
        a, b = jnp.abs(a), jnp.abs(b)

    def members(v):  # ties: the lower index wins, as lax.top_k
        _, idx = jax.lax.top_k(v, k)
        return jnp.zeros((d,), jnp.float32).at[idx].set(1.0)

    m = jnp.sum(jax.vmap(members)(a) * jax.vmap(members)(b), axis=-1)
    return m, single


def top_k_intersection(a: Any, b: Any, k: int, *, use_abs: bool = True) -> jax.Array:
    """|top_k(|a|) & top_k(|b|)| / k: the share of the k most important features
    that both explanations agree on. Returns () or (N,)."""
    m, single = _top_k_overlap(a, b, k, use_abs)
    r = m / k
    return r[0] if single else r


def top_k_jaccard(a: Any, b: Any, k: int, *, use_abs: bool = True) -> jax.Array:
    """Jaccard index of the two top-k feature sets, m / (2k - m). Returns () or (N,)."""
    m, single = _top_k_overlap(a, b, k, use_abs)
    r = m / (2 * k - m)
    return r[0] if single else r
