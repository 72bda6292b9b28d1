"""Gradient attacks: FGSM, BIM, PGD, MI-FGSM; l-inf and l2; vmapped.

- FGSM (Goodfellow, Shlens & Szegedy 2015, "Explaining and Harnessing
  Adversarial Examples"): one step of size eps along sign(grad) (l-inf) or
  grad / ||grad||_2 (l2, the fast gradient method).
- BIM / I-FGSM (Kurakin, Goodfellow & Bengio 2017, "Adversarial examples in
  the physical world"): `steps` such steps of size alpha from x, each
  projected onto the eps-ball around x and clipped to the data range.
- PGD (Madry et al. 2018, "Towards Deep Learning Models Resistant to
  Adversarial Attacks"): BIM from a uniform random start in the eps-ball,
  `restarts` times; per image the best restart is kept.
- MI-FGSM (Dong et al. 2018, "Boosting Adversarial Attacks with Momentum"):
  BIM stepping along g_t = mu g_{t-1} + grad / ||grad||_1.

A step (`iterates.step`) is x' = x_t + alpha sign(g) (l2: alpha g /
||g||_2), delta = x' - x projected onto the eps-ball, x_{t+1} = clip(x +
delta, lo, hi): torchattacks' arithmetic. `g` is the gradient of
`objective(logits, acts, target)`, which the attack ascends; the default is
-CE(logits, target) (targeted) or CE(logits, label) (untargeted), and any
layer-level loss (a push along a concept direction at a named layer, read
from `acts`) can replace it.

Each attack is written for one image and vmapped over the batch;
`over_targets` vmaps again over target classes. The steps run as compiled
chunks of unrolled steps looped on the host (`iterates`). With
`early_stop=True` an image stops moving at the first iterate that succeeds
(its steps are masked, and the loop ends once all images are done); the
step of that first success is recorded in `AttackResult.first_success`
either way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.adversarial import core, iterates
from jaxcxai.adversarial.core import AttackResult
from jaxcxai.adversarial.cw import cw_l2
from jaxcxai.attribution.core import check_key

__all__ = [
    "ATTACKS",
    "bim",
    "fgsm",
    "iterative",
    "mifgsm",
    "over_targets",
    "pgd",
]


def iterative(
    apply_fn: Callable,
    x: Any,
    target: Any,
    key: jax.Array | None,
    *,
    eps: float,
    alpha: float,
    steps: int,
    norm: str = "linf",
    targeted: bool = True,
    random_start: bool = False,
    momentum: float = 0.0,
    early_stop: bool = False,
    lo: float = -1.0,
    hi: float = 1.0,
    objective: Callable | None = None,
) -> AttackResult:
    """BIM (no random start), PGD (random start), MI-FGSM (momentum > 0).

    Kurakin et al. 2017; Madry et al. 2018; Dong et al. 2018.

    Args:
      apply_fn: `(B, ...) -> (logits (B, K), {layer: activation})` or
        logits; images must be independent (eval-mode BatchNorm).
      x: (B, ...) float inputs inside [lo, hi].
      target: int or (B,) ints in [0, K): target classes (targeted) or true
        labels (untargeted).
      key: PRNG key of the random start (drawn for the batch at once); may
        be None without one.
      eps: radius of the l-inf or l2 ball around x.
      alpha: step size.
      steps: number of steps.
      norm: "linf" (sign steps, box projection) or "l2" (normalised
        gradient steps, projection onto the l2 ball).
      targeted: success is argmax == target, else argmax != target.
      random_start: start uniformly inside the eps-ball (PGD).
      momentum: mu of MI-FGSM; 0 steps along the raw gradient.
      early_stop: an image stops moving at its first successful iterate.
      lo, hi: the data range (inf: no clipping on that side).
      objective: `objective(logits (B, K), acts, target (B,)) -> (B,)`
        to ascend; default -CE(logits, target) (targeted) or CE(logits,
        label) (untargeted).

    Returns:
      `AttackResult` with (B,) leading axes.

    Raises:
      ValueError: non-finite `x` (`checks.NonFiniteError`), `x` outside
        [lo, hi], `target` outside [0, K), or a bad setting (named).
    """
    settings = dict(eps=eps, alpha=alpha, steps=steps, momentum=momentum,
                    early_stop=early_stop, lo=lo, hi=hi)  # fmt: skip
    return iterates.run(apply_fn, x, target, key, objective, norm, targeted,
                        random_start, **settings)[0]  # fmt: skip


def fgsm(
    apply_fn: Callable,
    x: Any,
    target: Any,
    *,
    eps: float,
    norm: str = "linf",
    targeted: bool = True,
    lo: float = -1.0,
    hi: float = 1.0,
    objective: Callable | None = None,
) -> AttackResult:
    """FGSM (Goodfellow et al. 2015): x + eps sign(grad), clipped to [lo, hi]
    (l2: x + eps grad / ||grad||_2). One `iterative` step with alpha = eps;
    arguments as in `iterative`."""
    return iterative(apply_fn, x, target, None, eps=eps, alpha=eps, steps=1,
                     norm=norm, targeted=targeted, lo=lo, hi=hi,
                     objective=objective)  # fmt: skip


def pgd(
    apply_fn: Callable,
    x: Any,
    target: Any,
    key: jax.Array,
    *,
    eps: float,
    alpha: float,
    steps: int,
    restarts: int = 1,
    norm: str = "linf",
    targeted: bool = True,
    early_stop: bool = False,
    lo: float = -1.0,
    hi: float = 1.0,
    objective: Callable | None = None,
) -> AttackResult:
    """PGD with random start and restarts (Madry et al. 2018).

    Restart r runs `iterative(random_start=True)` with key
    `jax.random.split(key, restarts)[r]`; per image the kept restart is the
    successful one with the highest objective, or, if none succeeded, the
    one with the highest objective. Other arguments as in `iterative`.
    """
    if int(restarts) != restarts or restarts < 1:
        raise ValueError(f"restarts must be a positive integer, got {restarts}")
    if key is None:
        raise ValueError("key must be a PRNG key for PGD's random start, got None")
    check_key("key", key)
    settings = dict(eps=eps, alpha=alpha, steps=steps, momentum=0.0,
                    early_stop=early_stop, lo=lo, hi=hi)  # fmt: skip
    run = lambda k: iterates.run(apply_fn, x, target, k, objective, norm, targeted,
                                 True, **settings)  # fmt: skip
    if restarts == 1:
        return run(jax.random.split(key, 1)[0])[0]
    runs = [run(k) for k in jax.random.split(key, int(restarts))]
    results = jax.tree.map(lambda *a: jnp.stack(a), *[r for r, _ in runs])
    obj = jnp.stack([o for _, o in runs])
    scored = jnp.where(results.success, obj, -jnp.inf)
    best = jnp.where(
        results.success.any(0), jnp.argmax(scored, 0), jnp.argmax(obj, 0)
    )  # (B,)
    pick = lambda a: jnp.take_along_axis(
        a, best.reshape((1, -1) + (1,) * (a.ndim - 2)), axis=0
    )[0]
    return jax.tree.map(pick, results)


def bim(apply_fn, x, target, key=None, **kwargs) -> AttackResult:
    """BIM / I-FGSM (Kurakin et al. 2017): `iterative` without a random start."""
    return iterative(apply_fn, x, target, key, **kwargs)


def mifgsm(apply_fn, x, target, key=None, *, momentum=1.0, **kwargs) -> AttackResult:
    """MI-FGSM (Dong et al. 2018): `iterative` with momentum (default mu = 1)."""
    return iterative(apply_fn, x, target, key, momentum=momentum, **kwargs)


def _fgsm(apply_fn, x, target, key=None, **kwargs) -> AttackResult:
    return fgsm(apply_fn, x, target, **kwargs)


def _cw_l2(apply_fn, x, target, key=None, **kwargs) -> AttackResult:
    return cw_l2(apply_fn, x, target, **kwargs)


# name -> fn(apply_fn, x, target, key, **kwargs): one call for every attack.
ATTACKS: dict[str, Callable[..., AttackResult]] = {
    "fgsm": _fgsm,
    "bim": bim,
    "pgd": pgd,
    "mifgsm": mifgsm,
    "cw_l2": _cw_l2,
}


def over_targets(
    attack_fn: Callable | str,
    apply_fn: Callable,
    x: Any,
    targets: Any,
    key: jax.Array | None,
    **kwargs,
) -> AttackResult:
    """One attack of every image towards every target class, vmapped.

    Args:
      attack_fn: a name in `ATTACKS` or a function called as
        `fn(apply_fn, x, target, key, **kwargs)` (`fgsm` and `cw_l2`, which
        take no key, are called without it).
      apply_fn: the model, as in `iterative`.
      x: (B, ...) inputs.
      targets: (T,) ints in [0, K); target j uses key
        `jax.random.split(key, T)[j]`.
      key: PRNG key (None for attacks without randomness; PGD then raises).
      **kwargs: the attack's settings.

    Returns:
      `AttackResult` with leading (T, B) axes.
    """
    if isinstance(attack_fn, str):
        if attack_fn not in ATTACKS:
            raise ValueError(
                f"unknown attack {attack_fn!r}; valid: {', '.join(sorted(ATTACKS))}"
            )
        attack_fn = ATTACKS[attack_fn]
    x, _ = core.prepare(apply_fn, x, 0, kwargs.get("lo", -1.0), kwargs.get("hi", 1.0))
    t = np.asarray(targets)
    if t.ndim != 1 or t.shape[0] < 1:
        raise ValueError(f"targets must be a non-empty (T,) array, got shape {t.shape}")
    t = core.check_targets(t, t.shape[0], core.num_classes(apply_fn, x), "targets")
    takes_key = "key" in inspect.signature(attack_fn).parameters
    n = x.shape[0]

    def one(tj, kj):
        tb = jnp.broadcast_to(tj, (n,))
        if takes_key:
            return attack_fn(apply_fn, x, tb, kj, **kwargs)
        return attack_fn(apply_fn, x, tb, **kwargs)

    if key is None:  # an attack that needs a key says so
        return jax.vmap(lambda tj: one(tj, None))(t)
    return jax.vmap(one)(t, jax.random.split(key, t.shape[0]))
