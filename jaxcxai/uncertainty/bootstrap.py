"""Bootstrap logistic regression: B refits at once, U_epi as member variance.

The gating paper's logistic-regression estimator (arXiv:2603.29915 §4.2)
refits L2 logistic regression (C = 1) on B = 20 full-size resamples drawn
with replacement and reports (1/K) Σ_k Var_b[p_{b,k}(x)].
The reference refits scikit-learn in a Python loop; here one resample is a
vector of multiplicities (how often each training row was drawn), so all B
fits are the same program over different weights and run under one `vmap`.

Objective per resample (scikit-learn's `LogisticRegression(C)` with lbfgs):
Σ_i w_i · logloss_i + ||W||² / (2C), intercept unpenalised; multinomial
softmax for three or more classes, the binary (single-logit) loss for two.
The binary loss is the two-class softmax with the penalty doubled (its optimum
has W_1 = -W_0, so ||W_0||² + ||W_1||² = ||W_1 - W_0||² / 2), which keeps one
program for every resample. A class absent from a resample has its logit masked
out, so it gets probability zero (as in the reference code) and zero weights. We minimise
the objective divided by n (same minimiser, better float32 conditioning) with
optax's L-BFGS to a gradient-norm tolerance.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxcxai.checks import check_finite
from jaxcxai.uncertainty.entropy import Estimate, variance_estimate

__all__ = [
    "LogRegParams",
    "resample_weights",
    "fit_logreg",
    "fit_bootstrap_logreg",
    "logreg_probs",
    "bootstrap_logreg_uncertainty",
]


class LogRegParams(NamedTuple):
    """Multinomial logistic-regression parameters (stacked: leading B axis).

    Attributes:
      w: (K, d) class weights. For two classes scikit-learn's `coef_` is
        `w[1] - w[0]`; for more, `coef_` is `w` of the present classes.
      b: (K,) intercepts (defined up to a constant shift; compare centred).
      present: (K,) bool, classes seen in the fit's data; the others get
        probability zero.
    """

    w: jax.Array
    b: jax.Array
    present: jax.Array


def resample_weights(key: jax.Array, n: int, num_resamples: int = 20) -> jax.Array:
    """Multiplicities of B bootstrap resamples of size n (with replacement).

    Args:
      key: PRNG key.
      n: number of training rows.
      num_resamples: B.

    Returns:
      (B, n) float32 counts; row b sums to n. `jnp.repeat(arange(n), counts)`
      is resample b's index list (up to order).

    References:
      Efron, "Bootstrap methods: another look at the jackknife", Ann. Statist.
      7(1), 1979.
    """
    idx = jax.random.randint(key, (num_resamples, n), 0, n)
    return jax.vmap(lambda i: jnp.zeros(n, jnp.float32).at[i].add(1.0))(idx)


def _masked_logits(params: LogRegParams, x: jax.Array) -> jax.Array:
    logits = x @ params.w.T + params.b[None]
    return jnp.where(params.present[None], logits, -jnp.inf)


def fit_logreg(
    x: jax.Array,
    y: jax.Array,
    weights: jax.Array,
    num_classes: int,
    *,
    C: float = 1.0,
    max_iter: int = 1000,
    tol: float = 1e-6,
) -> LogRegParams:
    """One weighted L2 logistic-regression fit (traceable; vmap over weights).

    Args:
      x: (n, d) float32 features.
      y: (n,) int labels in [0, num_classes).
      weights: (n,) sample multiplicities (a resample's counts, or ones).
      num_classes: K, the full class list.
      C: inverse L2 strength, as in scikit-learn.
      max_iter: L-BFGS iterations at most (the reference: 1000).
      tol: stop when the gradient norm of the objective / n is below this.

    Returns:
      `LogRegParams` with w (K, d), b (K,), present (K,).

    References:
      arXiv:2603.29915 §4.2; scikit-learn `LogisticRegression` (lbfgs).
    """
    x = jnp.asarray(x, jnp.float32)
    weights = jnp.asarray(weights, jnp.float32)
    n, d = x.shape
    onehot = jax.nn.one_hot(y, num_classes, dtype=jnp.float32)
    present = (weights @ onehot) > 0
    binary = jnp.sum(present) == 2
    l2 = jnp.where(binary, 1.0, 0.5) / (C * n)

    def objective(theta):
        w, b = theta
        logp = jax.nn.log_softmax(
            _masked_logits(LogRegParams(w, b, present), x), axis=-1
        )
        nll = -jnp.sum(jnp.where(onehot > 0, logp, 0.0), axis=-1)
        # A row of an absent class has weight 0 but infinite loss: drop it
        # instead of multiplying 0 by inf.
        nll = jnp.where(weights > 0, weights * nll, 0.0)
        return jnp.sum(nll) / n + l2 * jnp.sum(w * w)

    tx = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)
    theta0 = (jnp.zeros((num_classes, d), jnp.float32), jnp.zeros(num_classes))

    def step(carry):
        theta, state, _ = carry
        value, grad = value_and_grad(theta, state=state)
        updates, state = tx.update(
            grad, state, theta, value=value, grad=grad, value_fn=objective
        )
        return optax.apply_updates(theta, updates), state, optax.tree.norm(grad)

    def cond(carry):
        _, state, gnorm = carry
        return (optax.tree.get(state, "count") < max_iter) & (gnorm >= tol)

    carry = (theta0, tx.init(theta0), jnp.asarray(jnp.inf, jnp.float32))
    (w, b), _, _ = jax.lax.while_loop(cond, step, carry)
    w = jnp.where(present[:, None], w, 0.0)
    b = jnp.where(present, b - jnp.sum(jnp.where(present, b, 0.0)) / present.sum(), 0)
    return LogRegParams(w, b, present)


def fit_bootstrap_logreg(
    x: jax.Array,
    y: jax.Array,
    num_classes: int,
    key: jax.Array,
    *,
    num_resamples: int = 20,
    C: float = 1.0,
    max_iter: int = 1000,
    tol: float = 1e-6,
) -> LogRegParams:
    """Fits B bootstrap logistic regressions at once (vmap over resamples).

    Args:
      x: (n, d) training features (z-scored, as in the paper).
      y: (n,) int labels in [0, num_classes).
      num_classes: K.
      key: PRNG key of the resampling.
      num_resamples: B (the paper: 20).
      C, max_iter, tol: see `fit_logreg`.

    Returns:
      Stacked `LogRegParams`: w (B, K, d), b (B, K), present (B, K).

    References:
      arXiv:2603.29915 §4.2; Efron 1979 (the bootstrap).
    """
    check_finite({"x": x})
    y = jnp.asarray(y)
    weights = resample_weights(key, x.shape[0], num_resamples)
    return _fit_resamples(x, y, weights, int(num_classes), C, max_iter, tol)


# Module-level and keyed on shapes only (C, max_iter and tol are traced), so
# repeated fits reuse one compiled program instead of compiling a fresh
# closure at every call.
@functools.partial(jax.jit, static_argnames="num_classes")
def _fit_resamples(x, y, weights, num_classes, C, max_iter, tol):
    fit = lambda wt: fit_logreg(x, y, wt, num_classes, C=C, max_iter=max_iter, tol=tol)  # noqa: E731
    return jax.vmap(fit)(weights)


def logreg_probs(params: LogRegParams, x: jax.Array) -> jax.Array:
    """Class probabilities of each stacked member.

    Args:
      params: stacked `LogRegParams` (B, K, d) or a single fit (K, d).
      x: (N, d) features.

    Returns:
      (B, N, K) float32 (or (N, K) for a single fit); absent classes are 0.
    """
    x = jnp.asarray(x, jnp.float32)
    if params.w.ndim == 2:
        return jax.nn.softmax(_masked_logits(params, x), axis=-1)
    return jax.vmap(lambda p: jax.nn.softmax(_masked_logits(p, x), axis=-1))(params)


def bootstrap_logreg_uncertainty(params: LogRegParams, x: jax.Array) -> Estimate:
    """U_epi = (1/K) Σ_k Var_b[p_{b,k}(x)] and aleatoric H(p̄).

    Args:
      params: stacked `LogRegParams` from `fit_bootstrap_logreg`.
      x: (N, d) features.

    Returns:
      `Estimate` of (N,) epistemic, (N,) aleatoric, (N, K) mean probabilities.

    References:
      arXiv:2603.29915 Eq. 1 and §4.2; Efron 1979.
    """
    check_finite({"x": x})
    return variance_estimate(logreg_probs(params, x))
