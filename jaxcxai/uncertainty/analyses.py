"""Further analyses of the gating study on one dataset: the noise-feature
focus experiment (E7) and the reference code's extra scripts.

Mikriukov, Montavon & Hoehne, arXiv:2603.29915: E7 is App. C (Figure 8);
threshold calibration, global approximation and contamination recovery are
scripts 8, 10 and 11 of the authors' code, not claims of the paper's text.
`pipeline.run_dataset` calls these as the study asks.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jaxcxai.data.tabular import TabularSplits
from jaxcxai.uncertainty import calibration, recovery
from jaxcxai.uncertainty import focus as F
from jaxcxai.uncertainty import models as M
from jaxcxai.uncertainty.perturb import gaussian_noise
from jaxcxai.uncertainty.study import GatingStudy

__all__ = ["focus_study", "reference_extras", "subset"]


def subset(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of min(n, len(x)) rows drawn without replacement (seed)."""
    n = min(n, len(x))
    return np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))


def focus_study(splits: TabularSplits, st: GatingStudy, key: jax.Array) -> list[dict]:
    """E7 (App. C, Figure 8): each `focus.configs` model retrained per noise
    ratio, its lowest / highest / random-U groups' SignalMass.

    Returns:
      `focus.focus_groups` rows of every (configuration, ratio).
    """
    fs, rows = st.focus, []
    idx = subset(splits.x_test, fs.num_samples, st.data.seed)
    for i, cfg in enumerate(fs.configs):
        m, e = cfg.split(":")
        for j, r in enumerate(fs.rf_ratios if m == "rf" else fs.lr_ratios):
            k = jax.random.fold_in(jax.random.fold_in(key, i), j)
            aug = F.add_noise_features(splits, r, F.FOCUS_SEED)
            settings = dataclasses.replace(st.models, names=(m,))
            fitted = M.fit_models(aug, settings, k)
            x = aug.x_test[idx]
            u = M.uncertainty_fn(fitted, m)(x, k).epistemic
            phi = M.explain_fn(fitted, m, e, st.explainers)(x, k)
            _, r_rows = F.focus_groups(
                u, phi, splits.num_features, k, group_size=min(fs.group_size, len(x) // 3),
                n_random=fs.num_random, dataset=splits.name, model=cfg, ratio=r,
            )  # fmt: skip
            rows += r_rows
    return rows


def reference_extras(
    fitted: M.Fitted, st: GatingStudy, x_test: np.ndarray, key: jax.Array
) -> dict:
    """The reference code's scripts 8, 10 and 11 on `extras.config`.

    Script 8: stability labels from `calib_draws` noisy copies at
    `calib_sigma`, the coverage sweep and its best F1 per metric
    (`calibration`); script 10: Spearman of the lowest / highest-U rows'
    global importance with all rows' (`recovery.global_approximation`);
    script 11: the `base` lowest-U rows contaminated by the highest-U rows
    plus `cont_sigma` noise, naive / random / filtered (`recovery`).

    Returns:
      {"config", "num_samples", "calibration" {metric: sweep lists, "auc",
      "best_coverage", "best_f1", "counts" [stable, unstable, ambiguous]},
      "approximation" {"fracs", "k", "rho_low", "rho_high"},
      "contamination" {(R,) lists of `recovery.contamination_recovery`,
      "base", "keep"}}.
    """
    ex = st.extras
    m, e = ex.config.split(":")
    u_fn, x_fn = M.uncertainty_fn(fitted, m), M.explain_fn(fitted, m, e, st.explainers)
    x = x_test[subset(x_test, ex.num_samples, st.data.seed)]
    n, d = x.shape
    k_u, k_cal, k_cont, k_rand = jax.random.split(key, 4)
    u, phi = np.asarray(u_fn(x, k_u).epistemic), np.asarray(x_fn(x, k_u))
    noisy = np.concatenate([
        np.asarray(gaussian_noise(x, ex.calib_sigma, jax.random.fold_in(k_cal, i)))
        for i in range(ex.calib_draws)
    ])  # fmt: skip
    phi_n = np.asarray(x_fn(noisy, k_cal)).reshape(ex.calib_draws, n, d)
    cal = calibration.threshold_calibration(u, phi, phi_n, coverages=ex.coverages)
    approx = recovery.global_approximation(u, phi, ex.fracs)
    # Script 11: the lowest-U rows as the base batch, the highest-U rows plus
    # noise as contaminants, one noisy copy per contaminant slot.
    base = min(ex.base, n // 2)
    order = np.argsort(u, kind="stable")
    lo, hi = order[:base], order[n - base :]
    slots = int(round(max(ex.rates) * base)) or 1
    xc = x[hi][recovery.contaminant_rows(slots, base)]
    xc = np.asarray(gaussian_noise(xc, ex.cont_sigma, k_cont))
    rec = recovery.contamination_recovery(
        u[lo], phi[lo], np.asarray(u_fn(xc, k_cont).epistemic), np.asarray(x_fn(xc, k_cont)),
        None, k_rand, rates=ex.rates, keep=min(ex.keep, base), n_random=ex.num_random,
    )  # fmt: skip
    lst = lambda v: np.asarray(v, np.float64).tolist()
    return {
        "config": ex.config,
        "num_samples": int(n),
        "calibration": {
            name: {
                "coverage": lst(c["sweep"]["coverage"]),
                "f1": lst(c["sweep"]["f1"]),
                "precision": lst(c["sweep"]["precision"]),
                "recall": lst(c["sweep"]["recall"]),
                "auc": float(c["sweep"]["auc"]),
                "best_coverage": float(c["best_coverage"]),
                "best_f1": float(c["best_f1"]),
                "counts": [int(c["n_stable"]), int(c["n_unstable"]), int(c["n_ambiguous"])],
            }
            for name, c in cal.items()
        },
        "approximation": {k: lst(approx[k]) for k in ("fracs", "k", "rho_low", "rho_high")},
        "contamination": {
            k: lst(rec[k])
            for k in ("rates", "n_contaminants", "rho_naive", "rho_random", "rho_random_std",
                      "rho_filtered", "recovery", "recovery_rate", "contaminant_share")
        } | {"base": int(base), "keep": int(min(ex.keep, base))},
    }  # fmt: skip
