"""`kernel_shap`: 200 KernelSHAP explanations of a 12-feature MLP vs shap.

Model and data: `tabular_mlp` (wine, 12 standardised features, an sklearn
MLPClassifier(32) run as a jax function and as a NumPy function of the same
weights; the explained output is the predicted class's probability).
Background: 100 training rows (a fixed random choice). Budget: nsamples =
2048 coalitions per explanation (of the 4094 proper ones at d = 12), so
both explainers enumerate sizes 1, 2 and 3 with their complements (596
coalitions, the same rows and weights as shap's) and draw the other 1452
from sizes 4-6, paired with complements.

Ours: `kernel_shap(jax_fn, x, background, key=..., nsamples=2048)`, all
explanations in one jitted call; per-explanation time = total / N.
Baseline: `shap.KernelExplainer(numpy_fn, background).shap_values(x,
nsamples=2048, l1_reg=False)` on a subset; per-explanation time = mean over
the subset. `l1_reg=False` is the paper's estimator and ours; shap's
default, "num_features(10)", would zero two of the 12 features.

Agreement, on the subset: d = 12 is enumerable, so the exact Shapley values
of the same value function are computed by brute force in float64 NumPy
(all 4096 coalitions x 100 background rows). Both estimators must be
within a relative L2 error of 0.05 of them on average (the error of a
2048-coalition estimate; see `params`), and the mean Spearman correlation
between ours and shap's over the subset must be >= 0.95.

`extra.model_only_s` times the jax MLP alone on the same number of rows
(n x 2048 x 100, in the same 65536-row steps): the floor of any KernelSHAP
that evaluates every coalition on every background row. Ours is then
compared with its own floor (`ours_over_model_only`), which says how much
of the target is out of reach without evaluating fewer rows.
"""

from __future__ import annotations

import time
from math import factorial

import jax
import jax.numpy as jnp
import numpy as np

from eval.benches.tabular_mlp import D, load, rows
from eval.benches.timing import best_time
from jaxcxai.attribution.kernel_shap import kernel_shap

NB = 100
NSAMPLES = 2048
REL_TOL = 0.05


def exact_shapley(fn, x: np.ndarray, background: np.ndarray, cls: int) -> np.ndarray:
    """Exact interventional Shapley values of fn(.)[cls] by enumeration."""
    d = x.shape[0]
    codes = np.arange(2**d)
    masks = ((codes[:, None] >> np.arange(d)) & 1).astype(bool)
    v = np.empty(2**d)
    for s in range(0, 2**d, 512):
        m = masks[s : s + 512]
        z = np.where(m[:, None, :], x[None, None, :], background[None])
        v[s : s + 512] = fn(z.reshape(-1, d))[:, cls].reshape(len(m), -1).mean(1)
    size = masks.sum(1)
    w = np.array([factorial(k) * factorial(d - k - 1) / factorial(d) for k in range(d)])
    phi = np.empty(d)
    for i in range(d):
        c = codes[~masks[:, i]]
        phi[i] = np.sum(w[size[c]] * (v[c | (1 << i)] - v[c]))
    return phi


def model_only_time(fn, total_rows: int, d: int, step: int = 2**16) -> float:
    """Best time of `fn` alone over `total_rows` rows in `step`-row steps.

    The floor of any KernelSHAP that evaluates the model on every
    (coalition, background) row: the rows are a fixed random block shifted
    per step (one add, so the model's work is not hoisted out of the loop).
    """
    steps = -(-total_rows // step)
    block = jax.random.normal(jax.random.key(1), (step, d))

    @jax.jit
    def loop(block):
        body = lambda i: jnp.sum(fn(block + i.astype(block.dtype) * 1e-6))  # noqa: E731
        return jax.lax.map(body, jnp.arange(steps))

    seconds, _ = best_time(lambda: jax.block_until_ready(loop(block)), 3)
    return seconds


def run(quick: bool) -> dict:
    import shap
    from scipy.stats import spearmanr

    n, n_sub = (50, 4) if quick else (200, 10)
    model = load()
    rng = np.random.default_rng(0)
    background = model.x_train[rng.choice(len(model.x_train), NB, replace=False)]
    x = rows(model.x_all, n)
    x32, bg32 = x.astype(np.float32), background.astype(np.float32)
    key = jax.random.key(0)

    explain = lambda: kernel_shap(model.jax_fn, x32, bg32, key=key, nsamples=NSAMPLES)  # noqa: E731
    t0 = time.perf_counter()
    jax.block_until_ready(explain())
    first = time.perf_counter() - t0
    ours_total, phi = best_time(explain, 5)
    phi = np.asarray(phi, np.float64)
    model_s = model_only_time(model.jax_fn, n * NSAMPLES * NB, D)

    explainer = shap.KernelExplainer(model.numpy_fn, background)
    cls = model.numpy_fn(x[:n_sub]).argmax(1)
    base_s, base_phi = [], []
    for i in range(n_sub):
        t0 = time.perf_counter()
        sv = explainer.shap_values(
            x[i : i + 1], nsamples=NSAMPLES, l1_reg=False, silent=True
        )
        base_s.append(time.perf_counter() - t0)
        base_phi.append(np.asarray(sv)[0, :, cls[i]])
    base_phi = np.array(base_phi)

    exact = np.array(
        [exact_shapley(model.numpy_fn, x[i], background, cls[i]) for i in range(n_sub)]
    )
    rel = lambda a: np.linalg.norm(a - exact, axis=1) / np.linalg.norm(exact, axis=1)  # noqa: E731
    ours_err, shap_err = rel(phi[:n_sub]), rel(base_phi)
    rho = np.array([spearmanr(phi[i], base_phi[i])[0] for i in range(n_sub)])
    fx = model.numpy_fn(x[:n_sub])[np.arange(n_sub), cls]
    fnull = model.numpy_fn(background).mean(0)[cls]
    agreement = {
        "subset": n_sub,
        "ours_rel_l2_to_exact_mean": float(ours_err.mean()),
        "ours_rel_l2_to_exact_max": float(ours_err.max()),
        "shap_rel_l2_to_exact_mean": float(shap_err.mean()),
        "shap_rel_l2_to_exact_max": float(shap_err.max()),
        "rel_tol": REL_TOL,
        "spearman_ours_shap_mean": float(rho.mean()),
        "spearman_ours_shap_min": float(rho.min()),
        "ours_efficiency_max_abs": float(
            np.abs(phi[:n_sub].sum(1) - (fx - fnull)).max()
        ),
    }
    ok = (
        ours_err.mean() <= REL_TOL and shap_err.mean() <= REL_TOL and rho.mean() >= 0.95
    )
    return {
        "ours_s": ours_total / n,
        "baseline": "shap.KernelExplainer(numpy forward, 100 background rows)"
        ".shap_values(nsamples=2048, l1_reg=False) per explanation, CPU",
        "baseline_s": float(np.mean(base_s)),
        "agreement": agreement,
        "agreement_ok": bool(ok),
        "params": {
            "explanations": n,
            "d": D,
            "background": NB,
            "nsamples": NSAMPLES,
            "model": "sklearn MLPClassifier(32), wine[:, :12]",
            "test_accuracy": model.accuracy,
            "ours_total_s": ours_total,
            "ours_first_call_s": first,
        },
        "extra": {
            "shap_version": shap.__version__,
            "model_rows": n * NSAMPLES * NB,
            "model_only_s": model_s,
            "ours_over_model_only": ours_total / model_s,
            "model_only_note": "the jax MLP alone on n x nsamples x background "
            "rows in 65536-row steps: the floor of evaluating every coalition "
            "on every background row",
        },
    }
