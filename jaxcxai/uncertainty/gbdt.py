"""Gradient-boosted trees (LightGBM, CatBoost) with their reference-code U_epi.

The gating paper (arXiv:2603.29915, Table 2) reports "-" for the GBDT
epistemic and uses the random-forest surrogate (`forest.fit_surrogate`); these
are its reference code's native variants:

- LightGBM: U_epi = (1/K) Σ_k Var_t[p_{t,k}(x)] over boosting iterations t,
  p_t = the link of iteration t's own raw score (`predict(x, start_iteration=t,
  num_iteration=1, raw_score=True)`): the sigmoid s of the single tree's score
  (binary, members (1 - s, s)) or the softmax of the iteration's K per-class
  trees. The first tree carries the initial score (boost_from_average), as in
  the reference. Probabilities are Platt-calibrated on the validation set.
- CatBoost: U_epi = (1/K) Σ_k Var_t[p_k^{(t)}(x)] over the staged predictions
  p^{(t)}, the probabilities after the first t = 1..T trees.

Aleatoric is H(p) of the model's (for LightGBM calibrated) probabilities. The
boosters run on the host, one thread unless overridden; the (T, N, K) member
stacks are reduced by `entropy.member_variance` (float32). lightgbm and catboost
are imported lazily: `pip install 'jaxcxai[gbdt]'`.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import jax.numpy as jnp
import numpy as np
from scipy.special import expit, softmax

from jaxcxai.checks import check_finite
from jaxcxai.uncertainty.entropy import Estimate, entropy, member_variance

__all__ = [
    "LGBM_SETTINGS",
    "CATBOOST_SETTINGS",
    "LightGBMModel",
    "fit_lightgbm",
    "lightgbm_tree_probs",
    "lightgbm_uncertainty",
    "fit_catboost",
    "catboost_uncertainty",
]

# The reference's settings, named as the boosters' parameters (`**overrides`
# too). LightGBM aliases: subsample = bagging_fraction, subsample_freq =
# bagging_freq (bagging is off at 0), colsample_bytree = feature_fraction.
LGBM_SETTINGS = dict(
    n_estimators=200, learning_rate=0.05, max_depth=8, num_leaves=63,
    subsample=0.7, subsample_freq=1, colsample_bytree=0.7, early_stopping_rounds=20
)  # fmt: skip
CATBOOST_SETTINGS = dict(
    n_estimators=200, learning_rate=0.05, depth=6, l2_leaf_reg=3,
    early_stopping_rounds=50
)  # fmt: skip


def _require(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportError(
            f"{name} is needed for the GBDT estimators; install the `gbdt` "
            "extra: pip install 'jaxcxai[gbdt]'"
        ) from e


def _num_classes(*labels: Any) -> int:
    k = max(int(np.max(np.asarray(y))) + 1 for y in labels)
    if k < 2:
        raise ValueError(f"need at least two classes (labels 0..K-1), got K={k}")
    return k


def _platt(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(a, b) of Platt's P(y=1 | f) = 1 / (1 + exp(a f + b)): maximum likelihood
    on Platt's smoothed targets (N+ + 1)/(N+ + 2), 1/(N- + 2) (as scikit-learn),
    by Newton's method with step halving (Lin, Lin & Weng 2007), float64."""
    pos = float(np.sum(y))
    neg = y.size - pos
    t = np.where(y > 0, (pos + 1) / (pos + 2), 1 / (neg + 2))
    ab = np.array([0.0, np.log((neg + 1) / (pos + 1))])
    design = np.stack([f, np.ones_like(f)], axis=-1)  # z = -(a f + b)

    def loss(ab):
        return np.sum(np.logaddexp(0, -design @ ab) + t * (design @ ab))

    for _ in range(100):
        p = expit(-design @ ab)
        grad = design.T @ (t - p)
        if np.max(np.abs(grad)) < 1e-10 * y.size:
            break
        hess = design.T @ (design * (p * (1 - p))[:, None]) + 1e-12 * np.eye(2)
        step, scale, current = np.linalg.solve(hess, -grad), 1.0, loss(ab)
        while scale > 1e-10 and loss(ab + scale * step) > current:
            scale /= 2
        ab = ab + scale * step
    return ab


def _apply_platt(raw: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Calibrated (N, K) probabilities from raw scores ((N,) or (N, K))."""
    q = expit(-(ab[:, 0] * raw.reshape(len(raw), -1) + ab[:, 1]))
    if raw.ndim == 1:
        return np.concatenate([1 - q, q], axis=-1)
    # One-vs-rest sigmoids renormalised, as scikit-learn does for K > 2.
    return q / q.sum(-1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class LightGBMModel:
    """A fitted LightGBM booster with its Platt calibrator.

    Attributes:
      booster: `lightgbm.Booster`, truncated to the best iteration.
      calibrator: (1, 2) Platt (a, b) on the raw score (binary), or (K, 2), one
        one-vs-rest sigmoid per class score (multiclass).
      num_classes: K.
    """

    booster: Any
    calibrator: np.ndarray
    num_classes: int


def fit_lightgbm(
    x: Any, y: Any, x_val: Any, y_val: Any, *, seed: int = 42, **overrides
) -> LightGBMModel:
    """Fits the reference's LightGBM and Platt-calibrates it on the validation set.

    The calibration follows scikit-learn's `CalibratedClassifierCV(method=
    "sigmoid")` on a prefit model whose decision function is the raw score:
    binary, one sigmoid of the label on the raw score; multiclass, one
    one-vs-rest sigmoid per class on that class's raw score, renormalised.

    Args:
      x, y: (n, d) training features, (n,) int labels in [0, K).
      x_val, y_val: validation set for early stopping and calibration.
      seed: LightGBM's `seed` (bagging and feature-fraction seeds).
      **overrides: replace entries of `LGBM_SETTINGS` or add LightGBM
        parameters (e.g. `n_estimators=10`; `num_threads` defaults to 1).

    Returns:
      `LightGBMModel`.

    References:
      arXiv:2603.29915 §4.2; Ke et al., "LightGBM", NeurIPS 2017; Platt,
      "Probabilistic outputs for support vector machines", 1999.
    """
    lgb = _require("lightgbm")
    check_finite({"x": x, "x_val": x_val})
    x, x_val = np.asarray(x, np.float64), np.asarray(x_val, np.float64)
    y, y_val = np.asarray(y).astype(int), np.asarray(y_val).astype(int)
    k = _num_classes(y, y_val)
    params = {**LGBM_SETTINGS, "num_threads": 1, "verbose": -1, **overrides}
    rounds = params.pop("n_estimators")
    patience = params.pop("early_stopping_rounds")
    params.update(objective="binary" if k == 2 else "multiclass")
    params.update({} if k == 2 else {"num_class": k})
    booster = lgb.train(
        {**params, "seed": seed},
        lgb.Dataset(x, y),
        num_boost_round=rounds,
        valid_sets=[lgb.Dataset(x_val, y_val)],
        callbacks=[lgb.early_stopping(patience, verbose=False)],
    )
    cols = booster.predict(x_val, raw_score=True).reshape(len(y_val), -1).T
    # Binary: one column, the positive class's score; else one per class.
    ab = np.stack([_platt(f, y_val == (c if k > 2 else 1)) for c, f in enumerate(cols)])
    return LightGBMModel(booster, ab, k)


def lightgbm_tree_probs(model: LightGBMModel, x: Any) -> np.ndarray:
    """(T, N, K) float32 link of each of the T iterations' raw scores on x."""
    x, b, out = np.asarray(x, np.float64), model.booster, []
    for t in range(b.current_iteration()):
        raw = b.predict(x, start_iteration=t, num_iteration=1, raw_score=True)
        # Binary: softmax([0, s]) = (1 - sigmoid(s), sigmoid(s)).
        z = raw[:, None] * np.array([0.0, 1.0]) if raw.ndim == 1 else raw
        out.append(softmax(z, axis=-1))
    return np.stack(out).astype(np.float32)


def lightgbm_uncertainty(model: LightGBMModel, x: Any) -> Estimate:
    """Per-tree variance U_epi and H(calibrated p) for LightGBM.

    Args:
      model: from `fit_lightgbm`.
      x: (N, d) features.

    Returns:
      `Estimate`: (N,) epistemic (1/K) Σ_k Var_t[p_{t,k}], (N,) aleatoric
      H(p), (N, K) Platt-calibrated probabilities p.
    """
    check_finite({"x": x})
    raw = model.booster.predict(np.asarray(x, np.float64), raw_score=True)
    probs = jnp.asarray(_apply_platt(raw, model.calibrator), jnp.float32)
    epi = member_variance(lightgbm_tree_probs(model, x))
    return Estimate(epi, entropy(probs), probs)


def fit_catboost(
    x: Any, y: Any, x_val: Any, y_val: Any, *, seed: int = 42, **overrides
) -> Any:
    """Fits the reference's CatBoost classifier (best iteration on validation).

    Args:
      x, y: (n, d) training features, (n,) int labels in [0, K).
      x_val, y_val: validation set for early stopping.
      seed: `random_seed`.
      **overrides: replace entries of `CATBOOST_SETTINGS` or add CatBoost
        parameters (e.g. `n_estimators=10`; `thread_count` defaults to 1).

    Returns:
      The fitted `catboost.CatBoostClassifier` (shrunk to its best iteration).

    References:
      arXiv:2603.29915 §4.2; Prokhorenkova et al., "CatBoost", NeurIPS 2018.
    """
    catboost = _require("catboost")
    check_finite({"x": x, "x_val": x_val})
    y, y_val = np.asarray(y).astype(int), np.asarray(y_val).astype(int)
    k = _num_classes(y, y_val)
    fixed = dict(thread_count=1, verbose=False, allow_writing_files=False)
    loss = "Logloss" if k == 2 else "MultiClass"
    params = {**CATBOOST_SETTINGS, **fixed, "loss_function": loss, **overrides}
    model = catboost.CatBoostClassifier(random_seed=seed, **params)
    x, x_val = np.asarray(x, np.float64), np.asarray(x_val, np.float64)
    return model.fit(x, y, eval_set=(x_val, y_val))


def catboost_uncertainty(model: Any, x: Any) -> Estimate:
    """Staged-prediction variance U_epi and H(p) for CatBoost.

    Args:
      model: fitted `CatBoostClassifier` (`fit_catboost`).
      x: (N, d) features.

    Returns:
      `Estimate`: (N,) epistemic (1/K) Σ_k Var_t[p_k^{(t)}] over the
      probabilities after t = 1..T trees, (N,) aleatoric H(p), (N, K)
      probabilities p (`predict_proba`).
    """
    check_finite({"x": x})
    x = np.asarray(x, np.float64)
    staged = np.stack([np.asarray(p) for p in model.staged_predict_proba(x)])
    probs = jnp.asarray(model.predict_proba(x), jnp.float32)
    epi = member_variance(staged.astype(np.float32))
    return Estimate(epi, entropy(probs), probs)
