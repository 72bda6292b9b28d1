"""KernelSHAP coalitions: Shapley kernel weights, budget allocation, sampling.

KernelSHAP (Lundberg & Lee 2017, "A Unified Approach to Interpreting Model
Predictions", Theorem 2) fits phi by weighted least squares over coalitions
z in {0,1}^d with the Shapley kernel

    pi(z) = (d - 1) / (C(d, |z|) |z| (d - |z|)),   0 < |z| < d.

The budget of `nsamples` coalitions is spent the way shap's KernelExplainer
spends it: subset sizes are visited from the outside in (1 and d - 1, then 2
and d - 2, ...); a size (with its complement size) is enumerated in full
while the budget share that the kernel gives it covers all its subsets, and
the rest of the budget is drawn at random from the sizes left, each draw
paired with its complement (antithetic sampling). When the budget covers
all 2^d - 2 proper coalitions every size is enumerated and the solution is
the exact Shapley value.

`coalition_plan` is static (NumPy, cached per (d, nsamples)); the random
part is drawn in JAX from a key (`sample_coalitions`), so it vmaps over
samples and is reproducible. Duplicate random draws are kept as separate
rows: in weighted least squares two equal rows of weight w are the same as
one row of weight 2w, which is how shap merges them (shap then draws more
to refill its budget; we do not, so the count of distinct coalitions can be
a little lower than shap's at the same budget).
"""

from __future__ import annotations

import functools
import itertools
from math import comb
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.attribution.perturb import uniform

__all__ = [
    "CoalitionPlan",
    "auto_nsamples",
    "shapley_kernel",
    "coalition_plan",
    "sample_coalitions",
    "all_coalitions",
]


def auto_nsamples(d: int) -> int:
    """shap's "auto" budget: 2 d + 2048 coalitions."""
    return 2 * d + 2048


def shapley_kernel(d: int, size: int) -> float:
    """The Shapley kernel weight of one coalition of `size` features out of d."""
    if not 0 < size < d:
        raise ValueError(f"size must be in [1, d - 1] = [1, {d - 1}], got {size}")
    return (d - 1) / (comb(d, size) * size * (d - size))


class CoalitionPlan(NamedTuple):
    """How a budget of coalitions is spent (static; see the module doc).

    Attributes:
      d: number of features.
      nsamples: total coalitions (after capping at 2^d - 2).
      full_masks: (F, d) bool, the enumerated coalitions.
      full_weights: (F,) float64 regression weights of the enumerated rows.
      sizes: (K,) int, subset sizes left for random draws (empty if exact).
      size_probs: (K,) float64, the probability of drawing each size.
      paired: (K,) bool, whether a draw of that size adds its complement.
      num_random: number of random rows (nsamples - F).
      weight_left: total weight shared equally by the random rows.
    """

    d: int
    nsamples: int
    full_masks: np.ndarray
    full_weights: np.ndarray
    sizes: np.ndarray
    size_probs: np.ndarray
    paired: np.ndarray
    num_random: int
    weight_left: float

    # A plan is determined by (d, nsamples): hash and compare on those, so a
    # plan can be a static argument of `jax.jit`.
    def __hash__(self) -> int:
        return hash((self.d, self.nsamples))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CoalitionPlan) and (self.d, self.nsamples) == (
            other.d,
            other.nsamples,
        )

    @property
    def exact(self) -> bool:
        """True when every proper coalition is enumerated (exact Shapley)."""
        return self.num_random == 0


@functools.lru_cache(maxsize=32)
def coalition_plan(d: int, nsamples: int | None = None) -> CoalitionPlan:
    """shap-like allocation of `nsamples` coalitions over subset sizes.

    Args:
      d: number of features, >= 2.
      nsamples: budget (None: `auto_nsamples(d)`), capped at 2^d - 2.

    Returns:
      A `CoalitionPlan`.

    Raises:
      ValueError: naming `d` or `nsamples` when out of range.
    """
    if int(d) != d or d < 2:
        raise ValueError(f"d (number of features) must be an integer >= 2, got {d}")
    if nsamples is None:
        nsamples = auto_nsamples(d)
    if int(nsamples) != nsamples or nsamples < 2:
        raise ValueError(f"nsamples must be an integer >= 2, got {nsamples}")
    if d <= 30:
        nsamples = min(int(nsamples), 2**d - 2)
    # Sizes 1..ceil((d-1)/2); size s also stands for its complement d - s
    # ("paired") except the middle size of an even d.
    num_sizes = (d - 1 + 1) // 2
    num_paired = (d - 1) // 2
    sizes = np.arange(1, num_sizes + 1)
    share = (d - 1) / (sizes * (d - sizes)).astype(np.float64)
    share[:num_paired] *= 2
    share /= share.sum()

    left, remaining = nsamples, share.copy()
    masks, weights, num_full = [], [], 0
    for s in sizes:
        count = comb(d, int(s)) * (2 if s <= num_paired else 1)
        if left * remaining[s - 1] / count < 1.0 - 1e-8:
            break
        num_full += 1
        left -= count
        if remaining[s - 1] < 1.0:
            remaining /= 1.0 - remaining[s - 1]
        w = share[s - 1] / comb(d, int(s)) / (2.0 if s <= num_paired else 1.0)
        for idx in itertools.combinations(range(d), int(s)):
            m = np.zeros(d, bool)
            m[list(idx)] = True
            masks.append(m)
            weights.append(w)
            if s <= num_paired:
                masks.append(~m)
                weights.append(w)
    full_masks = np.asarray(masks, bool).reshape(-1, d)
    full_weights = np.asarray(weights, np.float64)

    rest = sizes[num_full:]
    paired = rest <= num_paired
    probs = share[num_full:].copy()
    probs[paired] /= 2  # a paired draw adds two rows
    probs = probs / probs.sum() if probs.size else probs
    return CoalitionPlan(
        d=d,
        nsamples=nsamples,
        full_masks=full_masks,
        full_weights=full_weights,
        sizes=rest.astype(np.int32),
        size_probs=probs,
        paired=paired,
        num_random=nsamples - len(full_masks),
        weight_left=float(share[num_full:].sum()),
    )


def sample_coalitions(
    key: jax.Array, plan: CoalitionPlan
) -> tuple[jax.Array, jax.Array]:
    """All coalitions of one explanation: enumerated rows, then random ones.

    Random rows: a size is drawn from `plan.size_probs`, a uniformly random
    subset of that size is taken (the `size` smallest of d uniforms), and
    for a paired size its complement follows; the sequence is cut at
    `plan.num_random` rows. The random rows share `plan.weight_left`
    equally.

    Args:
      key: a PRNG key (one per explanation).
      plan: from `coalition_plan`.

    Returns:
      masks: (nsamples, d) bool; weights: (nsamples,) float32.
    """
    d, r = plan.d, plan.num_random
    full_m = jnp.asarray(plan.full_masks)
    full_w = jnp.asarray(plan.full_weights, jnp.float32)
    if r == 0:
        return full_m, full_w
    # One uniform draw (one PRNG kernel): column 0 picks the size by inverse
    # CDF, the other d columns pick the subset.
    u = uniform(key, (r, d + 1))
    cdf = jnp.cumsum(jnp.asarray(plan.size_probs, jnp.float32))
    pick = jnp.minimum(jnp.sum(u[:, :1] >= cdf[None, :-1], axis=1), len(plan.sizes) - 1)
    size = jnp.asarray(plan.sizes)[pick]
    pair = jnp.asarray(plan.paired)[pick]
    u = u[:, 1:]
    # The `size` smallest of d i.i.d. uniforms are a uniform random subset.
    # Ranks by pairwise comparison, ties broken by index (d is small, and
    # XLA's sort is slow on CPU).
    idx = jnp.arange(d)
    before = (u[:, None, :] < u[:, :, None]) | (
        (u[:, None, :] == u[:, :, None]) & (idx[None, None, :] < idx[None, :, None])
    )
    rank = jnp.sum(before, axis=2)
    first = rank < size[:, None]
    rows = jnp.stack([first, ~first], axis=1).reshape(2 * r, d)
    valid = jnp.stack([jnp.ones_like(pair), pair], axis=1).reshape(2 * r)
    pos = jnp.cumsum(valid) - 1
    slot = jnp.where(valid & (pos < r), pos, r)  # r is out of range: dropped
    rand_m = jnp.zeros((r, d), bool).at[slot].set(rows, mode="drop")
    rand_w = jnp.full((r,), plan.weight_left / r, jnp.float32)
    return jnp.concatenate([full_m, rand_m]), jnp.concatenate([full_w, rand_w])


def all_coalitions(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Every proper coalition with its Shapley kernel weight (for tests).

    Returns:
      masks: (2^d - 2, d) bool; weights: (2^d - 2,) float64.
    """
    codes = np.arange(1, 2**d - 1)
    masks = ((codes[:, None] >> np.arange(d)) & 1).astype(bool)
    sizes = masks.sum(1)
    weights = np.array([shapley_kernel(d, int(s)) for s in sizes])
    return masks, weights
