"""E1 of the gating paper: model quality (Table 2 of arXiv:2603.29915).

Weighted F1 with its bootstrap standard deviation, mean U_epi and its
coefficient of variation CV_epi per (dataset, model), as the paper's
Table 2 reports them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from jaxcxai.checks import check_finite
from jaxcxai.uncertainty import tables

__all__ = [
    "bootstrap_f1",
    "e1_model_quality",
    "weighted_f1",
]

Fn = Callable[[jax.Array, jax.Array], Any]


def weighted_f1(y_true: Any, y_pred: Any, num_classes: int) -> jax.Array:
    """Support-weighted F1 (scikit-learn's `f1_score(average="weighted")`).

    A class with no true and no predicted sample scores 0 (scikit-learn's
    zero_division); it has weight 0 anyway.

    Args:
      y_true, y_pred: (..., n) int labels in [0, num_classes).
      num_classes: K.

    Returns:
      (...) weighted F1 (arXiv:2603.29915, Table 2).
    """
    t = jax.nn.one_hot(y_true, num_classes)
    p = jax.nn.one_hot(y_pred, num_classes)
    tp, support = jnp.sum(t * p, -2), jnp.sum(t, -2)
    denom = support + jnp.sum(p, -2)
    f1 = jnp.where(denom > 0, 2.0 * tp / jnp.where(denom > 0, denom, 1.0), 0.0)
    return jnp.sum(f1 * support, -1) / jnp.sum(support, -1)


def bootstrap_f1(
    y_true: Any, y_pred: Any, num_classes: int, key: jax.Array, num_resamples: int
) -> jax.Array:
    """Weighted F1 of `num_resamples` test-set resamples (with replacement).

    Resample b is `jax.random.randint(key, (B, n), 0, n)[b]`.

    Args:
      y_true, y_pred: (n,) int labels.
      num_classes: K.
      key: PRNG key.
      num_resamples: B (the paper: 200).

    Returns:
      (B,) weighted F1 per resample (arXiv:2603.29915, section 5.1).
    """
    y_true, y_pred = jnp.asarray(y_true), jnp.asarray(y_pred)
    idx = jax.random.randint(key, (num_resamples, y_true.shape[0]), 0, y_true.shape[0])
    return weighted_f1(y_true[idx], y_pred[idx], num_classes)


@partial(jax.jit, static_argnums=4)
def _e1_core(y_true, probs, u, key, num_resamples):
    k = probs.shape[1]
    pred = jnp.argmax(probs, axis=1)
    boot = bootstrap_f1(y_true, pred, k, key, num_resamples)
    mean_u = jnp.mean(u)
    return {
        "f1": weighted_f1(y_true, pred, k),
        "f1_std": jnp.std(boot),
        "f1_boot": boot,
        "u_epi_mean": mean_u,
        "cv_epi": jnp.std(u) / mean_u,
    }


def e1_model_quality(
    y_true: Any,
    probs: Any,
    u_epi: Any,
    key: jax.Array,
    *,
    probs_plain: Any = None,
    num_resamples: int = 200,
    dataset: str = "",
    model: str = "",
) -> tuple[dict[str, jax.Array], list[dict]]:
    """E1, model quality with uncertainty (Table 2 of arXiv:2603.29915).

    Args:
      y_true: (n,) int test labels.
      probs: (n, K) UQ-averaged class probabilities (`Estimate.probs`).
      u_epi: (n,) U_epi of the test samples.
      key: PRNG key of the bootstrap resamples (`bootstrap_f1`).
      probs_plain: optional (n, K) probabilities of the plain (non-UQ)
        prediction, Table 2's first F1.
      num_resamples: bootstrap resamples (the paper: 200).
      dataset, model: the table row's labels.

    Returns:
      Arrays {"f1", "f1_std" (ddof 0 over the resamples), "f1_boot" (B,),
      "u_epi_mean", "cv_epi" = std(U) / mean(U) (ddof 0), "f1_plain" if
      given} and a one-row Table 2 (`tables.table2_row`).
    """
    check_finite({"probs": probs, "u_epi": u_epi, "probs_plain": probs_plain})
    probs = jnp.asarray(probs, jnp.float32)
    out = _e1_core(
        jnp.asarray(y_true), probs, jnp.asarray(u_epi, jnp.float32), key, num_resamples
    )
    if probs_plain is not None:
        plain = jnp.argmax(jnp.asarray(probs_plain), axis=1)
        out["f1_plain"] = weighted_f1(jnp.asarray(y_true), plain, probs.shape[1])
    return out, [tables.table2_row(dataset, model, out)]
