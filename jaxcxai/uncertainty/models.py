"""The gating paper's tabular models on one dataset, with their U_epi and
explainers as `(x, key) -> array` functions the experiments call.

Models (arXiv:2603.29915, section 4.2, settings of `study.Models`):
- "lr": L2 logistic regression (C = 1); U_epi = class-averaged variance of
  20 bootstrap refits (`bootstrap`). The plain fit on the whole training set
  gives the non-UQ prediction and is the function explained.
- "rf": the paper's random forest; U_epi = tree variance (`forest`).
- "mlp": d-128-64-K with dropout 0.3 and BatchNorm (eval mode); U_epi = the
  mutual information of MC-dropout passes (`dropout`). The deterministic
  network is explained.

Explainers (section 4.3; each explains the predicted class): "treeshap"
(shap's TreeExplainer), "kernelshap" and "lime" of the class probability,
"ig" and "sig" (SmoothIG) of the MLP's class logit, zero baseline (the
training mean after z-scoring). JAX models run every explainer as one
batched program; the forest is explained on the host (`predict_proba`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.attribution import integrated, smooth
from jaxcxai.attribution.kernel_shap import kernel_shap
from jaxcxai.attribution.lime import lime_tabular
from jaxcxai.attribution.lime_sampling import lime_stats
from jaxcxai.attribution.tree_shap import tree_explainer, tree_shap
from jaxcxai.data.tabular import TabularSplits
from jaxcxai.uncertainty import bootstrap, dropout, ensembles, forest
from jaxcxai.uncertainty.entropy import Estimate
from jaxcxai.uncertainty.study import COMBOS, Explainers, Models

__all__ = [
    "Fitted",
    "cost",
    "explain_fn",
    "fit_models",
    "plain_probs",
    "uncertainty_fn",
]

Fn = Callable[[Any, jax.Array], Any]


@dataclasses.dataclass(frozen=True, eq=False)
class Fitted:
    """The fitted models of one dataset.

    Attributes:
      splits: the dataset (z-scored splits).
      settings: the model settings.
      lr_boot, lr_plain: stacked bootstrap and single `LogRegParams`.
      forest: the fitted `RandomForestClassifier`.
      mlp: `(module, variables)` of the MLP.
    """

    splits: TabularSplits
    settings: Models
    lr_boot: Any = None
    lr_plain: Any = None
    forest: Any = None
    mlp: tuple | None = None

    def has(self, model: str) -> bool:
        return {"lr": self.lr_plain, "rf": self.forest, "mlp": self.mlp}[
            model
        ] is not None


def fit_models(splits: TabularSplits, settings: Models, key: jax.Array) -> Fitted:
    """Fits `settings.names` on the training split.

    Args:
      splits: the dataset (`jaxcxai.data.tabular`).
      settings: which models and their sizes.
      key: PRNG key (bootstrap resamples, MLP initialisation and batches).

    Returns:
      `Fitted`.
    """
    k_lr, k_mlp = jax.random.split(key)
    x, y, k = splits.x_train, splits.y_train, splits.num_classes
    out: dict[str, Any] = {}
    if "lr" in settings.names:
        out["lr_boot"] = bootstrap.fit_bootstrap_logreg(
            x, y, k, k_lr, num_resamples=settings.lr_resamples
        )
        ones = jnp.ones(x.shape[0], jnp.float32)
        out["lr_plain"] = jax.jit(bootstrap.fit_logreg, static_argnums=3)(
            jnp.asarray(x), jnp.asarray(y), ones, k
        )
    if "rf" in settings.names:
        out["forest"] = forest.fit_forest(x, y, n_estimators=settings.forest_trees)
    if "mlp" in settings.names:
        module = dropout.MLP(num_classes=k)
        state = ensembles.train_mlp(
            module, x, y, k_mlp, x_val=splits.x_val, y_val=splits.y_val,
            epochs=settings.mlp_epochs,
        )  # fmt: skip
        out["mlp"] = (module, jax.device_get(state.variables()))
    return Fitted(splits=splits, settings=settings, **out)


def _jax_fn(fitted: Fitted, model: str) -> tuple[Callable, bool]:
    """(f, softmax): a JAX function of the explained model and whether its
    outputs are logits (True) or probabilities (False)."""
    if model == "lr":
        params = fitted.lr_plain
        return (lambda z: bootstrap.logreg_probs(params, z)), False
    if model == "mlp":
        module, variables = fitted.mlp
        return (lambda z: module.apply(variables, z)[0]), True
    raise ValueError(f"model {model!r} has no JAX function")


def plain_probs(fitted: Fitted, model: str, x: Any) -> np.ndarray:
    """(N, K) probabilities of the plain (non-UQ) prediction."""
    x = np.asarray(x, np.float32)
    if model == "rf":
        return fitted.forest.predict_proba(x).astype(np.float32)
    f, logits = _jax_fn(fitted, model)
    out = jax.jit(f)(jnp.asarray(x))
    return np.asarray(jax.nn.softmax(out) if logits else out, np.float32)


def uncertainty_fn(fitted: Fitted, model: str) -> Callable[[Any, jax.Array], Estimate]:
    """`(x (N, d), key) -> Estimate` of the model's estimator (section 4.2)."""
    k = fitted.splits.num_classes
    if model == "lr":
        params = fitted.lr_boot
        fn = jax.jit(lambda z: bootstrap.bootstrap_logreg_uncertainty(params, z))
        return lambda x, key: fn(jnp.asarray(x, jnp.float32))
    if model == "rf":
        return lambda x, key: forest.forest_uncertainty(
            fitted.forest, np.asarray(x, np.float32), k
        )
    if model == "mlp":
        module, variables = fitted.mlp
        passes = fitted.settings.mc_passes
        return lambda x, key: dropout.mc_dropout_uncertainty(
            module, variables, jnp.asarray(x, jnp.float32), key, num_passes=passes
        )
    raise ValueError(f"unknown model {model!r}")


def explain_fn(fitted: Fitted, model: str, explainer: str, ex: Explainers) -> Fn:
    """`(x (N, d), key) -> (N, d)` phi of the predicted class.

    Args:
      fitted: the dataset's models.
      model: "lr", "rf" or "mlp".
      explainer: one of the paper's explainers of `model` (`study.COMBOS`).
      ex: explainer settings.

    Raises:
      ValueError: the pair is not one of the paper's.
    """
    if explainer not in COMBOS.get(model, ()):
        raise ValueError(f"{model}:{explainer} is not a pairing of the paper")
    train = fitted.splits.x_train
    if model == "rf":
        if explainer == "treeshap":
            tex = tree_explainer(fitted.forest)
            return lambda x, key: tree_shap(
                fitted.forest, np.asarray(x, np.float64), explainer=tex
            )
        stats = lime_stats(train)
        return lambda x, key: lime_tabular(
            fitted.forest.predict_proba, np.asarray(x, np.float32), stats, key=key,
            num_samples=ex.lime_samples, num_features=ex.lime_features, host=True,
        )  # fmt: skip
    f, logits = _jax_fn(fitted, model)
    if explainer == "kernelshap":
        bg = np.asarray(train[: ex.kernel_background], np.float32)
        return lambda x, key: kernel_shap(
            f, x, bg, key=key, nsamples=ex.kernel_nsamples or None, softmax=logits
        )
    if explainer == "lime":
        stats = lime_stats(train)
        return lambda x, key: lime_tabular(
            f, x, stats, key=key, num_samples=ex.lime_samples,
            num_features=ex.lime_features, softmax=logits,
        )  # fmt: skip
    if explainer == "ig":
        return lambda x, key: integrated.integrated_gradients(f, x, steps=ex.ig_steps)
    return lambda x, key: smooth.smooth_integrated_gradients(
        f, x, key=key, n=ex.sig_n, sigma=ex.sig_sigma, steps=ex.ig_steps
    )


def cost(model: str, explainer: str, settings: Models, ex: Explainers) -> tuple:
    """(m, d): model evaluations for U_epi and per explanation (Eq. 2-3).

    The forest's U_epi is a byproduct of its prediction (m = 0); the
    bootstrap LR needs its refits' predictions (m = resamples); the MLP its
    MC passes. d: LIME's samples, KernelSHAP's coalitions x background,
    IG's steps, SmoothIG's copies x steps; TreeSHAP counts as one pass.
    """
    m = {"rf": 0, "lr": settings.lr_resamples, "mlp": settings.mc_passes}[model]
    d = {
        "treeshap": 1,
        "lime": ex.lime_samples,
        "kernelshap": (ex.kernel_nsamples or 2048) * ex.kernel_background,
        "ig": ex.ig_steps,
        "sig": ex.sig_n * ex.ig_steps,
    }[explainer]
    return float(m), float(d)
