"""The gating paper's experiments E2 and E3, and what E1-E5 share.

Uncertainty gating (Mikriukov, Montavon & Hoehne, arXiv:2603.29915,
sections 4-5) evaluates epistemic uncertainty U_epi as a proxy for
explanation reliability. Each function here runs one experiment on arrays
and callables and returns `(arrays, table)`: a dict of arrays and a list of
row dicts in the paper's layout (`jaxcxai.uncertainty.tables`). Models are
fitted elsewhere; the experiments take

- `uncertainty_fn(x (N, d), key) -> (N,) U_epi` (or an `Estimate`), e.g.
  `lambda x, k: forest_uncertainty(forest, x)` or MC dropout with `k`;
- `explain_fn(x (N, d), key) -> (N, d) phi` of each row's predicted class
  (section 4.3), e.g. TreeSHAP, KernelSHAP or LIME with `k`.

Every perturbed level and realisation is stacked into one (N, d) batch, so
each explainer and estimator is called once per experiment (one batched
program for the JAX explainers). Stability is the tie-aware Kendall tau-b
of |phi| ranks (Eq. 5; `correlation.sample_stability`).

- E1 (Table 2): `quality.e1_model_quality`.
- E2 (Figure 2): XD and EG per level, XEC across levels (Eq. 7-9).
- E3 (Figure 3): three U_epi strata, tau averaged over noise seeds, the
  p10-vs-p90 Student t-test and its pass rule.
- E4/E5 (Tables 3-4) and faithfulness (Figure 4): `deferral`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from jaxcxai.checks import check_finite
from jaxcxai.uncertainty import correlation, tables
from jaxcxai.uncertainty.entropy import Estimate
from jaxcxai.uncertainty.perturb import GAUSSIAN_LEVELS, perturb_sweep

__all__ = [
    "E3_SIGMAS",
    "E4_SIGMAS",
    "E5_NUS",
    "e2_correlation",
    "e3_stratified_stability",
]

E3_SIGMAS = (0.01, 0.05, 0.1)  # section 5.3
E4_SIGMAS = tuple(round(0.02 * k, 2) for k in range(1, 11))  # section 5.4
E5_NUS = (0.7, 0.5, 0.3, 0.0)  # Table 4

Fn = Callable[[jax.Array, jax.Array], Any]


def _epi(out: Any) -> jax.Array:
    return jnp.asarray(out.epistemic if isinstance(out, Estimate) else out, jnp.float32)


def _explain_and_u(x, x_pert, explain_fn, uncertainty_fn, key):
    """phi and U of the clean (n, d) and perturbed (..., n, d) inputs, each
    from one call on the stacked rows."""
    n, d = x.shape
    lead = x_pert.shape[:-2]
    rows = jnp.concatenate([x, x_pert.reshape(-1, d)])
    k_phi, k_u = jax.random.split(key)
    out = {}
    if explain_fn is not None:
        phi = jnp.asarray(explain_fn(rows, k_phi), jnp.float32)
        check_finite({"explain_fn(x)": phi})
        out["phi"], out["phi_pert"] = phi[:n], phi[n:].reshape(*lead, n, d)
    if uncertainty_fn is not None:
        u = _epi(uncertainty_fn(rows, k_u))
        check_finite({"uncertainty_fn(x)": u})
        out["u"], out["u_pert"] = u[:n], u[n:].reshape(*lead, n)
    return out


@partial(jax.jit, static_argnums=(4, 5))
def _e2_core(phi, phi_pert, u, u_pert, semantics, order):
    tau = correlation.sample_stability(phi, phi_pert, order=order)
    xd = jnp.mean(tau.reshape(tau.shape[0], -1), axis=1)
    return {
        "xd": xd,
        "eg": correlation.epistemic_gain(u, u_pert),
        "tau": tau,
        "u_clean": u,
        "u_pert": u_pert,
        "xec": correlation.xec(xd, u, u_pert, semantics=semantics),
    }


def e2_correlation(
    x: Any,
    explain_fn: Fn,
    uncertainty_fn: Fn,
    key: jax.Array,
    *,
    kind: str = "gaussian",
    levels: Sequence[float] = GAUSSIAN_LEVELS,
    n_realisations: int = 1,
    x_pert: Any = None,
    semantics: str = "paper",
    order: str = "rank",
    labels: Sequence[str] = ("", "", "", ""),
) -> tuple[dict[str, jax.Array], list[dict]]:
    """E2, the XAI-UQ correlation of one heatmap cell (Figure 2).

    arXiv:2603.29915, section 5.2: XD(l) = mean tau(phi(x), phi(x~^(l)))
    (Eq. 7), EG(l) = sum U(x~^(l)) / sum U(x) (Eq. 8), XEC = Spearman
    rho(XD, EG) across the levels (Eq. 9). All L x R perturbed copies and
    the clean set go through `explain_fn` and `uncertainty_fn` in one call
    each (the UQ and XAI sweeps are paired sample-wise, unlike the
    reference code's; only level means enter XEC).

    Args:
      x: (n, d) clean samples (the paper: n = min(100, |test|)).
      explain_fn: `(N, d), key -> (N, d)` phi of the predicted class.
      uncertainty_fn: `(N, d), key -> (N,)` U_epi (or an `Estimate`).
      key: PRNG key (perturbations, explainer, estimator).
      kind: "gaussian", "missing" or "permutation" (`perturb_sweep`).
      levels: (L,) levels of `kind`.
      n_realisations: R draws per level, averaged into XD and EG.
      x_pert: optional precomputed (L, R, n, d) or (L, n, d) perturbed
        inputs (e.g. adversarial attacks); then `kind` is only a label.
      semantics, order: see `correlation.xec` / `sample_stability`.
      labels: (dataset, model, explainer, perturbation) of the cell.

    Returns:
      Arrays {"levels" (L,), "xd" (L,), "eg" (L,), "tau" (L, R, n),
      "u_clean" (n,), "u_pert" (L, R, n), "xec" ()} and the one-cell table
      (`tables.figure2_cell`).

    Raises:
      ValueError: `x_pert` does not match `levels` and `x`.
    """
    check_finite({"x": x})
    x = jnp.asarray(x, jnp.float32)
    k_pert, k_run = jax.random.split(key)
    if x_pert is None:
        x_pert = perturb_sweep(x, kind, levels, k_pert, n_realisations)
    else:
        check_finite({"x_pert": x_pert})
        x_pert = jnp.asarray(x_pert, jnp.float32)
        x_pert = x_pert[:, None] if x_pert.ndim == 3 else x_pert
        if x_pert.shape[0] != len(levels) or x_pert.shape[2:] != x.shape:
            raise ValueError(
                f"x_pert must be ({len(levels)}, R, {x.shape[0]}, {x.shape[1]}), "
                f"got {x_pert.shape}"
            )
    r = _explain_and_u(x, x_pert, explain_fn, uncertainty_fn, k_run)
    out = {
        "levels": jnp.asarray(levels, jnp.float32),
        **_e2_core(r["phi"], r["phi_pert"], r["u"], r["u_pert"], semantics, order),
    }
    return out, [tables.figure2_cell(*labels, out)]


@partial(jax.jit, static_argnums=(5, 6, 7, 8))
def _e3_core(phi, phi_pert, u, labels, picked, q, min_delta, alpha, order):
    tau = correlation.sample_stability(phi, phi_pert, order=order)
    tau = jnp.mean(tau, axis=1)  # (S, n), averaged over the seeds
    flat = picked.reshape(-1)

    def one(t):
        summ = correlation.stratum_summary(t[flat], labels[flat], 3)
        test = correlation.extreme_groups_ttest(
            u, t, q=q, min_delta=min_delta, alpha=alpha
        )
        return {"stratum_mean": summ["mean"], "stratum_std": summ["std"]} | dict(
            test._asdict()
        )

    return {"tau": tau, **jax.vmap(one)(tau)}


def e3_stratified_stability(
    x: Any,
    u_clean: Any,
    explain_fn: Fn,
    key: jax.Array,
    *,
    sigmas: Sequence[float] = E3_SIGMAS,
    n_seeds: int = 10,
    per_stratum: int = 50,
    q: float = 0.1,
    min_delta: float = 0.15,
    alpha: float = 0.05,
    order: str = "rank",
    dataset: str = "",
) -> tuple[dict[str, jax.Array], list[dict]]:
    """E3, stratified stability (Figure 3 of arXiv:2603.29915, section 5.3).

    The n samples are split into three equal-frequency U_epi strata
    (`correlation.strata`); `per_stratum` random samples per stratum are
    summarised. For each sigma, every sample's explanation is compared with
    those of `n_seeds` Gaussian-noisy copies (the Gaussian noise of section
    4.4, std taken on all n samples; seed s uses realisation s of
    `perturb_sweep`), tau averaged over the seeds. The p10-vs-p90 Student
    t-test (`correlation.extreme_groups_ttest`) runs on all n samples
    (the paper: 500, so 50 per group).

    Args:
      x: (n, d) test samples.
      u_clean: (n,) U_epi of the clean samples.
      explain_fn: `(N, d), key -> (N, d)` phi of the predicted class.
      key: PRNG key (noise, stratified draw, explainer).
      sigmas: (S,) noise levels (the paper: 0.01, 0.05, 0.1).
      n_seeds: noise seeds averaged per sample (the paper: 10).
      per_stratum: samples summarised per stratum (the paper: 50).
      q, min_delta, alpha: the t-test's tails and pass rule (Delta tau >
        0.15 and p < 0.05).
      order: see `correlation.sample_stability`.
      dataset: the table's label.

    Returns:
      Arrays {"sigmas" (S,), "stratum" (n,), "picked" (3, per_stratum),
      "tau" (S, n) seed-averaged, "stratum_mean"/"stratum_std" (S, 3) over
      the picked samples, "delta"/"t"/"p"/"passed" (S,)} and one row per
      sigma (`tables.figure3_rows`).
    """
    check_finite({"x": x, "u_clean": u_clean})
    x = jnp.asarray(x, jnp.float32)
    u = jnp.asarray(u_clean, jnp.float32)
    k_pert, k_pick, k_run = jax.random.split(key, 3)
    x_pert = perturb_sweep(x, "gaussian", sigmas, k_pert, n_seeds)
    r = _explain_and_u(x, x_pert, explain_fn, None, k_run)
    labels = correlation.strata(u, 3)
    picked = correlation.stratified_sample(labels, k_pick, per_stratum, 3)
    out = {
        "sigmas": jnp.asarray(sigmas, jnp.float32),
        "stratum": labels,
        "picked": picked,
        **_e3_core(
            r["phi"], r["phi_pert"], u, labels, picked, q, min_delta, alpha, order
        ),
    }
    return out, tables.figure3_rows(dataset, out)
