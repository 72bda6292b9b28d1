"""The step loop of the gradient attacks (BIM, PGD, MI-FGSM; FGSM = 1 step).

One step of one image (`step`), in the arithmetic of torchattacks' PGD so
that iterates agree bit for bit where the gradient signs do:
x' = x_t + alpha sign(d) (l2: alpha d / ||d||_2), delta = x' - x projected
onto the eps-ball (l-inf: clipped to [-eps, eps]; l2: rescaled to norm <=
eps), x_{t+1} = clip(x + delta, lo, hi). `d` is the gradient of the
objective, or with momentum mu > 0 the MI-FGSM accumulation
g_t = mu g_{t-1} + grad / ||grad||_1 (Dong et al. 2018).

Steps are vmapped over the images and unrolled in chunks of `core.CHUNK`
per compiled program, looped on the host (`core.host_loop`: XLA:CPU runs a
conv net's input gradient inside a `while` loop about 8x slower). Each
image's step is masked once it has run `steps` steps or, with early stop,
once an iterate succeeded; the host stops as soon as every image is done.
The settings (eps, alpha, lo, hi, steps, momentum, early_stop) are traced,
so one program serves them all; `norm`, `targeted`, the model and the
objective are static.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.adversarial import core
from jaxcxai.adversarial.core import AttackResult
from jaxcxai.attribution.core import check_key

__all__ = ["NORMS", "run", "start_in_ball", "step"]

NORMS = ("linf", "l2")


def _l2(v: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(v * v))


def _unit_l2(v: jax.Array) -> jax.Array:
    """v / ||v||_2, and 0 for v = 0 (no step rather than NaN)."""
    n = _l2(v)
    return jnp.where(n > 0, v / jnp.where(n > 0, n, 1.0), 0.0)


def _project(x, x0, d, eps, alpha, lo, hi, norm):
    """One step along direction `d`, projected onto the eps-ball and the range."""
    if norm == "linf":
        delta = jnp.clip(x + alpha * jnp.sign(d) - x0, -eps, eps)
    else:
        delta = x + alpha * _unit_l2(d) - x0
        delta = delta * jnp.minimum(1.0, eps / _l2(delta))  # eps/0 = inf -> 1
    return jnp.clip(x0 + delta, lo, hi)


@partial(jax.jit, static_argnames=("norm",))
def start_in_ball(key, x0, eps, lo, hi, norm):
    """PGD's random starts of the batch x0 (B, ...): uniform in the l-inf
    box, or uniform in the l2 ball (a Gaussian direction, radius
    eps U^(1/d), d the image size); then clipped to [lo, hi]."""
    if norm == "linf":
        delta = jax.random.uniform(key, x0.shape, x0.dtype, -1.0, 1.0) * eps
    else:
        k1, k2 = jax.random.split(key)
        d = int(np.prod(x0.shape[1:]))
        radius = jax.random.uniform(k2, (x0.shape[0],), x0.dtype) ** (1.0 / d) * eps
        delta = jax.vmap(lambda v, r: _unit_l2(v) * r)(
            jax.random.normal(k1, x0.shape, x0.dtype), radius
        )
    return jnp.clip(x0 + delta, lo, hi)


def step(value, x0, t, p, norm, targeted, state):
    """One masked step of one image; `state` = (i, x, acc, first, done).

    An image moves while i < steps and, with early stop, until an iterate
    succeeds (then it keeps that iterate). `p` holds the traced settings
    (eps, alpha, lo, hi, steps, momentum, early_stop).
    """
    i, x, acc, first, done = state
    active = (i < p["steps"]) & ~(p["early_stop"] & done)
    (_, logits), g = jax.value_and_grad(value, has_aux=True)(x, t)
    hit = core.is_success(logits, t, targeted)
    first = jnp.where(active & (first < 0) & hit, i, first)
    # MI-FGSM: l1-normalised accumulation (Dong et al. 2018); momentum 0
    # steps along g itself (not g / ||g||_1, whose tiny entries may
    # underflow to a zero sign).
    l1 = jnp.sum(jnp.abs(g))
    acc_new = p["momentum"] * acc + jnp.where(l1 > 0, g / jnp.where(l1 > 0, l1, 1), 0)
    d = jnp.where(p["momentum"] > 0, acc_new, g)
    x_new = _project(x, x0, d, p["eps"], p["alpha"], p["lo"], p["hi"], norm)
    x_new = jnp.where(p["early_stop"] & hit, x, x_new)  # a success stays put
    keep = lambda new, old: jnp.where(active, new, old)
    return keep(i + 1, i), keep(x_new, x), keep(acc_new, acc), first, keep(hit, done)


def _value(apply_fn, objective):
    model = core.single_image(apply_fn)

    def value(xi, ti):
        logits, acts = model(xi)
        return objective(logits[None], acts, ti[None])[0], logits

    return value


_STATIC = ("apply_fn", "objective", "norm", "targeted")


@partial(jax.jit, static_argnames=_STATIC + ("k",))
def _chunk(apply_fn, objective, state, x0, t, p, norm, targeted, k):
    """`k` unrolled steps of every image (vmapped): one compiled program."""
    one_step = partial(step, _value(apply_fn, objective), p=p, norm=norm,
                       targeted=targeted)  # fmt: skip

    def one(x0, t, state):
        for _ in range(k):
            state = one_step(x0, t, state=state)
        return state

    return jax.vmap(one)(x0, t, state)


@partial(jax.jit, static_argnames=("apply_fn", "objective", "targeted"))
def _finish(apply_fn, objective, state, x0, t, targeted):
    """The result at the last iterates: (AttackResult, objective (B,))."""
    i, x, _, first, _ = state
    obj, logits = jax.vmap(_value(apply_fn, objective))(x, t)
    hit = core.is_success(logits, t, targeted)
    first = jnp.where((first < 0) & hit, i, first)
    norms = core.perturbation_norms(x0, x)
    return AttackResult(x, hit, first, norms["linf"], norms["l2"], logits), obj


def _positive(name: str, value: Any, allow_zero: bool = False) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    v = float(value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")


def _settings(eps, alpha, steps, norm, momentum) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    _positive("eps", eps)
    _positive("alpha", alpha)
    _positive("momentum", momentum, allow_zero=True)
    if not isinstance(steps, jax.core.Tracer) and (int(steps) != steps or steps < 1):
        raise ValueError(f"steps must be a positive integer, got {steps}")


def run(apply_fn, x, target, key, objective, norm, targeted, random_start, **p):
    """Checks, then the step loop of one attack of the batch `x`.

    Args:
      apply_fn, x, target, key, objective, norm, targeted, random_start:
        as in `attacks.iterative`.
      **p: eps, alpha, steps, momentum, early_stop, lo, hi.

    Returns:
      (AttackResult, objective at x_adv (B,)).
    """
    _settings(p["eps"], p["alpha"], p["steps"], norm, p["momentum"])
    x, t = core.prepare(apply_fn, x, target, p["lo"], p["hi"])
    if objective is None:
        objective = core.targeted_objective if targeted else core.untargeted_objective
    steps, early_stop = int(p["steps"]), p["early_stop"]
    # Float settings in the inputs' dtype: float64 inputs step by the exact
    # float64 alpha and eps (as PyTorch does with Python floats).
    types = {"steps": jnp.int32, "early_stop": jnp.bool_}
    p = {k: jnp.asarray(v, types.get(k, x.dtype)) for k, v in p.items()}
    start = x
    if random_start:
        if key is None:
            raise ValueError("key must be a PRNG key for a random start, got None")
        check_key("key", key)
        start = start_in_ball(key, x, p["eps"], p["lo"], p["hi"], norm=norm)
    n = x.shape[0]
    state = (jnp.zeros((n,), jnp.int32), start, jnp.zeros_like(x),
             jnp.full((n,), -1, jnp.int32), jnp.zeros((n,), jnp.bool_))  # fmt: skip
    model = dict(apply_fn=apply_fn, objective=objective, targeted=bool(targeted))
    k = core.chunk_size(steps)
    chunk = lambda s: _chunk(state=s, x0=x, t=t, p=p, k=k, norm=norm, **model)
    done = (lambda s: s[4]) if early_stop else None
    state = core.host_loop(chunk, state, steps, k, done)
    return _finish(state=state, x0=x, t=t, **model)
