"""E4, E5 and faithfulness of the gating paper (arXiv:2603.29915, section 5).

- `mixed_noise_pool`: the pool of (U, tau) over mixed Gaussian noise levels
  that Tables 3 and 4 are computed from.
- E4 (Table 3): precision and recall of "stable" explanations among the
  accepted samples per deferral rate nu.
- E5 (Table 4): stability of the accepted samples and the cost q at nu.
- `faithfulness_groups` (Figure 4, section 5.5): log-odds removal shift of
  the lowest-, highest- and random-U groups.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.checks import check_finite
from jaxcxai.metrics.explanations.faithfulness import removal_shift
from jaxcxai.uncertainty import correlation, gating, tables
from jaxcxai.uncertainty.experiments import E4_SIGMAS, E5_NUS, _explain_and_u
from jaxcxai.uncertainty.perturb import perturb_sweep

__all__ = [
    "e4_deferral",
    "e5_cost",
    "faithfulness_groups",
    "u_groups",
    "mixed_noise_pool",
]

Fn = Callable[[jax.Array, jax.Array], Any]


def mixed_noise_pool(
    x: Any,
    explain_fn: Fn,
    uncertainty_fn: Fn,
    key: jax.Array,
    *,
    sigmas: Sequence[float] = E4_SIGMAS,
    n_versions: int = 5,
    order: str = "rank",
) -> dict[str, jax.Array]:
    """The pooled (U, tau) population of E4-E5 (arXiv:2603.29915, 5.4).

    For each sigma, `n_versions` Gaussian-noisy copies of every sample; U_epi
    is computed on the noisy inputs and tau against the clean explanation,
    both averaged over the versions.

    Args:
      x: (n, d) test samples (the paper: 500).
      explain_fn: `(N, d), key -> (N, d)` phi of the predicted class.
      uncertainty_fn: `(N, d), key -> (N,)` U_epi (or an `Estimate`).
      key: PRNG key.
      sigmas: (L,) noise levels (the paper: 0.02 k, k = 1..10).
      n_versions: noisy copies per sample and level (the paper: 5).
      order: see `correlation.sample_stability`.

    Returns:
      {"u": (L n,), "tau": (L n,), "sigma": (L n,)}, level-major.
    """
    check_finite({"x": x})
    x = jnp.asarray(x, jnp.float32)
    k_pert, k_run = jax.random.split(key)
    x_pert = perturb_sweep(x, "gaussian", sigmas, k_pert, n_versions)
    r = _explain_and_u(x, x_pert, explain_fn, uncertainty_fn, k_run)
    s = jnp.asarray(sigmas, jnp.float32)
    return _pool_core(r["phi"], r["phi_pert"], r["u_pert"], s, order)


@partial(jax.jit, static_argnums=4)
def _pool_core(phi, phi_pert, u_pert, sigmas, order):
    tau = correlation.sample_stability(phi, phi_pert, order=order)
    return {
        "u": jnp.mean(u_pert, axis=1).reshape(-1),
        "tau": jnp.mean(tau, axis=1).reshape(-1),
        "sigma": jnp.repeat(sigmas, phi.shape[0]),
    }


def _deferral(u, tau, nus, stable_at, m, d):
    check_finite({"u": u, "tau": tau, "nus": nus})
    nus = np.atleast_1d(np.asarray(nus, np.float64))
    if np.any((nus < 0) | (nus > 1)):
        raise ValueError(f"nus must lie in [0, 1], got {nus}")
    return _deferral_core(
        jnp.asarray(u, jnp.float32),
        jnp.asarray(tau, jnp.float32),
        jnp.asarray(nus, jnp.float32),
        stable_at,
        m,
        d,
    )


@partial(jax.jit, static_argnums=(3, 4, 5))
def _deferral_core(u, tau, nus, stable_at, m, d):
    return gating.deferral_table(u, tau, nus, stable_at=stable_at, m=m, d=d)


def e4_deferral(
    u: Any,
    tau: Any,
    *,
    nus: Sequence[float] = (0.9, 0.7, 0.5, 0.3, 0.1),
    stable_at: float = 0.7,
    dataset: str = "",
) -> tuple[dict[str, jax.Array], list[dict]]:
    """E4, recalling high-quality explanations (Table 3, section 5.4).

    tau_nu = Q_{1-nu}(U) on the pool; accepted: U <= tau_nu; stable:
    tau >= 0.7 (`gating.deferral_table`).

    Args:
      u: (P,) pooled U_epi (`mixed_noise_pool`).
      tau: (P,) pooled stability.
      nus: (V,) deferral rates (Table 3: 90 % .. 10 %).
      stable_at: the stable label's threshold.
      dataset: the table's label.

    Returns:
      `gating.deferral_table`'s arrays ((V,) "precision", "recall", ...,
      () "auc") and Table 3's rows (`tables.table3_rows`).
    """
    out = _deferral(u, tau, nus, stable_at, 0.0, 1.0)
    return out, tables.table3_rows(dataset, out)


def e5_cost(
    u: Any,
    tau: Any,
    *,
    m: float,
    d: float,
    nus: Sequence[float] = E5_NUS,
    dataset: str = "",
    config: str = "",
) -> tuple[dict[str, jax.Array], list[dict]]:
    """E5, stability and relative cost at each nu (Table 4, section 5.4).

    q = m/d + (1 - nu) (Eq. 2-3): RF + TreeSHAP has m/d ~ 0, MC dropout
    (m = 50) + LIME (d = 5000) has m/d = 0.01.

    Args:
      u, tau: (P,) pooled U_epi and stability (`mixed_noise_pool`).
      m: model evaluations for U_epi.
      d: model evaluations per explanation.
      nus: (V,) deferral rates (Table 4: 70, 50, 30, 0 %).
      dataset, config: the table's labels.

    Returns:
      `gating.deferral_table`'s arrays ((V,) "tau_mean", "tau_std", "q",
      ...) and Table 4's rows (`tables.table4_rows`).
    """
    out = _deferral(u, tau, nus, 0.7, float(m), float(d))
    return out, tables.table4_rows(dataset, config, out)


def u_groups(
    u: Any, key: jax.Array, group_size: int, n_random: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The paper's lowest / highest / random groups of U_epi (section 5.5).

    Args:
      u: (n,) U_epi, n >= 3 group_size.
      key: PRNG key of the random draws.
      group_size: samples per group (the paper: 50).
      n_random: random draws from the samples in neither extreme group (5).

    Returns:
      (g,) indices of the lowest-U and of the highest-U samples (stable
      sort), and (n_random, g) indices of the random draws.
    """
    u = np.asarray(u, np.float32)
    n = u.shape[0]
    if n < 3 * group_size:
        raise ValueError(f"need >= {3 * group_size} samples, got {n}")
    order = np.argsort(u, kind="stable")
    rest = jnp.asarray(order[group_size : n - group_size])
    keys = jax.random.split(key, n_random)
    rand = jax.vmap(lambda k: jax.random.permutation(k, rest)[:group_size])(keys)
    return jnp.asarray(order[:group_size]), jnp.asarray(order[n - group_size :]), rand


def faithfulness_groups(
    u: Any,
    x: Any,
    phi: Any,
    predict_proba: Callable[[Any], Any],
    replacement: Any,
    key: jax.Array,
    *,
    group_size: int = 50,
    n_random: int = 5,
    ks: Sequence[int] = (1, 2, 3, 4, 5),
    dataset: str = "",
    model: str = "",
) -> tuple[dict[str, jax.Array], list[dict]]:
    """Log-odds removal shift of the lowest/highest/random-U groups.

    arXiv:2603.29915, section 5.5 (Figure 4): for each sample, the top-k
    features by |phi| are set to `replacement` (k = 1..5) and the shift
    MSE_k of the log-odds is measured (`removal_shift`; one
    `predict_proba` call on all samples). A sample's shift is its mean over
    k. Groups: the `group_size` lowest-U and highest-U samples (stable
    sort) and `n_random` draws of `group_size` from the rest; the random
    group's mean and std pool its draws' samples (a reconstruction: the
    paper reports "random-50 x 5" without saying how the repeats combine).

    Args:
      u: (n,) U_epi.
      x: (n, d) samples.
      phi: (n, d) their explanations (the paper: TreeSHAP for RF,
        KernelSHAP for LR).
      predict_proba: (B, d) -> (B, K) probabilities (JAX or NumPy).
      replacement: (d,) training-set per-feature median.
      key: PRNG key of the random groups.
      group_size: samples per group (the paper: 50).
      n_random: random draws (the paper: 5).
      ks: numbers of removed features.
      dataset, model: the table's labels.

    Returns:
      Arrays {"shift" (n, len(ks)), "low" (g,), "high" (g,), "random"
      (n_random, g) indices, "mean"/"std" (3,) over each group's samples
      (low, high, random), "mean_k" (3, len(ks))} and one row per group
      (`tables.faithfulness_rows`).
    """
    check_finite({"u": u, "x": x, "phi": phi, "replacement": replacement})
    shift = removal_shift(predict_proba, x, phi, replacement, ks)
    low, high, rand = u_groups(u, key, group_size, n_random)
    groups = [low, high, rand.reshape(-1)]
    per = jnp.mean(shift, axis=1)
    out = {
        "shift": shift,
        "low": jnp.asarray(low),
        "high": jnp.asarray(high),
        "random": rand,
        "mean": jnp.stack([jnp.mean(per[g]) for g in groups]),
        "std": jnp.stack([jnp.std(per[g]) for g in groups]),
        "mean_k": jnp.stack([jnp.mean(shift[g], axis=0) for g in groups]),
    }
    rows = tables.faithfulness_rows(dataset, model, out, ("low", "high", "random"))
    return out, rows
