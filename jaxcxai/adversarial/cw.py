"""Carlini & Wagner l2 attack with a binary search over c, vmapped over images.

Carlini & Wagner 2017 ("Towards Evaluating the Robustness of Neural
Networks"): minimise ||x' - x||_2^2 + c f(x') with
f(x') = max(max_{i != t} Z_i - Z_t, -kappa) (targeted; untargeted:
f = max(Z_y - max_{i != y} Z_i, -kappa)), Z the logits, by Adam over

- `tanh=True` (the paper's change of variables): x' = lo + (hi - lo)
  (tanh(w) + 1) / 2, w initialised at x (its arctanh, clipped just inside
  +-1), so x' stays in the box without clipping; each round keeps its
  smallest successful iterate;
- `tanh=False` (the uq-xai reference variant, comrados/uq-xai
  `data/adversarial.py`, spec xai.md section 1.4): x' = clip(x + delta,
  lo, hi) with delta from 0 (lo, hi = -inf, inf: no clipping, as the
  reference); each round's result is its last iterate. `squared_norm=False`
  adds the reference's unsquared ||delta||_2 (gradient 0 at delta = 0, as
  PyTorch's).

Binary search over c per image (`binary_steps` rounds, each restarting from
x with a fresh Adam state): a round that succeeds lowers the upper bound to
c, one that fails raises the lower bound; c moves to the midpoint once an
upper bound exists, else grows tenfold. The result is the successful round
result with the smallest distance, or, if no round succeeded, the last
round's result.

Each image's search is vmapped over the batch (`over_targets` vmaps it over
target classes too). The rounds and the Adam steps are looped on the host,
one compiled Adam step per call (`core.host_loop`; XLA:CPU runs a conv
net's gradient inside a `while` loop about 8x slower); the settings (c,
kappa, lr, lo, hi, steps) are traced, so one program serves them all.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcxai.adversarial import core
from jaxcxai.adversarial.core import AttackResult

__all__ = ["cw_l2", "cw_margin"]

_NO_UPPER = 1e10  # the search has no upper bound on c yet


def cw_margin(logits: jax.Array, t: jax.Array, targeted: bool, kappa) -> jax.Array:
    """Carlini & Wagner's f (their f_6) of one image: (K,), () -> ().

    Targeted: max(max_{i != t} Z_i - Z_t, -kappa); untargeted (t the true
    label): max(Z_t - max_{i != t} Z_i, -kappa).
    """
    zt = logits[t]
    other = jnp.max(jnp.where(jnp.arange(logits.shape[0]) == t, -jnp.inf, logits))
    return jnp.maximum(other - zt if targeted else zt - other, -kappa)


def _distance(delta: jax.Array, squared: bool) -> jax.Array:
    s = jnp.sum(delta * delta)
    if squared:
        return s
    pos = s > 0  # zero (sub)gradient at delta = 0, as torch.norm
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)


def _parts(p, cfg):
    """The change of variables x(w), w at x0, the optimiser, the loss."""
    targeted, tanh, squared = cfg
    lo, hi = p["lo"], p["hi"]
    if tanh:
        to_x = lambda w, x0: lo + (hi - lo) * (jnp.tanh(w) + 1.0) / 2.0
        w_at = lambda x0: jnp.arctanh(
            jnp.clip((x0 - lo) / (hi - lo) * 2.0 - 1.0, -1.0 + 1e-6, 1.0 - 1e-6)
        )
    else:
        to_x = lambda w, x0: jnp.clip(x0 + w, lo, hi)
        w_at = jnp.zeros_like
    opt = optax.adam(p["lr"])  # torch.optim.Adam's defaults: b1 .9, b2 .999, eps 1e-8
    return to_x, w_at, opt


def _adversarial(logits, t, p, targeted):
    """argmax == t (targeted) and a margin of at least kappa."""
    m = cw_margin(logits, t, targeted, p["kappa"])
    return core.is_success(logits, t, targeted) & (m <= -p["kappa"])


def _keep(best, x, logits, dist, hit, index):
    """The smallest successful (x, logits, dist) so far and the first hit."""
    bx, bl, bd, first = best
    better = hit & (dist < bd)
    pick = lambda new, old: jnp.where(better, new, old)
    first = jnp.where((first < 0) & hit, index, first)
    return pick(x, bx), pick(logits, bl), pick(dist, bd), first


def _eval(model, to_x, w, x0, t, c, p, cfg):
    x = to_x(w, x0)
    logits, _ = model(x)
    dist = _distance(x - x0, cfg[2])
    return dist + c * cw_margin(logits, t, cfg[0], p["kappa"]), (x, logits, dist)


_STATIC = ("apply_fn", "cfg")


def _new_round(x0, search, p, cfg):
    """Round state per image: (j, w, Adam state, best of the round)."""
    _, w_at, opt = _parts(p, cfg)
    w = w_at(x0)
    bx, bl, bd, first = search[3]
    best = (bx, bl, jnp.full_like(bd, jnp.inf), jnp.full_like(first, -1))
    return jnp.zeros_like(first), w, jax.vmap(opt.init)(w), best


@partial(jax.jit, static_argnames=_STATIC)
def _begin(apply_fn, x0, t, p, cfg):
    """The search state per image, (c, lower, upper, best (x, logits, dist,
    first)), and the first round's state."""
    logits = jax.vmap(lambda x: core.single_image(apply_fn)(x)[0])(x0)
    n = x0.shape[0]
    best = (x0, logits, jnp.full((n,), jnp.inf), jnp.full((n,), -1, jnp.int32))
    search = (jnp.full((n,), p["c"]), jnp.zeros((n,)), jnp.full((n,), _NO_UPPER),
              best)  # fmt: skip
    return search, _new_round(x0, search, p, cfg)


@partial(jax.jit, static_argnames=_STATIC + ("k",))
def _adam_chunk(apply_fn, rnd, x0, t, c, offset, p, cfg, k):
    """`k` unrolled Adam steps of every image (masked past `steps`)."""
    model = core.single_image(apply_fn)
    to_x, _, opt = _parts(p, cfg)

    def one(rnd, x0, t, c, offset):
        for _ in range(k):
            j, w, state, best = rnd
            (_, (x, logits, dist)), g = jax.value_and_grad(
                lambda w: _eval(model, to_x, w, x0, t, c, p, cfg), has_aux=True
            )(w)
            hit = _adversarial(logits, t, p, cfg[0])
            new_best = _keep(best, x, logits, dist, hit, offset + j)
            upd, new_state = opt.update(g, state, w)
            new = (j + 1, optax.apply_updates(w, upd), new_state, new_best)
            rnd = jax.tree.map(partial(jnp.where, j < p["steps"]), new, rnd)
        return rnd

    return jax.vmap(one)(rnd, x0, t, c, offset)


@partial(jax.jit, static_argnames=_STATIC)
def _round_end(apply_fn, rnd, search, x0, t, offset, p, cfg):
    """The round's last iterate and result, the binary-search update of c:
    (search state, the next round's state, the `AttackResult` so far)."""
    model = core.single_image(apply_fn)
    to_x, _, _ = _parts(p, cfg)

    def one(rnd, search, x0, t, offset):
        j, w, _, best = rnd
        c, lower, upper, (bx, bl, bd, bfirst) = search
        _, (x, logits, dist) = _eval(model, to_x, w, x0, t, c, p, cfg)
        hit = _adversarial(logits, t, p, cfg[0])
        rx, rl, rd, rfirst = _keep(best, x, logits, dist, hit, offset + j)
        if cfg[1]:  # tanh: the round's smallest success, else its last iterate
            hit = jnp.isfinite(rd)
            x, logits, dist = (jnp.where(hit, rx, x), jnp.where(hit, rl, logits),
                               jnp.where(hit, rd, dist))  # fmt: skip
        better = hit & (dist < bd)
        none = ~jnp.isfinite(bd) & ~hit  # the last round stands in until a success
        pick = lambda new, old: jnp.where(better | none, new, old)
        best = (pick(x, bx), pick(logits, bl), jnp.where(better, dist, bd),
                jnp.where(bfirst < 0, rfirst, bfirst))  # fmt: skip
        upper = jnp.where(hit, jnp.minimum(upper, c), upper)
        lower = jnp.where(hit, lower, jnp.maximum(lower, c))
        c = jnp.where(upper < _NO_UPPER, (lower + upper) / 2.0, c * 10.0)
        return c, lower, upper, best

    search = jax.vmap(one)(rnd, search, x0, t, offset)
    x, logits, _, first = search[3]
    norms = core.perturbation_norms(x0, x)
    hit = core.is_success(logits, t, cfg[0])
    result = AttackResult(x, hit, first, norms["linf"], norms["l2"], logits)
    return search, _new_round(x0, search, p, cfg), result


def _search(apply_fn, x, t, p, cfg, steps, binary_steps):
    """The binary search (rounds on the host) and the Adam steps (looped on
    the host, one per call)."""
    st = dict(apply_fn=apply_fn, cfg=cfg)
    # One Adam step per program: it compiles about 2x faster than a chunk of
    # `core.CHUNK`, at ~20% more run time on a conv net.
    k = 1
    search, rnd = _begin(x0=x, t=t, p=p, **st)
    for b in range(binary_steps):
        offset = jnp.full((x.shape[0],), b * (steps + 1), jnp.int32)
        chunk = partial(_adam_chunk, x0=x, t=t, c=search[0], offset=offset, p=p,
                        k=k, **st)  # fmt: skip
        rnd = core.host_loop(lambda r, f=chunk: f(rnd=r), rnd, steps, k)
        search, rnd, result = _round_end(rnd=rnd, search=search, x0=x, t=t,
                                         offset=offset, p=p, **st)  # fmt: skip
    return result


def cw_l2(
    apply_fn: Callable,
    x: Any,
    target: Any,
    *,
    c: float = 1.0,
    binary_steps: int = 5,
    steps: int = 100,
    lr: float = 0.01,
    kappa: float = 0.0,
    tanh: bool = True,
    targeted: bool = True,
    squared_norm: bool = True,
    lo: float = -1.0,
    hi: float = 1.0,
) -> AttackResult:
    """Carlini & Wagner l2 (Carlini & Wagner 2017), binary search over c.

    Args:
      apply_fn: `(B, ...) -> (logits (B, K), acts)` or logits; images must
        be independent (eval-mode BatchNorm).
      x: (B, ...) float inputs inside [lo, hi].
      target: int or (B,) ints in [0, K): target classes (targeted) or true
        labels (untargeted).
      c: initial trade-off constant (every image starts here).
      binary_steps: rounds of the binary search (1: c fixed).
      steps: Adam steps per round.
      lr: Adam learning rate.
      kappa: confidence margin (>= 0).
      tanh: the tanh change of variables (needs a finite range); False: the
        uq-xai variant, delta from 0 clipped to the box.
      targeted: target classes rather than true labels.
      squared_norm: penalise ||delta||_2^2 (the paper); False: ||delta||_2
        (the uq-xai reference code).
      lo, hi: the data range.

    Returns:
      `AttackResult` with (B,) leading axes; `first_success` counts the
      steps + 1 iterates of each round (round b, step k: b (steps + 1) + k).

    Raises:
      ValueError: non-finite `x`, `x` outside [lo, hi], `target` outside
        [0, K), tanh with an infinite range, or a bad setting (named).
    """
    for name, v in (("c", c), ("lr", lr)):
        if not np.isfinite(float(v)) or float(v) <= 0:
            raise ValueError(f"{name} must be finite and > 0, got {v}")
    if not np.isfinite(float(kappa)) or float(kappa) < 0:
        raise ValueError(f"kappa must be finite and >= 0, got {kappa}")
    for name, v in (("steps", steps), ("binary_steps", binary_steps)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v}")
    if tanh and not (np.isfinite(float(lo)) and np.isfinite(float(hi))):
        raise ValueError(
            f"tanh=True needs a finite data range, got lo={lo}, hi={hi} "
            "(use tanh=False for an unbounded range)"
        )
    x, t = core.prepare(apply_fn, x, target, lo, hi)
    p = {"c": c, "kappa": kappa, "lr": lr, "lo": lo, "hi": hi}
    p = {k: jnp.asarray(v, x.dtype) for k, v in p.items()}
    p["steps"] = jnp.int32(steps)
    cfg = (bool(targeted), bool(tanh), bool(squared_norm))
    return _search(apply_fn, x, t, p, cfg, int(steps), int(binary_steps))
