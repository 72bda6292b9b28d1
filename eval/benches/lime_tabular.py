"""`lime_tabular`: 200 tabular LIME explanations, 5000 samples each, vs lime.

Model and data: `tabular_mlp` (wine, 12 standardised features, an sklearn
MLPClassifier(32) as a jax function and as a NumPy function of the same
weights). Training statistics: the training split. Each explanation: the
predicted class, 5000 perturbed samples, 10 features kept ("auto" feature
selection, i.e. the 10 largest weights of a ridge(0.01) fit), kernel width
0.75 sqrt(12), ridge(alpha=1) surrogate.

Ours: `lime_tabular(jax_fn, x, lime_stats(train), key=..., num_samples=5000,
num_features=10)`, all explanations in one jitted call; per-explanation
time = total / N.
Baseline: `lime.lime_tabular.LimeTabularExplainer(train,
random_state=0).explain_instance(x_i, numpy_fn, labels=(predicted,),
num_features=10, num_samples=5000)` per explanation, on a subset.

How the two differ (so agreement is statistical, not exact): both draw
5000 samples from the same distribution (the same quartile statistics,
bins drawn with the training frequencies, values from the bins' truncated
normals), but from unrelated random streams (ours: one uniform per entry
through inverse CDFs in JAX, float32; lime: NumPy's categorical draw and
scipy's truncnorm, float64). Kernel, feature selection and ridge are the
same computations. So the two weight vectors differ by sampling noise
(about 0.05 to 0.1 of the largest weight here), and the 10th/11th features
can swap when their weights are close. Agreement: the mean Jaccard index of
the two top-10 feature sets >= 0.8 (with d = 12 it cannot fall below
8 / 12); also reported: Jaccard of the top 5 by |weight| and the Pearson
correlation of the weight vectors.
"""

from __future__ import annotations

import time
import warnings

import jax
import numpy as np

from eval.benches.tabular_mlp import D, load, rows
from eval.benches.timing import best_time
from jaxcxai.attribution.lime import lime_tabular
from jaxcxai.attribution.lime_sampling import lime_stats

NUM_SAMPLES = 5000
NUM_FEATURES = 10


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b)


def _top(w: np.ndarray, k: int) -> set:
    return set(np.argsort(-np.abs(w))[:k].tolist())


def run(quick: bool) -> dict:
    from lime.lime_tabular import LimeTabularExplainer

    n, n_sub = (50, 10) if quick else (200, 200)
    model = load()
    x = rows(model.x_all, n)
    x32 = x.astype(np.float32)
    stats = lime_stats(model.x_train.astype(np.float32))
    key = jax.random.key(0)
    kw = {"num_samples": NUM_SAMPLES, "num_features": NUM_FEATURES}

    explain = lambda: lime_tabular(model.jax_fn, x32, stats, key=key, **kw)  # noqa: E731
    t0 = time.perf_counter()
    jax.block_until_ready(explain())
    first = time.perf_counter() - t0
    ours_total, phi = best_time(explain, 15)
    phi = np.asarray(phi, np.float64)

    explainer = LimeTabularExplainer(model.x_train, random_state=0)
    pred = model.numpy_fn(x[:n_sub]).argmax(1)
    base_s, base = [], np.zeros((n_sub, D))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(n_sub):
            t0 = time.perf_counter()
            exp = explainer.explain_instance(
                x[i], model.numpy_fn, labels=(int(pred[i]),), **kw
            )
            base_s.append(time.perf_counter() - t0)
            for j, v in exp.local_exp[int(pred[i])]:
                base[i, j] = v

    sel = lambda w: set(np.flatnonzero(w).tolist())  # noqa: E731
    jac10 = np.array([_jaccard(sel(phi[i]), sel(base[i])) for i in range(n_sub)])
    jac5 = np.array([_jaccard(_top(phi[i], 5), _top(base[i], 5)) for i in range(n_sub)])
    corr = np.array([np.corrcoef(phi[i], base[i])[0, 1] for i in range(n_sub)])
    agreement = {
        "subset": n_sub,
        "jaccard_top10_mean": float(jac10.mean()),
        "jaccard_top10_min": float(jac10.min()),
        "jaccard_top5_mean": float(jac5.mean()),
        "pearson_weights_mean": float(corr.mean()),
        "pearson_weights_min": float(corr.min()),
        "ours_kept_features": int(np.count_nonzero(phi[0])),
    }
    return {
        "ours_s": ours_total / n,
        "baseline": "lime LimeTabularExplainer.explain_instance(num_samples=5000, "
        "num_features=10, labels=(predicted,)) per explanation, CPU",
        "baseline_s": float(np.mean(base_s)),
        "agreement": agreement,
        "agreement_ok": bool(jac10.mean() >= 0.8),
        "params": {
            "explanations": n,
            "d": D,
            "num_samples": NUM_SAMPLES,
            "num_features": NUM_FEATURES,
            "model": "sklearn MLPClassifier(32), wine[:, :12]",
            "test_accuracy": model.accuracy,
            "ours_total_s": ours_total,
            "ours_first_call_s": first,
        },
    }
