"""The gating paper's experiments on one dataset, end to end.

`run_dataset` fits the models of a dataset (`models`) and runs, as the study
asks: E1 (Table 2), E2 (Figure 2's XEC cells, natural and adversarial
perturbations), E3 (Figure 3's strata), the mixed-noise pool with E4 (Table
3) and E5 (Table 4), the faithfulness groups (Figure 4), the noise-feature
focus (E7, Figure 8), the reference code's extra analyses (threshold
calibration, global approximation, contamination recovery) and the UC1
routing curve (a reconstruction). Each experiment is a library function of
`experiments`, `deferral` and `gating`; this module only wires the models'
estimators and explainers into them and gathers rows and arrays
(Mikriukov, Montavon & Hoehne, arXiv:2603.29915, sections 4-5).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxcxai.data.tabular import TabularSplits
from jaxcxai.uncertainty import (
    analyses,
    attacks,
    correlation,
    deferral,
    experiments,
    gating,
)
from jaxcxai.uncertainty import models as M
from jaxcxai.uncertainty.analyses import subset
from jaxcxai.uncertainty.perturb import (
    GAUSSIAN_LEVELS,
    MISSING_LEVELS,
    PERMUTATION_LEVELS,
    gaussian_noise,
)
from jaxcxai.uncertainty.quality import e1_model_quality
from jaxcxai.uncertainty.study import NATURAL, GatingStudy, combos

__all__ = ["LEVELS", "PR_GRID", "run_dataset", "subset"]

LEVELS = {
    "gaussian": GAUSSIAN_LEVELS,
    "missing": MISSING_LEVELS,
    "permutation": PERMUTATION_LEVELS,
    "bim": attacks.EPSILONS,
    "pgd": attacks.EPSILONS,
    "cw": attacks.CW_CONSTANTS,
}
PR_GRID = tuple(round(0.05 * k, 2) for k in range(0, 20))  # nu for the curves


def _log(progress, role, what, t0):
    if progress:
        print(f"[gating] {role}: {what} ({time.perf_counter() - t0:.0f} s)", flush=True)


def _e1(fitted, st, key):
    s, rows, arrays = fitted.splits, [], {}
    for i, m in enumerate(st.models.names):
        k = jax.random.fold_in(key, i)
        est = M.uncertainty_fn(fitted, m)(s.x_test, k)
        out, r = e1_model_quality(
            s.y_test, est.probs, est.epistemic, jax.random.fold_in(k, 1),
            probs_plain=M.plain_probs(fitted, m, s.x_test), dataset=s.name, model=m,
        )  # fmt: skip
        rows += r
        arrays[f"e1.{m}.u_test"] = np.asarray(est.epistemic)
    return rows, arrays


def _adversarial(fitted, kind, x, y, key):
    module, variables = fitted.mlp
    f = lambda z: module.apply(variables, z)[0]
    return attacks.attack_sweep(f, x, y, LEVELS[kind], kind, key)


def _e2(fitted, st, x, y, key, progress, t0):
    cells, arrays = [], {}
    name = fitted.splits.name
    for i, (m, e) in enumerate(combos(st)):
        u_fn, x_fn = (
            M.uncertainty_fn(fitted, m),
            M.explain_fn(fitted, m, e, st.explainers),
        )
        for j, kind in enumerate(st.e2.perturbations):
            if kind not in NATURAL and m != "mlp":
                continue  # the paper attacks the MLP only
            k = jax.random.fold_in(jax.random.fold_in(key, i), j)
            x_pert = None if kind in NATURAL else _adversarial(fitted, kind, x, y, k)
            out, cell = experiments.e2_correlation(
                x, x_fn, u_fn, k, kind=kind if kind in NATURAL else "gaussian",
                levels=LEVELS[kind], x_pert=x_pert, labels=(name, m, e, kind),
            )  # fmt: skip
            cells += cell
            arrays[f"e2.{m}.{e}.{kind}.tau"] = np.asarray(out["tau"])
        _log(progress, fitted.splits.role, f"E2 {m} + {e}", t0)
    return cells, arrays


def _e3(fitted, st, x, key):
    u = M.uncertainty_fn(fitted, "rf")(x, key).epistemic
    x_fn = M.explain_fn(fitted, "rf", "treeshap", st.explainers)
    out, rows = experiments.e3_stratified_stability(
        x, u, x_fn, key, sigmas=st.e3.sigmas, n_seeds=st.e3.num_seeds,
        per_stratum=min(st.e3.per_stratum, len(x) // 3), dataset=fitted.splits.name,
    )  # fmt: skip
    arrays = {f"e3.{k}": np.asarray(out[k]) for k in ("tau", "stratum", "picked")}
    arrays["e3.u"] = np.asarray(u)
    return rows, arrays


def _pools(fitted, st, x, key):
    """E4 (first configuration with rf:treeshap, else the first) and E5."""
    name, t3, t4, curves, arrays = fitted.splits.name, [], [], {}, {}
    for i, cfg in enumerate(st.e4.configs):
        m, e = cfg.split(":")
        pool = deferral.mixed_noise_pool(
            x, M.explain_fn(fitted, m, e, st.explainers), M.uncertainty_fn(fitted, m),
            jax.random.fold_in(key, i), sigmas=st.e4.sigmas,
            n_versions=st.e4.num_versions,
        )  # fmt: skip
        u, tau = np.asarray(pool["u"]), np.asarray(pool["tau"])
        arrays[f"pool.{cfg}.u"], arrays[f"pool.{cfg}.tau"] = u, tau
        md = M.cost(m, e, st.models, st.explainers)
        if i == 0:
            _, t3 = deferral.e4_deferral(u, tau, nus=st.e4.nus, dataset=name)
        _, rows = deferral.e5_cost(
            u, tau, m=md[0], d=md[1], nus=st.e4.cost_nus, dataset=name, config=cfg
        )
        t4 += rows
        grid, _ = deferral.e5_cost(u, tau, m=md[0], d=md[1], nus=PR_GRID)
        curves[cfg] = {
            k: np.asarray(grid[k], np.float64).tolist()
            for k in ("nu", "precision", "recall", "tau_mean", "q")
        }
        curves[cfg]["auc"] = float(grid["auc"])
    return t3, t4, curves, arrays


def _faithfulness(fitted, st, x, key):
    rows, s = [], fitted.splits
    med = np.median(s.x_train, axis=0).astype(np.float32)
    fs = st.faithfulness
    for i, cfg in enumerate(fs.configs):
        m, e = cfg.split(":")
        k = jax.random.fold_in(key, i)
        est = M.uncertainty_fn(fitted, m)(x, k)
        phi = M.explain_fn(fitted, m, e, st.explainers)(x, k)
        proba = _uq_proba(fitted, m, k)
        _, r = deferral.faithfulness_groups(
            est.epistemic, x, phi, proba, med, k, group_size=min(fs.group_size, len(x) // 3),
            n_random=fs.num_random, ks=fs.ks, dataset=s.name, model=cfg,
        )  # fmt: skip
        rows += r
    return rows


def _uq_proba(fitted, model: str, key) -> Callable[[Any], Any]:
    """The UQ-averaged `predict_proba` (section 5.5's log-odds)."""
    u_fn = M.uncertainty_fn(fitted, model)
    return lambda z: np.asarray(u_fn(np.asarray(z, np.float32), key).probs)


def _uc1(fitted, st, x, key):
    """UC1 (a reconstruction): route the uncertain rows from IG to SmoothIG."""
    k_noise, k_u, k_rand = jax.random.split(key, 3)
    xn = gaussian_noise(x, st.uc1.sigma, k_noise)
    stab = {}
    for e in ("ig", "sig"):
        fn = M.explain_fn(fitted, "mlp", e, st.explainers)
        phi = fn(np.concatenate([x, np.asarray(xn)]), k_u)
        stab[e] = correlation.sample_stability(phi[: len(x)], phi[len(x) :][None])[0]
    u = M.uncertainty_fn(fitted, "mlp")(x, k_u).epistemic
    ex = st.explainers
    out = gating.uc1_curve(
        u, stab["ig"], stab["sig"], st.uc1.fractions, k_rand,
        d_cheap=ex.ig_steps, d_exp=ex.sig_n * ex.ig_steps, m=st.models.mc_passes,
        n_random=st.uc1.num_random,
    )  # fmt: skip
    return {k: np.asarray(v, np.float64).tolist() for k, v in out.items()}


def run_dataset(
    splits: TabularSplits, st: GatingStudy, key: jax.Array, progress: bool = False
) -> tuple[dict, dict[str, np.ndarray]]:
    """Every tabular experiment of `st` on one dataset.

    Args:
      splits: the dataset (`jaxcxai.data.tabular` / `jaxcxai.data.uci`).
      st: the study settings.
      key: PRNG key of this dataset.
      progress: print a line per experiment.

    Returns:
      (results, arrays): results {"name", "role", "sizes", "table2",
      "figure2", "figure3", "table3", "table4", "curves", "faithfulness",
      "focus", "extras", "uc1", "seconds"} (rows of `tables`), arrays for `arrays.npz` (names
      prefixed by experiment).
    """
    t0 = time.perf_counter()
    role, ex = splits.role, set(st.experiments)
    names = ("fit", "e1", "e2", "e3", "e4", "faith", "uc1", "focus", "extras")
    keys = dict(zip(names, jax.random.split(key, len(names))))
    fitted = M.fit_models(splits, st.models, keys["fit"])
    seconds = {"fit": time.perf_counter() - t0}
    _log(progress, role, "models fitted", t0)
    res: dict[str, Any] = {
        "name": splits.name, "role": role, "num_features": splits.num_features,
        "num_classes": splits.num_classes,
        "sizes": [len(splits.y_train), len(splits.y_val), len(splits.y_test)],
    }  # fmt: skip
    arrays: dict[str, np.ndarray] = {}

    def timed(name, fn):
        t = time.perf_counter()
        out = fn()
        seconds[name] = time.perf_counter() - t
        _log(progress, role, name, t0)
        return out

    if "e1" in ex:
        res["table2"], a = timed("e1", lambda: _e1(fitted, st, keys["e1"]))
        arrays |= a
    x_test, y_test = splits.x_test, splits.y_test
    if "e2" in ex:
        idx = subset(x_test, st.e2.num_samples, st.data.seed)
        res["figure2"], a = timed(
            "e2",
            lambda: _e2(
                fitted, st, x_test[idx], y_test[idx], keys["e2"], progress, t0
            ),  # fmt: skip
        )
        arrays |= a
    if "e3" in ex and role in st.e3.roles:
        idx = subset(x_test, st.e3.num_samples, st.data.seed)
        res["figure3"], a = timed(
            "e3", lambda: _e3(fitted, st, x_test[idx], keys["e3"])
        )
        arrays |= a
    idx4 = subset(x_test, st.e4.num_samples, st.data.seed)
    if "e4" in ex and role in st.e4.roles:
        out = timed("e4_e5", lambda: _pools(fitted, st, x_test[idx4], keys["e4"]))
        res["table3"], res["table4"], res["curves"], a = out
        arrays |= a
    if "faithfulness" in ex:
        res["faithfulness"] = timed(
            "faithfulness",
            lambda: _faithfulness(fitted, st, x_test[idx4], keys["faith"]),
        )
    if "focus" in ex and role in st.focus.roles:
        res["focus"] = timed(
            "focus", lambda: analyses.focus_study(splits, st, keys["focus"])
        )
    if "extras" in ex and role in st.extras.roles:
        res["extras"] = timed(
            "extras",
            lambda: analyses.reference_extras(fitted, st, x_test, keys["extras"]),
        )
    if "uc1" in ex:
        idx = subset(x_test, st.e2.num_samples, st.data.seed)
        res["uc1"] = timed("uc1", lambda: _uc1(fitted, st, x_test[idx], keys["uc1"]))
    res["seconds"] = seconds
    return res, {f"{role}.{k}": v for k, v in arrays.items()}
