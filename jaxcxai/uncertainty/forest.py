"""Random-forest tree variance, and the random-forest surrogate for any model.

The gating paper's forest estimator (arXiv:2603.29915 §4.2)
treats the trees of a scikit-learn `RandomForestClassifier` as the ensemble of
Eq. 1: U_epi(x) = (1/K) Σ_k Var_trees[p_{t,k}(x)]. Models without a cheap
native estimator (gradient-boosted trees in the paper) get U_epi from a forest
surrogate fitted to the same inputs. The trees run on the host through
scikit-learn; their stacked probabilities (T, N, K) are reduced with the shared
float32 helpers of `jaxcxai.uncertainty.entropy`.

Forest settings are the reference's exactly (`FOREST_SETTINGS`): 100 trees,
max_depth 15, min_samples_split 10, min_samples_leaf 4, bootstrap on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from jaxcxai.checks import check_finite
from jaxcxai.uncertainty.entropy import Estimate, variance_estimate

__all__ = [
    "FOREST_SETTINGS",
    "fit_forest",
    "tree_probs",
    "forest_uncertainty",
    "fit_surrogate",
    "surrogate_uncertainty",
]

FOREST_SETTINGS = dict(
    n_estimators=100,
    max_depth=15,
    min_samples_split=10,
    min_samples_leaf=4,
    bootstrap=True,
)


def fit_forest(
    x: Any, y: Any, *, seed: int = 42, n_jobs: int | None = None, **overrides
) -> RandomForestClassifier:
    """Fits the paper's random forest.

    Args:
      x: (n, d) training features.
      y: (n,) int labels.
      seed: `random_state` (the paper's splits use 42).
      n_jobs: scikit-learn's thread count (None: one).
      **overrides: replace entries of `FOREST_SETTINGS` (e.g. `n_estimators`
        in tests); the defaults are the reference's.

    Returns:
      The fitted `RandomForestClassifier`.

    References:
      arXiv:2603.29915 §4.2; Breiman, "Random forests", Mach. Learn. 45, 2001.
    """
    check_finite({"x": x})
    settings = {**FOREST_SETTINGS, **overrides}
    forest = RandomForestClassifier(random_state=seed, n_jobs=n_jobs, **settings)
    return forest.fit(np.asarray(x), np.asarray(y))


def tree_probs(
    forest: RandomForestClassifier, x: Any, num_classes: int | None = None
) -> np.ndarray:
    """Per-tree class probabilities, aligned to the full class list.

    Args:
      forest: fitted forest whose `classes_` are ints in [0, num_classes).
      x: (N, d) features.
      num_classes: K; defaults to `max(classes_) + 1`. Classes the forest never
        saw get probability 0.

    Returns:
      (T, N, K) float32, T = number of trees.
    """
    x = np.asarray(x, np.float32)
    classes = np.asarray(forest.classes_).astype(int)
    k = int(classes.max()) + 1 if num_classes is None else num_classes
    # Trees inside a forest share the forest's encoded class list, so one
    # column scatter aligns them all (a class missing from a tree's bootstrap
    # already has a zero column).
    stacked = np.stack([t.predict_proba(x) for t in forest.estimators_])
    out = np.zeros(stacked.shape[:2] + (k,), np.float32)
    out[..., classes] = stacked
    return out


def forest_uncertainty(
    forest: RandomForestClassifier, x: Any, num_classes: int | None = None
) -> Estimate:
    """Tree variance U_epi = (1/K) Σ_k Var_t[p_{t,k}(x)] and aleatoric H(p̄).

    Args:
      forest: fitted forest (`fit_forest`).
      x: (N, d) features.
      num_classes: K (see `tree_probs`).

    Returns:
      `Estimate` of (N,) epistemic, (N,) aleatoric, (N, K) mean probabilities
      (the forest's `predict_proba`, up to float32).

    References:
      arXiv:2603.29915 Eq. 1 and §4.2.
    """
    check_finite({"x": x})
    return variance_estimate(tree_probs(forest, x, num_classes))


def fit_surrogate(
    predict_fn: Callable[[Any], Any],
    x: Any,
    y: Any | None = None,
    *,
    seed: int = 42,
    n_jobs: int | None = None,
    **overrides,
) -> RandomForestClassifier:
    """Fits the random-forest surrogate that supplies U_epi for any model.

    By default the forest learns the model's own predicted labels on `x`
    (argmax of `predict_fn(x)`), so its tree variance measures disagreement
    about what *the model* does. Passing `y` instead fits the training labels,
    as the reference does when it reuses the RF's U_epi for LightGBM/CatBoost.

    Args:
      predict_fn: (N, d) -> (N, K) probabilities or logits of the model.
      x: (n, d) training features.
      y: optional (n,) labels to fit instead of the model's predictions.
      seed, n_jobs, **overrides: see `fit_forest`.

    Returns:
      The fitted surrogate forest.

    References:
      arXiv:2603.29915 §3 ("surrogate") and §4.2.
    """
    check_finite({"x": x})
    if y is None:
        y = np.argmax(np.asarray(predict_fn(x)), axis=-1)
    return fit_forest(x, y, seed=seed, n_jobs=n_jobs, **overrides)


def surrogate_uncertainty(
    surrogate: RandomForestClassifier, x: Any, num_classes: int | None = None
) -> Estimate:
    """The surrogate's tree variance as the model's U_epi.

    Args:
      surrogate: forest from `fit_surrogate`.
      x: (N, d) features.
      num_classes: the model's K (classes the model never predicted get 0).

    Returns:
      `Estimate` (see `forest_uncertainty`); `probs` are the surrogate's.
    """
    return forest_uncertainty(surrogate, x, num_classes)
