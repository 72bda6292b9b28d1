"""Entropies, mutual information and member variance of class probabilities.

Every epistemic estimator of the gating paper (Mikriukov, Montavon, Höhne,
arXiv:2603.29915, §2 and §4.2) reduces a stack of member
probabilities ``member_probs`` of shape (M, N, K) (M members: bootstrap refits,
trees, MC-dropout passes or ensemble members; N samples; K classes) to one
number per sample:

- variance form (Eq. 1): U_epi = (1/K) Σ_k Var_m[p_{m,k}] (bootstrap logistic
  regression, random forest, deep ensembles, CNN MC-dropout);
- mutual information: U_epi = max(0, H(p̄) - (1/M) Σ_m H(p_m)) (tabular MLP
  MC-dropout);
- the reported "aleatoric" entropy H(p̄), with H(p) = -Σ_k p_k log(p_k + 1e-8).

Like the reference code everything is float32 (checked by running it), but computed
so that float32 loses nothing it need not: the variance is the mean squared
deviation from the member mean (never E[p²] - E[p]², which cancels), and the
mutual information is the mean KL divergence of each member from the mean,
Σ_k p_{m,k} [log(p_{m,k} + ε) - log(p̄_k + ε)], which equals H(p̄) - mean H(p_m)
term by term (since mean_m p_{m,k} = p̄_k) but is exactly 0 when the members
agree, instead of the difference of two nearly equal entropies.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "EPS",
    "Estimate",
    "entropy",
    "predictive_entropy",
    "expected_entropy",
    "mutual_information",
    "member_variance",
    "variance_estimate",
    "mutual_information_estimate",
]

EPS = 1e-8  # the reference's ε inside log(p + ε)


class Estimate(NamedTuple):
    """What every estimator returns (one entry per sample).

    Attributes:
      epistemic: (N,) float32 U_epi, the gating signal.
      aleatoric: (N,) float32 H(p̄), reported by the paper, unused by gating.
      probs: (N, K) float32 mean member probabilities p̄.
    """

    epistemic: jax.Array
    aleatoric: jax.Array
    probs: jax.Array


def _f32(x) -> jax.Array:
    return jnp.asarray(x, jnp.float32)


def _member_mean(p: jax.Array) -> jax.Array:
    # p[0] + mean(p - p[0]) is exactly p[0] when the members agree, so the
    # deviations below are exact zeros then (a plain float32 mean of equal
    # numbers can be off by one ulp).
    return p[0] + jnp.mean(p - p[0][None], axis=0)


def entropy(p: jax.Array, axis: int = -1) -> jax.Array:
    """Shannon entropy H(p) = -Σ_k p_k log(p_k + 1e-8), in nats, float32.

    Args:
      p: probabilities, classes along `axis`, e.g. (N, K).
      axis: the class axis.

    Returns:
      `p`'s shape without `axis`, e.g. (N,).

    References:
      Mikriukov, Montavon, Höhne, "Uncertainty gating for cost-aware XAI",
      arXiv:2603.29915, §4.2 (the ε of the reference code).
    """
    p = _f32(p)
    return -jnp.sum(p * jnp.log(p + EPS), axis=axis)


def predictive_entropy(member_probs: jax.Array) -> jax.Array:
    """Entropy of the mean prediction, H(p̄): the paper's reported "aleatoric".

    Args:
      member_probs: (M, N, K) member probabilities.

    Returns:
      (N,) float32.
    """
    return entropy(jnp.mean(_f32(member_probs), axis=0))


def expected_entropy(member_probs: jax.Array) -> jax.Array:
    """Mean member entropy (1/M) Σ_m H(p_m): the aleatoric part of the
    information-theoretic decomposition H(p̄) = MI + E_m H(p_m).

    Args:
      member_probs: (M, N, K).

    Returns:
      (N,) float32.

    References:
      Depeweg et al., "Decomposition of uncertainty in Bayesian deep learning",
      ICML 2018; arXiv:2603.29915 §4.2.
    """
    return jnp.mean(entropy(member_probs), axis=0)


def mutual_information(member_probs: jax.Array) -> jax.Array:
    """Mutual information between prediction and member (BALD), clipped at 0.

    max(0, H(p̄) - (1/M) Σ_m H(p_m)), computed as the mean KL divergence of the
    members from p̄ (see the module docstring), so agreeing members give 0.

    Args:
      member_probs: (M, N, K), e.g. MC-dropout passes.

    Returns:
      (N,) float32, >= 0.

    References:
      Gal & Ghahramani, "Dropout as a Bayesian approximation", ICML 2016;
      arXiv:2603.29915 §4.2 (the MLP's U_epi).
    """
    p = _f32(member_probs)
    mean = _member_mean(p)
    log_ratio = jnp.log(p + EPS) - jnp.log(mean + EPS)[None]
    kl = jnp.sum(p * log_ratio, axis=-1)  # (M, N)
    return jnp.maximum(jnp.mean(kl, axis=0), 0.0)


def member_variance(member_probs: jax.Array, ddof: int = 0) -> jax.Array:
    """Eq. 1: variance across members, averaged over classes.

    U_epi = (1/K) Σ_k Var_m[p_{m,k}], with the two-pass variance (mean squared
    deviation) in float32.

    Args:
      member_probs: (M, N, K).
      ddof: 0 for the population variance (NumPy's default, used by the
        reference's bootstrap and forest code); 1 for the unbiased one.

    Returns:
      (N,) float32.

    References:
      arXiv:2603.29915 Eq. 1; Lakshminarayanan et al., "Simple and scalable
      predictive uncertainty estimation using deep ensembles", NeurIPS 2017.
    """
    p = _f32(member_probs)
    m = p.shape[0]
    if m - ddof <= 0:
        raise ValueError(f"member_probs needs more than ddof={ddof} members, got {m}")
    dev = p - _member_mean(p)[None]
    var = jnp.sum(dev * dev, axis=0) / (m - ddof)
    return jnp.mean(var, axis=-1)


def variance_estimate(member_probs: jax.Array, ddof: int = 0) -> Estimate:
    """`Estimate` with U_epi = `member_variance` and aleatoric H(p̄).

    Args:
      member_probs: (M, N, K).
      ddof: see `member_variance`.
    """
    p = _f32(member_probs)
    return Estimate(member_variance(p, ddof), predictive_entropy(p), p.mean(0))


def mutual_information_estimate(member_probs: jax.Array) -> Estimate:
    """`Estimate` with U_epi = `mutual_information` and aleatoric H(p̄).

    Args:
      member_probs: (M, N, K).
    """
    p = _f32(member_probs)
    return Estimate(mutual_information(p), predictive_entropy(p), p.mean(0))
