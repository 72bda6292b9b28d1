"""Untargeted BIM, PGD and C&W attacks on a JAX classifier `f(x) -> logits`.

The adversarial perturbations of uncertainty gating (Mikriukov, Montavon &
Hoehne, arXiv:2603.29915, section 4.4; reference code comrados/uq-xai
`data/adversarial.py`), run on the MLP in the z-scored space with no
data-range clipping:

- BIM (Kurakin, Goodfellow & Bengio 2017, "Adversarial examples in the
  physical world"): 10 steps x <- x + alpha sign(grad CE), alpha =
  2.5 eps / n_iter = 0.25 eps, then delta = x - x0 clipped to [-eps, eps];
- PGD (Madry et al. 2018, "Towards Deep Learning Models Resistant to
  Adversarial Attacks"): the same step for 20 iterations, alpha = 0.125 eps,
  from a uniform start in the eps-box clamped to the global [min, max] of
  the attacked set; `restarts` > 1 keeps the highest-loss restart per sample
  (the paper uses 1);
- C&W (Carlini & Wagner 2017, "Towards Evaluating the Robustness of Neural
  Networks"), untargeted l2 without the tanh change of variables: delta
  starts at 0 and Adam (lr 0.01, 100 steps) minimises
  sum_i [c max(Z_y - max_{k != y} Z_k, -kappa) + ||delta_i||^2], kappa = 0,
  c in {0.1, 1, 10}. `unsquared_norm=True` is the reference's quirk: it
  adds ||delta_i||_2 (unsquared) although its comment says squared. The
  gradient of the norm at delta = 0 is taken as 0 (as PyTorch does).

`f` maps a (n, d) batch to (n, K) logits and must treat rows independently
(no train-mode BatchNorm), so the gradient of the summed loss is each
sample's own gradient. Everything is jitted; `attack_sweep` vmaps over the
budget levels.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxcxai.checks import check_finite

__all__ = [
    "CW_CONSTANTS",
    "EPSILONS",
    "attack_sweep",
    "bim",
    "carlini_wagner",
    "cross_entropy",
    "pgd",
    "sign_step",
]

EPSILONS = (0.01, 0.05, 0.1, 0.2)  # BIM / PGD l-inf budgets (section 4.4)
CW_CONSTANTS = (0.1, 1.0, 10.0)  # C&W trade-off constants c


def cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Per-sample softmax cross-entropy. (n, K), (n,) int -> (n,)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)


def _loss_sum(f, x, y):
    return jnp.sum(cross_entropy(f(x), y))


def sign_step(
    f: Callable, x_adv: jax.Array, x: jax.Array, y: jax.Array, eps, alpha
) -> jax.Array:
    """One BIM/PGD ascent step: x_adv + alpha sign(grad CE), projected.

    Kurakin et al. 2017; Madry et al. 2018; as used in arXiv:2603.29915.

    Args:
      f: (n, d) -> (n, K) logits.
      x_adv: (n, d) current iterate.
      x: (n, d) clean inputs (centre of the eps-box).
      y: (n,) int true labels.
      eps: l-inf budget.
      alpha: step size.

    Returns:
      (n, d) x + clip(x_adv + alpha sign(g) - x, -eps, eps).
    """
    g = jax.grad(_loss_sum, argnums=1)(f, x_adv, y)
    return x + jnp.clip(x_adv + alpha * jnp.sign(g) - x, -eps, eps)


@partial(jax.jit, static_argnums=(0,), static_argnames=("n_iter",))
def _bim(f, x, y, eps, alpha, n_iter):
    body = lambda _, xa: sign_step(f, xa, x, y, eps, alpha)
    return jax.lax.fori_loop(0, n_iter, body, x)


@partial(jax.jit, static_argnums=(0,), static_argnames=("n_iter", "restarts"))
def _pgd(f, x, y, eps, alpha, key, n_iter, restarts):
    lo, hi = jnp.min(x), jnp.max(x)

    def one(k):
        start = x + jax.random.uniform(k, x.shape, x.dtype, -1.0, 1.0) * eps
        start = jnp.clip(start, lo, hi)
        body = lambda _, xa: sign_step(f, xa, x, y, eps, alpha)
        xa = jax.lax.fori_loop(0, n_iter, body, start)
        return xa, cross_entropy(f(xa), y)

    xs, losses = jax.lax.map(one, jax.random.split(key, restarts))
    best = jnp.argmax(losses, axis=0)  # (n,)
    return jnp.take_along_axis(xs, best[None, :, None], axis=0)[0]


def _norm(delta, squared):
    s = jnp.sum(delta * delta, axis=-1)
    if squared:
        return s
    pos = s > 0  # zero (sub)gradient at delta = 0, as torch.norm
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)


@partial(
    jax.jit, static_argnums=(0,), static_argnames=("n_iter", "lr", "unsquared_norm")
)
def _cw(f, x, y, c, kappa, n_iter, lr, unsquared_norm):
    opt = optax.adam(lr)  # torch.optim.Adam defaults: b1 .9, b2 .999, eps 1e-8

    def loss(delta):
        z = f(x + delta)
        true = jnp.take_along_axis(z, y[:, None], axis=1)[:, 0]
        other = jnp.max(jnp.where(jax.nn.one_hot(y, z.shape[1]) > 0, -jnp.inf, z), 1)
        margin = jnp.maximum(true - other, -kappa)
        return jnp.sum(c * margin + _norm(delta, not unsquared_norm))

    def step(carry, _):
        delta, state = carry
        g = jax.grad(loss)(delta)
        upd, state = opt.update(g, state, delta)
        return (optax.apply_updates(delta, upd), state), None

    delta0 = jnp.zeros_like(x)
    (delta, _), _ = jax.lax.scan(step, (delta0, opt.init(delta0)), None, n_iter)
    return x + delta


def _inputs(x, y):
    check_finite({"x": x})
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.int32)
    if x.ndim != 2 or y.shape != x.shape[:1]:
        raise ValueError(f"x must be (n, d) and y (n,), got {x.shape} and {y.shape}")
    return x, y


def bim(
    f: Callable, x: Any, y: Any, eps: float, *, n_iter: int = 10, alpha=None
) -> jax.Array:
    """Basic Iterative Method (Kurakin et al. 2017), untargeted, l-inf.

    Settings of arXiv:2603.29915, section 4.4: 10 iterations,
    alpha = 2.5 eps / n_iter.

    Args:
      f: (n, d) -> (n, K) logits, jax-traceable.
      x: (n, d) clean inputs.
      y: (n,) int true labels.
      eps: l-inf budget.
      n_iter: iterations.
      alpha: step size (default 2.5 eps / n_iter).

    Returns:
      (n, d) adversarial inputs with |x_adv - x| <= eps.
    """
    x, y = _inputs(x, y)
    alpha = 2.5 * eps / n_iter if alpha is None else alpha
    return _bim(f, x, y, jnp.float32(eps), jnp.float32(alpha), n_iter=n_iter)


def pgd(
    f: Callable,
    x: Any,
    y: Any,
    eps: float,
    key: jax.Array,
    *,
    n_iter: int = 20,
    alpha=None,
    restarts: int = 1,
) -> jax.Array:
    """Projected gradient descent (Madry et al. 2018), untargeted, l-inf.

    Settings of arXiv:2603.29915, section 4.4: 20 iterations,
    alpha = 2.5 eps / n_iter = 0.125 eps, uniform start in the eps-box
    clamped to [min(x), max(x)], 1 restart.

    Args:
      f: (n, d) -> (n, K) logits, jax-traceable.
      x: (n, d) clean inputs.
      y: (n,) int true labels.
      eps: l-inf budget.
      key: PRNG key of the random starts.
      n_iter: iterations per restart.
      alpha: step size (default 2.5 eps / n_iter).
      restarts: random starts; the highest final loss wins per sample.

    Returns:
      (n, d) adversarial inputs with |x_adv - x| <= eps.
    """
    x, y = _inputs(x, y)
    alpha = 2.5 * eps / n_iter if alpha is None else alpha
    e, a = jnp.float32(eps), jnp.float32(alpha)
    return _pgd(f, x, y, e, a, key, n_iter=n_iter, restarts=restarts)


def carlini_wagner(
    f: Callable,
    x: Any,
    y: Any,
    c: float,
    *,
    kappa: float = 0.0,
    n_iter: int = 100,
    lr: float = 0.01,
    unsquared_norm: bool = False,
) -> jax.Array:
    """Untargeted C&W l2 attack (Carlini & Wagner 2017), no tanh space.

    Settings of arXiv:2603.29915, section 4.4: delta from 0, Adam lr 0.01,
    100 iterations, kappa = 0.

    Args:
      f: (n, d) -> (n, K) logits, jax-traceable.
      x: (n, d) clean inputs.
      y: (n,) int true labels.
      c: weight of the margin term.
      kappa: confidence margin.
      n_iter: Adam steps.
      lr: Adam learning rate.
      unsquared_norm: penalise ||delta||_2 instead of ||delta||_2^2 (the
        reference code's behaviour).

    Returns:
      (n, d) adversarial inputs x + delta.
    """
    x, y = _inputs(x, y)
    c, k = jnp.float32(c), jnp.float32(kappa)
    return _cw(f, x, y, c, k, n_iter=n_iter, lr=lr, unsquared_norm=unsquared_norm)


def attack_sweep(
    f: Callable,
    x: Any,
    y: Any,
    levels: Any,
    method: str,
    key: jax.Array | None = None,
    **kwargs,
) -> jax.Array:
    """One attack at every budget level, vmapped over the levels.

    Args:
      f: (n, d) -> (n, K) logits.
      x: (n, d) clean inputs.
      y: (n,) int labels.
      levels: (L,) eps (BIM, PGD; `EPSILONS`) or c (C&W; `CW_CONSTANTS`).
      method: "bim", "pgd" or "cw".
      key: PRNG key (PGD only); level l uses `jax.random.split(key, L)[l]`.
      **kwargs: settings passed on (n_iter, restarts, kappa, ...; not alpha,
        which follows each eps).

    Returns:
      (L, n, d) adversarial inputs (arXiv:2603.29915, section 4.4).
    """
    x, y = _inputs(x, y)
    check_finite({"levels": levels})
    levels = jnp.atleast_1d(jnp.asarray(levels, jnp.float32))
    if method == "bim":
        n = kwargs.pop("n_iter", 10)
        fn = lambda e, _: _bim(f, x, y, e, 2.5 * e / n, n_iter=n)
    elif method == "pgd":
        if key is None:
            raise ValueError("method 'pgd' needs a PRNG key")
        n, r = kwargs.pop("n_iter", 20), kwargs.pop("restarts", 1)
        fn = lambda e, k: _pgd(f, x, y, e, 2.5 * e / n, k, n_iter=n, restarts=r)
    elif method == "cw":
        kappa = jnp.float32(kwargs.pop("kappa", 0.0))
        cw = {"n_iter": 100, "lr": 0.01, "unsquared_norm": False, **kwargs}
        fn = lambda c, _: _cw(f, x, y, c, kappa, **cw)
    else:
        raise ValueError(f"method must be 'bim', 'pgd' or 'cw', got {method!r}")
    keys = jax.random.split(jax.random.key(0) if key is None else key, levels.shape[0])
    return jax.vmap(fn)(levels, keys)
