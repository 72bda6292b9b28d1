"""NT-Xent, the contrastive loss of DUCH and CHNR (the reference's `forward_orig`).

For a pair (a, b) of (N, K) code sets, z = [normalised a; normalised b]
and S = z z^T / tau is the (2N, 2N) similarity matrix; row r's positive is
row r +- N. The denominator of row r sums exp(S_rc) over its row (the
reference, which then subtracts e) or log-sum-exps it over c != r (SimCLR).

S consists of the blocks a a^T, a b^T, b a^T = (a b^T)^T and b b^T, so the
row statistics need only three N x N blocks: the self blocks' row
statistics and the cross block's row and column statistics. DUCH's three
terms (hi1, ht1), (hi1, hi2), (ht1, ht2) share self blocks, so
`ntxent_many` computes every distinct block once: 7 blocks instead of 12
exponentiated N x N matrices, or 5 with the reference quirk ht2 = ht1
(`txt2 = txt1`: the augmented caption is never used). The values are the
same up to summation order.
"""

import math

import jax
import jax.numpy as jnp

__all__ = [
    "l2_normalize",
    "ntxent",
    "ntxent_many",
    "ntxent_reference",
    "ntxent_rows",
    "ntxent_standard",
]


_EPS = 1e-6  # clamp and offset of the reference denominator


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rows divided by max(||x_i||_2, eps) (torch `F.normalize`)."""
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))
    return x / jnp.maximum(norm, eps)


def _check_pair(a: jax.Array, b: jax.Array) -> None:
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"NT-Xent needs two (N, K) arrays of equal shape; got {a.shape} "
            f"and {b.shape}."
        )


class _Blocks:
    """Row/column statistics of exp(x y^T / tau) blocks, each computed once.

    Statistics are sums of exp (reference form) or log-sum-exps (standard
    form, where a self block's diagonal is masked). Arrays are keyed by
    identity: the same traced array passed twice is one code set.
    """

    def __init__(self, tau: float, subtract_e: bool):
        self.tau, self.subtract_e = tau, subtract_e
        self.normed, self.stats = {}, {}

    def normalised(self, x):
        if id(x) not in self.normed:
            self.normed[id(x)] = (x, l2_normalize(x))  # keeps x alive: ids stay unique
        return self.normed[id(x)][1]

    def _reduce(self, logits, axis):
        if self.subtract_e:
            return jnp.sum(jnp.exp(logits), axis=axis)
        return jax.nn.logsumexp(logits, axis=axis)

    def get(self, x, y, masked_self: bool):
        """(row statistics, column statistics) of the block x y^T."""
        # Unmasked, the self block of a set equals its cross block with
        # itself; the reference form never masks.
        masked = masked_self and not self.subtract_e
        key = (id(x), id(y), masked)
        if key not in self.stats:
            logits = (self.normalised(x) @ self.normalised(y).T) / self.tau
            if masked:
                eye = jnp.eye(logits.shape[0], dtype=bool)
                logits = jnp.where(eye, -jnp.inf, logits)
            rows = self._reduce(logits, 1)
            cols = rows if x is y else self._reduce(logits, 0)  # symmetric
            self.stats[key] = (rows, cols)
        return self.stats[key]

    def rows(self, a, b, eps):
        """(2N,) NT-Xent terms of the pair (a, b)."""
        _check_pair(a, b)
        self_a, _ = self.get(a, a, masked_self=True)
        self_b, _ = self.get(b, b, masked_self=True)
        cross_rows, cross_cols = self.get(a, b, masked_self=False)
        pos = jnp.sum(self.normalised(a) * self.normalised(b), axis=-1) / self.tau
        pos = jnp.concatenate([pos, pos])
        if self.subtract_e:
            den = jnp.concatenate([self_a + cross_rows, self_b + cross_cols])
            den = jnp.maximum(den - math.e, eps)
            # -log(exp(pos) / (den + eps)) without the exp/log round trip.
            return jnp.log(den + eps) - pos
        lse = jnp.concatenate(
            [jnp.logaddexp(self_a, cross_rows), jnp.logaddexp(self_b, cross_cols)]
        )
        return lse - pos


def ntxent_rows(
    a: jax.Array,
    b: jax.Array,
    *,
    tau: float = 1.0,
    subtract_e: bool = True,
    eps: float = _EPS,
) -> jax.Array:
    """Per-row NT-Xent terms l_r over the 2N rows of z = [a; b].

    With `subtract_e` (the reference `forward_orig`, a quirk) the
    denominator is max(sum_c exp(S_rc / tau) - e, eps) + eps: it removes the
    self term as if tau were 1. Without it the self term is masked exactly,
    l_r = -S_{r,partner} / tau + logsumexp_{c != r} S_rc / tau (SimCLR).
    Both agree up to the eps terms when tau = 1.

    Args:
      a, b: (N, K) paired rows; row r and row r + N are each other's positive.
      tau: temperature.
      subtract_e: reference denominator (True) or exact diagonal mask.
      eps: clamp and offset of the reference denominator.

    Returns:
      (2N,) terms; row r uses the positive of pair r mod N.
    """
    return _Blocks(tau, subtract_e).rows(a, b, eps)


def _weighted_sum(rows, weights, n, reduce_sum):
    if weights is not None:
        w = jax.lax.stop_gradient(jnp.asarray(weights, rows.dtype))
        if w.ndim == 1:
            if w.shape[0] != n:
                raise ValueError(f"weights must be (N,) = ({n},), got {w.shape}.")
            w = jnp.concatenate([w, w])
        rows = rows * w
    return jnp.sum(rows) if reduce_sum else jnp.mean(rows)


def ntxent_many(
    pairs,
    weights=None,
    *,
    tau: float = 1.0,
    subtract_e: bool = True,
    reduce_sum: bool = True,
) -> list:
    """`ntxent` of several pairs, every distinct similarity block once.

    Args:
      pairs: sequence of (a, b) pairs of (N, K) codes. Pass the same array
        object wherever a code set repeats (e.g. hi1 in two pairs), so its
        blocks are shared.
      weights: None, or one entry per pair (None, a scalar or (N,)).
      tau, subtract_e, reduce_sum: see `ntxent`.

    Returns:
      One scalar loss per pair.
    """
    blocks = _Blocks(tau, subtract_e)
    weights = [None] * len(pairs) if weights is None else list(weights)
    if len(weights) != len(pairs):
        raise ValueError(f"{len(weights)} weights for {len(pairs)} pairs.")
    return [
        _weighted_sum(blocks.rows(a, b, _EPS), w, a.shape[0], reduce_sum)
        for (a, b), w in zip(pairs, weights)
    ]


def ntxent(
    a: jax.Array,
    b: jax.Array,
    weights: jax.Array | float | None = None,
    *,
    tau: float = 1.0,
    subtract_e: bool = True,
    reduce_sum: bool = True,
) -> jax.Array:
    """Weighted NT-Xent: sum (or mean) over r of w_{r mod N} l_r.

    Args:
      a, b: (N, K) paired codes.
      weights: None (all 1), a scalar, or (N,) per-pair weights (CHNR); the
        weight of pair i applies to rows i and i + N. Not differentiated.
      tau, subtract_e: see `ntxent_rows`.
      reduce_sum: sum over the 2N rows (reference) or mean (standard).
    """
    rows = ntxent_rows(a, b, tau=tau, subtract_e=subtract_e)
    return _weighted_sum(rows, weights, a.shape[0], reduce_sum)


def ntxent_reference(
    a: jax.Array, b: jax.Array, weights: jax.Array | float | None = None
) -> jax.Array:
    """The reference NT-Xent (tau = 1, e subtracted, summed over 2N rows)."""
    return ntxent(a, b, weights, tau=1.0, subtract_e=True, reduce_sum=True)


def ntxent_standard(a: jax.Array, b: jax.Array, tau: float = 1.0) -> jax.Array:
    """SimCLR NT-Xent: exact diagonal mask, mean over the 2N rows."""
    return ntxent(a, b, tau=tau, subtract_e=False, reduce_sum=False)
