"""Scoring the tabular explanations: removal shift, stability, randomisation.

For every (model, method) of `tabular` on the same held-out rows:
- log-odds removal shift (uncertainty gating, arXiv 2603.29915, section
  5.5): MSE over classes of the log-odds change after setting the top-k
  features by |phi| to the training median, k in `removal_ks`; higher =
  more faithful;
- seed stability of the sampled methods: Kendall tau-b of |phi| ranks
  between two keys, per row;
- cascading randomisation of the MLP's layers (Adebayo et al. 2018):
  Spearman rho of |phi| ranks to the trained model's phi, per row;
- agreement between methods: mean Spearman rho of |phi| ranks per pair.
A uniform random phi ("random") is the control of every score.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from jaxcxai.attribution import tabular
from jaxcxai.attribution.scores import host_reinit, kendall, spearman, summary
from jaxcxai.attribution.study import TabularStudy
from jaxcxai.metrics.explanations import parameter_randomization, removal_shift

__all__ = ["CONTROL", "check", "evaluate_tabular"]

CONTROL = "random"


def _shift(proba, x, phi, median, ks) -> np.ndarray:
    return np.asarray(removal_shift(proba, x, phi, median, ks), np.float64)


def _agreement(phis: dict) -> dict:
    names = list(phis)
    return {
        a: {b: float(np.nanmean(np.asarray(spearman(phis[a], phis[b]))))
            for b in names}
        for a in names
    }  # fmt: skip


def _mlp_methods(ts, params, x, t, keys, data, arrays, out):
    for name in ts.mlp_methods:
        t0 = time.perf_counter()
        program = tabular.mlp_program(name, x, t, data, ts)
        phi = np.asarray(program(params, keys[0]))
        out[name] = {"seconds": time.perf_counter() - t0}
        arrays[f"mlp.{name}"] = phi
        if name in tabular.SAMPLED:
            again = np.asarray(program(params, keys[1]))
            arrays[f"mlp.{name}.key2"] = again
            out[name]["seed_kendall"] = summary(kendall(phi, again))
        if name not in ts.randomization_methods:
            continue

        def explain(p, _, phi=phi, program=program):
            # The trained model's phi is known already.
            return phi if p is params else np.asarray(program(p, keys[0]))

        res = parameter_randomization(
            explain, params, list(ts.randomization_layers), x, keys[2],
            similarity=spearman, randomizer=host_reinit,
        )  # fmt: skip
        scores = np.asarray(res["scores"])
        out[name]["randomization_spearman"] = {
            layer: summary(s) for layer, s in zip(ts.randomization_layers, scores)
        }
        arrays[f"mlp.{name}.randomization_spearman"] = scores


def _forest_methods(ts, forest, x, t, keys, data, arrays, out, skipped):
    for name in ts.forest_methods:
        t0 = time.perf_counter()
        try:
            phi = tabular.explain_forest(name, forest, x, t, keys[0], data, ts)
        except ImportError as e:  # TreeSHAP needs the optional shap package
            skipped.append(f"forest {name}: {e}")
            continue
        out[name] = {"seconds": time.perf_counter() - t0}
        arrays[f"forest.{name}"] = phi
        if name in tabular.SAMPLED:
            again = tabular.explain_forest(name, forest, x, t, keys[1], data, ts)
            arrays[f"forest.{name}.key2"] = again
            out[name]["seed_kendall"] = summary(kendall(phi, again))


def check(ts: TabularStudy) -> None:
    """Rejects unknown or unselected tabular method names (ValueError)."""
    for field, names, valid in (
        ("mlp_methods", ts.mlp_methods, tabular.MLP_METHODS),
        ("forest_methods", ts.forest_methods, tabular.FOREST_METHODS),
        ("randomization_methods", ts.randomization_methods, ts.mlp_methods),
    ):
        bad = [n for n in names if n not in valid]
        if bad:
            raise ValueError(f"tabular.{field} has {bad}, not among {list(valid)}")


def evaluate_tabular(ts: TabularStudy, seed: int) -> tuple[dict, dict]:
    """Fits the two models, explains `num_explain` held-out rows, scores.

    Returns:
      (results, arrays): JSON-able results (see the module doc) and
      {"x", "target.mlp", "target.forest", "median", f"{model}.{method}"
      (N, d) phi, their ".key2" draws and ".randomization_spearman"}.
    """
    check(ts)
    data = tabular.load_data(ts, seed)
    models = tabular.fit_models(data, ts, seed)
    params = tabular.mlp_params(models["mlp"])
    x = data["x_test"][: ts.num_explain]
    median = np.median(data["x_train"], axis=0).astype(np.float32)
    proba = {"mlp": tabular.mlp_proba(params), "forest": models["forest"].predict_proba}
    targets = {m: np.argmax(proba[m](x), axis=1).astype(np.int32) for m in proba}
    keys = jax.random.split(jax.random.key(seed), 4)
    arrays = {"x": x, "median": median}
    arrays |= {f"target.{m}": t for m, t in targets.items()}
    per_model, skipped = {"mlp": {}, "forest": {}}, []
    _mlp_methods(ts, params, x, targets["mlp"], keys, data, arrays, per_model["mlp"])
    _forest_methods(ts, models["forest"], x, targets["forest"], keys, data, arrays,
                    per_model["forest"], skipped)  # fmt: skip
    control = np.asarray(jax.random.uniform(keys[3], x.shape), np.float32)
    ks = tuple(int(k) for k in ts.removal_ks if k <= x.shape[1])
    results = {"models": {}}
    for m, methods in per_model.items():
        names = list(methods) + [CONTROL]
        phis = {n: arrays[f"{m}.{n}"] for n in methods} | {CONTROL: control}
        arrays[f"{m}.{CONTROL}"] = control
        for n in names:
            s = _shift(proba[m], x, phis[n], median, ks)
            arrays[f"{m}.{n}.removal_shift"] = s.astype(np.float32)
            methods.setdefault(n, {})
            methods[n]["removal_shift"] = {str(k): summary(s[:, i])
                                           for i, k in enumerate(ks)}  # fmt: skip
            methods[n]["removal_shift_mean"] = summary(s.mean(1))
        results["models"][m] = {"methods": methods, "agreement": _agreement(phis)}
    results |= {
        "dataset": ts.dataset, "num_train": len(data["x_train"]),
        "num_explain": len(x), "num_features": x.shape[1],
        "features": data["features"], "classes": data["classes"],
        "accuracy": models["accuracy"], "removal_ks": list(ks),
        "randomization_layers": list(ts.randomization_layers), "skipped": skipped,
    }  # fmt: skip
    return results, arrays
