"""Gating policies: calibrate, route, defer, cost, and their evaluation.

Uncertainty gating (Mikriukov, Montavon & Hoehne, arXiv:2603.29915,
sections 3 and 5.4-5.5) gates the explanation effort by epistemic
uncertainty U:

- `calibrate(U_ref, nu)`: tau_nu = Q_{1-nu}(U_ref), the linear quantile of a
  reference pool (NumPy's default), nu the deferral fraction;
- `route(U, tau)`: Use Case 1, the expensive explainer iff U >= tau;
- `defer(U, tau)`: Use Case 2, explain iff U <= tau, defer otherwise;
- `relative_cost`: q = m/d + (1 - nu) (Eq. 2-3), m model evaluations for U,
  d per explanation; `reliability_records` attaches (U, decision, q_i) to
  each explanation, where q_i (in units of one explanation) averages to q;
- E4 (Table 3): precision and recall of "stable" (tau >= 0.7) among the
  accepted at nu = 90 % .. 10 %, plus ROC-AUC(-U -> stable) and the tau of
  the accepted samples (E5, Table 4).

`uc1_curve` is a **reconstruction — not verified against the paper** (the
paper proposes UC1 but reports no experiment for it): sweep the routed fraction
r, mix cheap and expensive stabilities, and compare the summary (default
`worst_and_mean`: 10th percentile and mean) with random routing of the same
number of samples, i.e. at equal cost q(r) = m/d_exp + (1 - r) d_cheap/d_exp + r.
Pass another `summarize` to change the statistic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxcxai.checks import check_finite
from jaxcxai.metrics.explanations import average_ranks

__all__ = [
    "E4_NUS",
    "ReliabilityRecord",
    "calibrate",
    "defer",
    "deferral_table",
    "relative_cost",
    "reliability_records",
    "roc_auc",
    "route",
    "uc1_curve",
    "worst_and_mean",
]

E4_NUS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)  # Table 3's deferral rates


class ReliabilityRecord(NamedTuple):
    """Per explanation: U (n,), decision (n,) bool, cost q_i (n,).

    decision: accepted (`defer` policy) or routed to the expensive
    explainer (`route` policy).
    """

    u: jax.Array
    decision: jax.Array
    q: jax.Array


def _vec(name: str, x: Any) -> jax.Array:
    check_finite({name: x})
    return jnp.asarray(x, jnp.float32)


def calibrate(u_ref: Any, nu: Any) -> jax.Array:
    """Threshold tau_nu = Q_{1-nu}(U_ref) (arXiv:2603.29915, section 3).

    Args:
      u_ref: (n,) U of a reference pool (validation or mixed-noise pool).
      nu: () or (V,) deferral fractions in [0, 1].

    Returns:
      () or (V,) thresholds (linear interpolation, numpy.quantile's default).
    """
    u_ref, nu = _vec("u_ref", u_ref), _vec("nu", nu)
    if not isinstance(nu, jax.core.Tracer) and bool(jnp.any((nu < 0) | (nu > 1))):
        raise ValueError(f"nu must lie in [0, 1], got {nu}")
    return jnp.quantile(u_ref, 1.0 - nu)


def route(u: Any, tau: Any) -> jax.Array:
    """Use Case 1: True = expensive explainer (U >= tau), False = cheap.

    Args:
      u: (n,) U per sample.
      tau: () threshold.

    Returns:
      (n,) bool (arXiv:2603.29915, section 3).
    """
    return _vec("u", u) >= _vec("tau", tau)


def defer(u: Any, tau: Any) -> jax.Array:
    """Use Case 2: True = explain (U <= tau), False = deferred.

    Args:
      u: (n,) U per sample.
      tau: () threshold.

    Returns:
      (n,) bool accepted (arXiv:2603.29915, section 3).
    """
    return _vec("u", u) <= _vec("tau", tau)


def relative_cost(m: Any, d: Any, nu: Any) -> Any:
    """q = m/d + (1 - nu), cost relative to explaining everything (Eq. 2-3).

    Args:
      m: model evaluations for U (MC dropout: 50; RF: ~1, by-product).
      d: model evaluations per explanation (LIME: 5000).
      nu: deferral fraction(s).

    Returns:
      q, broadcast over the arguments (arXiv:2603.29915).
    """
    return m / d + (1.0 - nu)


def reliability_records(
    u: Any,
    tau: Any,
    *,
    policy: str = "defer",
    m: float = 0.0,
    d: float = 1.0,
    d_cheap: float = 0.0,
) -> ReliabilityRecord:
    """(U, decision, q_i) for every explanation (arXiv:2603.29915, 3).

    q_i is in units of one full explanation (d evaluations): m/d for the
    uncertainty, plus 1 if explained (`defer`; 0 if deferred), or plus 1
    if routed to the expensive explainer and d_cheap/d if to the cheap one
    (`route`). With `defer`, mean(q_i) = m/d + (1 - nu) = q.

    Args:
      u: (n,) U per sample.
      tau: () threshold (`calibrate`).
      policy: "defer" or "route".
      m: model evaluations for U.
      d: evaluations per (expensive) explanation.
      d_cheap: evaluations per cheap explanation (`route` only).

    Returns:
      `ReliabilityRecord` of (n,) arrays.
    """
    u = _vec("u", u)
    if policy == "defer":
        decision = defer(u, tau)
        q = m / d + decision.astype(jnp.float32)
    elif policy == "route":
        decision = route(u, tau)
        q = m / d + jnp.where(decision, 1.0, d_cheap / d)
    else:
        raise ValueError(f"policy must be 'defer' or 'route', got {policy!r}")
    return ReliabilityRecord(u, decision, q)


def roc_auc(score: Any, positive: Any) -> jax.Array:
    """ROC-AUC of `score` for the boolean label (Mann-Whitney, ties halved).

    Args:
      score: (n,) scores (E4: -U).
      positive: (n,) bool labels (E4: tau >= 0.7).

    Returns:
      () AUC (arXiv:2603.29915, script 9 of the reference).
    """
    r = average_ranks(_vec("score", score))
    pos = jnp.asarray(positive, jnp.float32)
    n1 = jnp.sum(pos)
    n0 = pos.shape[0] - n1
    return (pos @ r - n1 * (n1 + 1) / 2) / (n1 * n0)


def deferral_table(
    u: Any,
    tau: Any,
    nus: Any = E4_NUS,
    *,
    stable_at: float = 0.7,
    m: float = 0.0,
    d: float = 1.0,
) -> dict[str, jax.Array]:
    """E4/E5 (Tables 3-4 of arXiv:2603.29915) on a pool, for every nu.

    Threshold tau_nu = Q_{1-nu}(U) on the pool itself; accepted: U <= tau_nu;
    stable: tau >= `stable_at`.

    Args:
      u: (n,) U per pooled explanation (on the noisy inputs).
      tau: (n,) stability per pooled explanation.
      nus: (V,) deferral fractions.
      stable_at: stability label threshold.
      m, d: the cost model's evaluations (`relative_cost`).

    Returns:
      {"nu", "threshold", "coverage", "precision", "recall", "tau_mean",
      "tau_std", "q"}: (V,) each, plus "auc": () ROC-AUC(-U -> stable).
      Precision is NaN where nothing is accepted.
    """
    u, tau = _vec("u", u), _vec("tau", tau)
    nus = jnp.atleast_1d(_vec("nus", nus))
    thr = calibrate(u, nus)
    acc = (u[None, :] <= thr[:, None]).astype(jnp.float32)  # (V, n)
    stable = (tau >= stable_at).astype(jnp.float32)
    n_acc = jnp.sum(acc, axis=1)
    hit = acc @ stable
    mean = acc @ tau / n_acc
    var = acc @ (tau * tau) / n_acc - mean * mean
    return {
        "nu": nus,
        "threshold": thr,
        "coverage": n_acc / u.shape[0],
        "precision": hit / n_acc,
        "recall": hit / jnp.sum(stable),
        "tau_mean": mean,
        "tau_std": jnp.sqrt(jnp.maximum(var, 0.0)),
        "q": relative_cost(m, d, nus),
        "auc": roc_auc(-u, stable > 0),
    }


def worst_and_mean(s: jax.Array) -> jax.Array:
    """(2,) 10th percentile and mean of a stability set (UC1 summary)."""
    return jnp.stack([jnp.quantile(s, 0.1), jnp.mean(s)])


def uc1_curve(
    u: Any,
    stab_cheap: Any,
    stab_exp: Any,
    fractions: Any,
    key: jax.Array,
    *,
    d_cheap: float,
    d_exp: float,
    m: float = 0.0,
    n_random: int = 20,
    summarize: Callable[[jax.Array], jax.Array] = worst_and_mean,
) -> dict[str, jax.Array]:
    """UC1 routing evaluation: a reconstruction, not from arXiv:2603.29915.

    For each routed fraction r, the samples with U >= Q_{1-r}(U) get the
    expensive explainer (`route`), the rest the cheap one; the mixed
    stabilities are summarised. Random routing sends the same number of
    samples (equal cost) to the expensive explainer, averaged over
    `n_random` draws.

    Args:
      u: (n,) U per sample.
      stab_cheap: (n,) stability of the cheap explanation of each sample.
      stab_exp: (n,) stability of the expensive explanation.
      fractions: (F,) routed fractions r in [0, 1].
      key: PRNG key of the random routings.
      d_cheap, d_exp: evaluations per cheap / expensive explanation.
      m: evaluations for U.
      n_random: random routings per fraction.
      summarize: (n,) mixed stabilities -> (S,) statistics.

    Returns:
      {"fraction": (F,), "routed": (F,) realised fraction, "q": (F,) cost
      relative to explaining all with the expensive explainer,
      "gated": (F, S), "random": (F, S)}.
    """
    u = _vec("u", u)
    cheap, exp = _vec("stab_cheap", stab_cheap), _vec("stab_exp", stab_exp)
    fr = jnp.atleast_1d(_vec("fractions", fractions))
    thr = jnp.quantile(u, 1.0 - fr)
    n = u.shape[0]

    def one(t, r, k):
        routed = route(u, t) & (r > 0)  # r = 0 routes none (Q_1 = max(U))
        count = jnp.sum(routed)
        gated = summarize(jnp.where(routed, exp, cheap))

        def rand(kk):
            rank = jnp.argsort(jnp.argsort(jax.random.uniform(kk, (n,))))
            return summarize(jnp.where(rank < count, exp, cheap))

        rnd = jnp.mean(jax.vmap(rand)(jax.random.split(k, n_random)), axis=0)
        return count / n, gated, rnd

    keys = jax.random.split(key, fr.shape[0])
    r, gated, rnd = jax.vmap(one)(thr, fr, keys)
    q = m / d_exp + (1.0 - r) * d_cheap / d_exp + r
    return {"fraction": fr, "routed": r, "q": q, "gated": gated, "random": rnd}
