"""XAI-UQ correlation and stratified stability (arXiv:2603.29915, 4.5-5.3).

Uncertainty gating (Mikriukov, Montavon & Hoehne, arXiv:2603.29915) relates
explanation stability to epistemic uncertainty U_epi:

- per-sample stability: Kendall tau-b of the ranks of |phi(x)| and
  |phi(x~)| (`jaxcxai.metrics.explanations.kendall_tau`, tie-aware; NaN of
  a constant explanation counts as 0, as in the reference code);
- explanation drift XD(l) = (1/n) sum_i tau(phi(x_i), phi(x~_i^(l))) (Eq. 7);
- epistemic gain EG(l) = sum_i U(x~_i^(l)) / sum_i U(x_i) (Eq. 8);
- XEC = Spearman rho(XD, EG) across the levels (Eq. 9); < -0.6 is "strong".
  `semantics="reference"` is what the reference code computes (checked by running it):
  XD is correlated with the absolute mean U per level, the clean level is
  prepended with XD = 1 and its mean U; both return NaN with fewer than 3
  levels or zero spread;
- E3: three equal-frequency U_epi strata (pandas `qcut` bins: right-closed
  at the 1/3 and 2/3 linear quantiles), per-stratum stability summaries,
  and the p10-vs-p90 two-sample Student t-test (equal variances, as
  scipy's default) with the pass rule delta tau > 0.15 and p < 0.05.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxcxai.checks import check_finite
from jaxcxai.metrics.explanations import kendall_tau, spearman_rho

__all__ = [
    "TTestResult",
    "epistemic_gain",
    "explanation_drift",
    "extreme_groups_ttest",
    "sample_stability",
    "strata",
    "stratified_sample",
    "stratum_summary",
    "xec",
]


class TTestResult(NamedTuple):
    """p10-vs-p90 comparison: mean tau difference, t, two-sided p, pass."""

    delta: jax.Array
    t: jax.Array
    p: jax.Array
    passed: jax.Array


def sample_stability(
    phi_clean: Any, phi_pert: Any, *, order: str = "rank"
) -> jax.Array:
    """Per-sample Kendall tau-b between clean and perturbed explanations.

    arXiv:2603.29915, Eq. 5; NaN (constant |phi|) counts as 0.

    Args:
      phi_clean: (n, d) explanations of the clean inputs.
      phi_pert: (..., n, d) explanations of perturbed copies (any leading
        axes: levels, realisations, seeds).
      order: "rank" (the paper) or "argsort" (the reference's orderings).

    Returns:
      (..., n) tau in [-1, 1].
    """
    check_finite({"phi_clean": phi_clean, "phi_pert": phi_pert})
    a = jnp.asarray(phi_clean, jnp.float32)
    b = jnp.asarray(phi_pert, jnp.float32)
    if a.ndim != 2 or b.shape[-2:] != a.shape:
        raise ValueError(f"phi_pert must be (..., {a.shape}), got {b.shape}")
    lead = b.shape[:-2]
    b = b.reshape(-1, *a.shape)
    tau = jax.vmap(lambda bb: kendall_tau(a, bb, order=order, nan_to_zero=True))(b)
    return tau.reshape(*lead, a.shape[0])


def explanation_drift(
    phi_clean: Any, phi_pert: Any, *, order: str = "rank"
) -> jax.Array:
    """XD per level: mean over samples (and realisations) of tau (Eq. 7).

    Args:
      phi_clean: (n, d) clean explanations.
      phi_pert: (L, n, d) or (L, R, n, d) perturbed explanations.
      order: as in `sample_stability`.

    Returns:
      (L,) XD, arXiv:2603.29915 Eq. 7 (1 = unchanged ranks).
    """
    tau = sample_stability(phi_clean, phi_pert, order=order)
    return jnp.mean(tau.reshape(tau.shape[0], -1), axis=1)


def epistemic_gain(u_clean: Any, u_pert: Any) -> jax.Array:
    """EG per level: sum_i U(x~_i) / sum_i U(x_i) (arXiv:2603.29915, Eq. 8).

    Args:
      u_clean: (n,) U_epi of the clean inputs.
      u_pert: (L, n) or (L, R, n) U_epi of the perturbed inputs (a
        realisation axis is averaged).

    Returns:
      (L,) EG (1 = no change).
    """
    check_finite({"u_clean": u_clean, "u_pert": u_pert})
    u0 = jnp.asarray(u_clean, jnp.float32)
    up = jnp.asarray(u_pert, jnp.float32)
    up = jnp.mean(up.reshape(up.shape[0], -1, u0.shape[0]), axis=1)
    return jnp.sum(up, axis=1) / jnp.sum(u0)


def xec(
    xd: Any,
    u_clean: Any,
    u_pert: Any,
    *,
    semantics: str = "paper",
) -> jax.Array:
    """XAI-epistemic correlation across levels (arXiv:2603.29915, Eq. 9).

    Args:
      xd: (L,) explanation drift per level (`explanation_drift`).
      u_clean: (n,) clean U_epi.
      u_pert: (L, n) or (L, R, n) perturbed U_epi.
      semantics: "paper": Spearman rho(XD, EG) over the L levels;
        "reference": the reference code's rho over L + 1 points, the clean
        level (XD = 1, mean clean U) followed by (XD(l), mean U(l)).

    Returns:
      () rho in [-1, 1]; NaN with fewer than 3 points or zero spread.
    """
    if semantics not in ("paper", "reference"):
        raise ValueError(f"semantics must be 'paper' or 'reference', got {semantics!r}")
    check_finite({"xd": xd})
    xd = jnp.asarray(xd, jnp.float32)
    eg = epistemic_gain(u_clean, u_pert)
    if semantics == "reference":
        u0 = jnp.mean(jnp.asarray(u_clean, jnp.float32))
        xd = jnp.concatenate([jnp.ones((1,), jnp.float32), xd])
        eg = jnp.concatenate([u0[None], eg * u0])  # absolute mean U per level
    if xd.shape != eg.shape:
        raise ValueError(
            f"xd must have one value per level, got {xd.shape} vs {eg.shape}"
        )
    if xd.shape[0] < 3:
        return jnp.float32(jnp.nan)
    return spearman_rho(xd, eg, use_abs=False)


def strata(u: Any, n_strata: int = 3) -> jax.Array:
    """Equal-frequency U_epi strata (E3 of arXiv:2603.29915, section 5.3).

    Bin edges are the linear quantiles at k / n_strata; bins are closed on
    the right, the lowest one also on the left (pandas `qcut`).

    Args:
      u: (n,) U_epi of the clean test set.
      n_strata: number of bins (3: low, medium, high).

    Returns:
      (n,) int32 stratum in 0..n_strata-1 (0 = lowest U).
    """
    check_finite({"u": u})
    u = jnp.asarray(u, jnp.float32)
    inner = jnp.quantile(u, jnp.arange(1, n_strata) / n_strata)
    return jnp.searchsorted(inner, u, side="left").astype(jnp.int32)


def stratified_sample(
    labels: Any, key: jax.Array, per_stratum: int = 50, n_strata: int = 3
) -> jax.Array:
    """Random samples without replacement within each stratum (E3).

    Args:
      labels: (n,) stratum of each sample (`strata`).
      key: PRNG key.
      per_stratum: samples drawn per stratum (the paper: 50).
      n_strata: number of strata.

    Returns:
      (n_strata, per_stratum) int32 indices into the n samples.
    """
    labels = jnp.asarray(labels, jnp.int32)
    counts = jnp.bincount(labels, length=n_strata)
    if int(jnp.min(counts)) < per_stratum:
        raise ValueError(f"strata hold {counts.tolist()} samples, need {per_stratum}")
    keys = jax.random.split(key, n_strata)

    def pick(s, k):
        score = jax.random.uniform(k, labels.shape) + (labels != s) * 2.0
        return jnp.argsort(score)[:per_stratum].astype(jnp.int32)

    return jax.vmap(pick)(jnp.arange(n_strata), keys)


def stratum_summary(tau: Any, labels: Any, n_strata: int = 3) -> dict[str, jax.Array]:
    """Mean, std (ddof = 0) and count of tau per stratum (E3, Fig. 3).

    Args:
      tau: (n,) seed-averaged stability (e.g. `sample_stability(...).mean(0)`).
      labels: (n,) stratum of each sample.
      n_strata: number of strata.

    Returns:
      {"mean", "std", "count"}, each (n_strata,) (arXiv:2603.29915).
    """
    check_finite({"tau": tau})
    tau = jnp.asarray(tau, jnp.float32)
    onehot = jax.nn.one_hot(jnp.asarray(labels), n_strata, axis=0)  # (S, n)
    count = jnp.sum(onehot, axis=1)
    mean = onehot @ tau / count
    var = onehot @ (tau * tau) / count - mean * mean
    return {"mean": mean, "std": jnp.sqrt(jnp.maximum(var, 0.0)), "count": count}


def extreme_groups_ttest(
    u: Any,
    tau: Any,
    *,
    q: float = 0.1,
    min_delta: float = 0.15,
    alpha: float = 0.05,
) -> TTestResult:
    """p10-vs-p90 Student t-test of stability (E3 of arXiv:2603.29915).

    Low group: U <= Q_q(U); high group: U >= Q_{1-q}(U) (linear quantiles;
    with 500 samples each group holds about 50). Two-sample t-test with
    pooled variance, two-sided p (scipy.stats.ttest_ind defaults).

    Args:
      u: (n,) U_epi.
      tau: (n,) stability per sample.
      q: tail fraction (0.1: p10 vs p90).
      min_delta: pass needs mean(tau_low) - mean(tau_high) > min_delta.
      alpha: pass needs p < alpha.

    Returns:
      `TTestResult(delta, t, p, passed)`, each ().
    """
    check_finite({"u": u, "tau": tau})
    u = jnp.asarray(u, jnp.float32)
    tau = jnp.asarray(tau, jnp.float32)
    lo = (u <= jnp.quantile(u, q)).astype(jnp.float32)
    hi = (u >= jnp.quantile(u, 1.0 - q)).astype(jnp.float32)
    n1, n2 = jnp.sum(lo), jnp.sum(hi)
    m1, m2 = lo @ tau / n1, hi @ tau / n2
    ss = lo @ (tau - m1) ** 2 + hi @ (tau - m2) ** 2
    df = n1 + n2 - 2.0
    se = jnp.sqrt(ss / df * (1.0 / n1 + 1.0 / n2))
    t = (m1 - m2) / se
    p = jax.scipy.special.betainc(df / 2.0, 0.5, df / (df + t * t))
    delta = m1 - m2
    return TTestResult(delta, t, p, (delta > min_delta) & (p < alpha))
