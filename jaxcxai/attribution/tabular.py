"""The tabular part of an explanation study: scikit-learn's bundled data, an
MLP (run as a JAX port of its weights) and a random forest, explained.

Data: `load_wine` (178 x 13, 3 classes) or `load_breast_cancer` (569 x 30,
2 classes), a stratified split, features z-scored with the training
statistics (so the zero baseline of Integrated Gradients is the training
mean, as in the uncertainty-gating reference).

Models and methods (each explains the model's predicted class):
- MLP, scikit-learn `MLPClassifier` (ReLU, Adam); its weights run as a JAX
  function (`mlp_logits`), which every method below differentiates or
  samples: saliency, gradient x input, Integrated Gradients and SmoothIG of
  the class logit; KernelSHAP (background of training rows) and LIME
  (5000 samples, top features kept) of the class probability, as shap and
  lime explain `predict_proba`;
- random forest, scikit-learn `RandomForestClassifier`: TreeSHAP through
  shap's C++ TreeExplainer (path-dependent, probability space), and LIME
  calling `predict_proba` on the host.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.attribution import gradient, integrated, smooth
from jaxcxai.attribution.kernel_shap import kernel_shap
from jaxcxai.attribution.lime import lime_tabular
from jaxcxai.attribution.lime_sampling import lime_stats
from jaxcxai.attribution.study import TabularStudy
from jaxcxai.attribution.tree_shap import tree_shap

__all__ = [
    "DATASETS",
    "FOREST_METHODS",
    "MLP_METHODS",
    "SAMPLED",
    "explain_forest",
    "explain_mlp",
    "fit_models",
    "load_data",
    "mlp_logits",
    "mlp_params",
    "mlp_program",
    "mlp_proba",
]

DATASETS = ("wine", "breast_cancer")
MLP_METHODS = (
    "saliency", "gradient_x_input", "integrated_gradients", "smooth_ig",
    "kernel_shap", "lime",
)  # fmt: skip
FOREST_METHODS = ("tree_shap", "lime")
SAMPLED = ("smooth_ig", "kernel_shap", "lime")  # their phi depend on the key


def load_data(ts: TabularStudy, seed: int) -> dict[str, Any]:
    """{"x_train", "x_test" (z-scored float32), "y_train", "y_test",
    "features", "classes"} of a bundled scikit-learn set."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    if ts.dataset not in DATASETS:
        raise ValueError(
            f"tabular.dataset must be one of {DATASETS}, got {ts.dataset!r}"
        )
    bunch = getattr(datasets, f"load_{ts.dataset}")()
    xtr, xte, ytr, yte = train_test_split(
        bunch.data, bunch.target, test_size=ts.test_fraction, random_state=seed,
        stratify=bunch.target,
    )  # fmt: skip
    mean, std = xtr.mean(0), xtr.std(0)
    std = np.where(std > 0, std, 1.0)
    z = lambda v: ((v - mean) / std).astype(np.float32)  # noqa: E731
    return {
        "x_train": z(xtr), "x_test": z(xte), "y_train": ytr, "y_test": yte,
        "features": [str(n) for n in bunch.feature_names],
        "classes": [str(n) for n in bunch.target_names],
    }  # fmt: skip


def fit_models(data: dict, ts: TabularStudy, seed: int) -> dict[str, Any]:
    """{"mlp": MLPClassifier, "forest": RandomForestClassifier} fitted on the
    training split, and their held-out accuracies."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neural_network import MLPClassifier

    mlp = MLPClassifier(ts.hidden, max_iter=ts.mlp_iters, random_state=seed)
    mlp.fit(data["x_train"], data["y_train"])
    forest = RandomForestClassifier(
        ts.forest_trees, max_depth=ts.forest_depth, random_state=seed
    ).fit(data["x_train"], data["y_train"])
    acc = {
        name: float((m.predict(data["x_test"]) == data["y_test"]).mean())
        for name, m in (("mlp", mlp, ), ("forest", forest))
    }  # fmt: skip
    return {"mlp": mlp, "forest": forest, "accuracy": acc}


def mlp_params(mlp) -> dict:
    """The MLP's weights as a pytree {"dense0": {"w", "b"}, ...} (float32)."""
    return {
        f"dense{i}": {
            "w": jnp.asarray(w, jnp.float32),
            "b": jnp.asarray(b, jnp.float32),
        }
        for i, (w, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_))
    }


def mlp_logits(params: dict, x: Any) -> jax.Array:
    """(N, K) logits of the ported MLP: ReLU hidden layers, linear output.

    A binary scikit-learn MLP has one logistic output z; it becomes the
    logits (0, z), whose softmax is its (1 - p, p).
    """
    h = jnp.asarray(x, jnp.float32)
    num = len(params)
    for i in range(num):
        layer = params[f"dense{i}"]
        h = h @ layer["w"] + layer["b"][None]
        if i < num - 1:
            h = jax.nn.relu(h)
    return jnp.concatenate([jnp.zeros_like(h), h], 1) if h.shape[1] == 1 else h


def mlp_proba(params: dict):
    """`predict_proba`-like NumPy function of the ported MLP."""
    fn = jax.jit(lambda x: jax.nn.softmax(mlp_logits(params, x)))
    return lambda x: np.asarray(fn(jnp.asarray(x, jnp.float32)))


def explain_mlp(
    name: str, params: dict, x: Any, target: Any, key, data: dict, ts: TabularStudy,
    as_numpy: bool = True,
) -> np.ndarray:  # fmt: skip
    """(N, d) attributions of one MLP method of `MLP_METHODS`.

    Traceable in `params` and `key` (see `mlp_program`).

    Args:
      name: the method.
      params: `mlp_params(...)` (randomised ones for the sanity check).
      x: (N, d) rows; target: (N,) classes; key: PRNG key.
      data: `load_data(...)` (training rows: background, LIME statistics).
      ts: the tabular settings.
      as_numpy: return a NumPy array (False: a JAX array, inside a trace).
    """
    f = lambda z: mlp_logits(params, z)  # noqa: E731
    x, t = np.asarray(x, np.float32), np.asarray(target, np.int32)
    if name == "saliency":
        phi = gradient.saliency(f, x, t)
    elif name == "gradient_x_input":
        phi = gradient.gradient_x_input(f, x, t)
    elif name == "integrated_gradients":
        phi = integrated.integrated_gradients(f, x, t, steps=ts.ig_steps)
    elif name == "smooth_ig":
        phi = smooth.smooth_integrated_gradients(
            f, x, t, key=key, n=ts.smooth_n, sigma=ts.smooth_sigma, steps=ts.ig_steps
        )
    elif name == "kernel_shap":
        bg = data["x_train"][: ts.background]
        phi = kernel_shap(
            f, x, bg, t, key=key, nsamples=ts.kernel_shap_nsamples or None, softmax=True
        )
    elif name == "lime":
        phi = lime_tabular(
            f, x, lime_stats(data["x_train"]), t, key=key, num_samples=ts.lime_samples,
            num_features=ts.lime_features, softmax=True,
        )  # fmt: skip
    else:
        raise ValueError(f"unknown MLP method {name!r}; valid: {MLP_METHODS}")
    phi = jnp.asarray(phi, jnp.float32)
    return np.asarray(phi) if as_numpy else phi


def mlp_program(name: str, x: Any, target: Any, data: dict, ts: TabularStudy):
    """`program(params, key) -> (N, d)` phi of one MLP method, jitted once, so
    the second key and every randomisation step reuse one compiled program."""
    x, target = np.asarray(x, np.float32), np.asarray(target, np.int32)
    return jax.jit(
        lambda params, key: explain_mlp(name, params, x, target, key, data, ts,
                                        as_numpy=False)
    )  # fmt: skip


def explain_forest(
    name: str, forest, x: Any, target: Any, key, data: dict, ts: TabularStudy
) -> np.ndarray:
    """(N, d) attributions of one forest method of `FOREST_METHODS`."""
    x = np.asarray(x, np.float32)
    if name == "tree_shap":
        phi = tree_shap(forest, x.astype(np.float64), np.asarray(target))
    elif name == "lime":
        phi = lime_tabular(
            forest.predict_proba, x, lime_stats(data["x_train"]), np.asarray(target),
            key=key, num_samples=ts.lime_samples, num_features=ts.lime_features,
            host=True,
        )  # fmt: skip
    else:
        raise ValueError(f"unknown forest method {name!r}; valid: {FOREST_METHODS}")
    return np.asarray(phi, np.float32)
