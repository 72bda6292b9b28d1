"""TreeSHAP (Lundberg et al. 2020, "From local explanations to global
understanding with explainable AI for trees", Nature Machine Intelligence)
through `shap.TreeExplainer`, in the explainers' contract.

shap's C++ TreeSHAP is exact and fast, so it is wrapped, not rewritten:
the wrapper checks the input, picks the explained class and returns (N, d)
(or (N, d, C)) like the other explainers. Defaults are the uncertainty-
gating reference's: `TreeExplainer(model)` with no background, i.e. the
path-dependent algorithm (pass `background` for the interventional one).

Classes: shap returns one set of values per output. A binary boosted model
(scikit-learn GradientBoosting, LightGBM, CatBoost, XGBoost) has one output,
the log-odds of class 1; class 0's log-odds is its negative, so its
Shapley values are the negated ones (Shapley values are linear in the
function), and the target class is honoured. The reference code
(comrados/uq-xai, `explainers/`) returns the class-1 values whatever the
prediction: `reference_binary=True` does that.

shap is an optional dependency (`pip install shap`, the `trees` extra).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxcxai.attribution.core import check_finite
from jaxcxai.attribution.perturb import check_features, target_classes

__all__ = ["tree_shap", "tree_explainer"]


def _shap():
    try:
        import shap
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "tree_shap needs the shap package: pip install shap (jaxcxai[trees])"
        ) from e
    return shap


def tree_explainer(
    model: Any, background: Any = None, feature_perturbation: str | None = None
):
    """`shap.TreeExplainer` for `model` (build it once to explain many batches).

    Args:
      model: a tree ensemble shap supports (scikit-learn forests and boosted
        trees, XGBoost, LightGBM, CatBoost).
      background: optional (m, d) rows for the interventional algorithm.
      feature_perturbation: None (shap's choice: path-dependent without a
        background), "tree_path_dependent" or "interventional".
    """
    kwargs = (
        {}
        if feature_perturbation is None
        else {"feature_perturbation": feature_perturbation}
    )
    if background is not None:
        background = np.asarray(check_features("background", background))
        check_finite("background", background)
    return _shap().TreeExplainer(model, data=background, **kwargs)


def _num_classes(model: Any, outputs: int) -> int:
    classes = getattr(model, "classes_", None)
    return len(classes) if classes is not None else outputs


def tree_shap(
    model: Any,
    x: Any,
    target: Any = None,
    *,
    explainer: Any = None,
    background: Any = None,
    feature_perturbation: str | None = None,
    reference_binary: bool = False,
    check_additivity: bool = True,
) -> jnp.ndarray:
    """TreeSHAP values of a batch through `shap.TreeExplainer`.

    Args:
      model: the fitted tree ensemble (its `predict_proba`, or `predict` for
        a regressor, gives the predicted class; `classes_` the class count).
      x: (N, d) samples (finite: missing values are not supported here).
      target: None (predicted class), an int, (N,) ints, or "all".
      explainer: an existing `tree_explainer(model, ...)` to reuse.
      background, feature_perturbation: see `tree_explainer` (ignored when
        `explainer` is given).
      reference_binary: for a single-output binary model, return the class-1
        values whatever the target (the reference code's behaviour).
      check_additivity: shap's check that values sum to the model output.

    Returns:
      (N, d) values of the target class in the model's output space
      (probability for forests, log-odds for boosted classifiers), or
      (N, d, C) for "all".

    Raises:
      ValueError: naming `x` (shape, dtype, non-finite) or `target`.
    """
    x = np.asarray(check_features("x", x))
    check_finite("x", x)
    if explainer is None:
        explainer = tree_explainer(model, background, feature_perturbation)
    raw = explainer.shap_values(x, check_additivity=check_additivity)
    phi = np.stack(raw, axis=-1) if isinstance(raw, list) else np.asarray(raw)
    if phi.ndim == 2:
        phi = phi[:, :, None]
    n, _, outputs = phi.shape
    num_classes = _num_classes(model, outputs)
    if reference_binary:
        if outputs != 1:
            raise ValueError(
                f"reference_binary needs a single-output model; this one has {outputs} outputs"
            )
        return jnp.asarray(phi[:, :, 0])
    if outputs == 1 and num_classes == 2:
        phi = np.concatenate([-phi, phi], axis=2)
    t = target_classes(target, n, phi.shape[2])
    if isinstance(t, str):
        return jnp.asarray(phi)
    if t is None:
        if hasattr(model, "predict_proba"):
            t = np.argmax(np.asarray(model.predict_proba(x)), axis=1)
        else:
            t = np.zeros(n, np.int64)
    t = np.asarray(t)
    return jnp.asarray(np.take_along_axis(phi, t[:, None, None], axis=2)[:, :, 0])
