"""The shared contract of the attacks: results, objectives, input checks, norms.

An attack takes a pure model function `apply_fn(x) -> (logits (B, K),
{layer: activation})` (or plain logits), inputs `x` (B, ...) in the data
range [lo, hi], a class `target` per image (the target class of a targeted
attack, the true label of an untargeted one) and, where it samples, a PRNG
key; it returns an `AttackResult`. The helpers here fix how those arguments
are read, so that every attack rejects bad input the same way:

- `prepare`: eager checks of `x` (floating point, finite, inside [lo, hi])
  and `target` (integers in [0, K)); skipped inside a trace.
- `outputs`: `(logits, acts)` of either model contract.
- `targeted_objective`, `untargeted_objective`: the default value an attack
  ascends (any `objective(logits, acts, target) -> (B,)` can replace it,
  e.g. a push along a concept direction at a named layer).
- `is_success`, `perturbation_norms`, `success_rate`: what is reported.
- `single_image`, `chunk_size`, `host_loop`: how the attacks run: written
  for one image and vmapped, their steps compiled in chunks looped on the
  host (see `CHUNK`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcxai import checks
from jaxcxai.attribution.core import tiled_pool_grads

__all__ = [
    "CHUNK",
    "AttackResult",
    "check_range",
    "check_targets",
    "chunk_size",
    "host_loop",
    "is_success",
    "num_classes",
    "outputs",
    "perturbation_norms",
    "prepare",
    "single_image",
    "success_rate",
    "targeted_objective",
    "untargeted_objective",
]


# Steps per compiled program. XLA:CPU runs the input gradient of a conv net
# inside a `while` loop about 8x slower than the same ops outside one (the
# loop-invariant weight transposes are hoisted and the convolutions fall off
# the fast path), so the steps are unrolled in chunks of this many, looped
# on the host; each step costs about 0.5 s of compile time per program.
CHUNK = 5


def chunk_size(steps: int) -> int:
    """Unrolled steps per program for a run of `steps` steps."""
    return max(1, min(int(steps), CHUNK))


def host_loop(chunk: Callable, state: Any, steps: int, k: int, done=None) -> Any:
    """`state = chunk(state)` ceil(steps / k) times (the last chunk masks the
    steps past `steps`). With `done(state) -> (B,) bool` it stops once every
    image is done (outside a transformation; under vmap or jit every chunk
    runs, and the masks inside the chunks keep the result the same)."""
    for _ in range(-(-int(steps) // k)):
        state = chunk(state)
        if done is not None:
            flags = done(state)
            if not isinstance(flags, jax.core.Tracer) and bool(jnp.all(flags)):
                break
    return state


class AttackResult(NamedTuple):
    """What every attack returns; `over_targets` adds a leading (T,) axis.

    Attributes:
      x_adv: (B, ...) adversarial inputs, inside [lo, hi].
      success: (B,) bool; targeted: argmax(logits) == target, untargeted:
        argmax(logits) != label, at `x_adv`.
      first_success: (B,) int32, the step at which an iterate first
        succeeded (0: the clean input already does; for C&W the Adam step
        counted over all binary-search rounds), -1 if none did.
      linf: (B,) max |x_adv - x|.
      l2: (B,) ||x_adv - x||_2 over all non-batch axes.
      logits: (B, K) logits at `x_adv`.
    """

    x_adv: jax.Array
    success: jax.Array
    first_success: jax.Array
    linf: jax.Array
    l2: jax.Array
    logits: jax.Array


def outputs(out: Any) -> tuple[jax.Array, dict]:
    """`(logits, acts)` of a model output: `(logits, acts)` or plain logits."""
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return out[0], out[1]
    return out, {}


def single_image(apply_fn: Callable) -> Callable:
    """`apply_fn` on one image: `xi (...) -> (logits (K,), acts of batch 1)`.

    The attacks are written per image and vmapped over the batch; the model
    gets the scatter-free max-pool VJP of `tiled_pool_grads` (the same
    values and gradients, about half the time of a small CNN's input
    gradient on the CPU).
    """
    model = tiled_pool_grads(apply_fn)

    def f(xi: jax.Array) -> tuple[jax.Array, dict]:
        logits, acts = outputs(model(xi[None]))
        return logits[0], acts

    return f


def targeted_objective(logits: jax.Array, acts: dict, target: jax.Array):
    """-CE(logits, target) per sample: ascending it moves towards `target`.

    (B, K), {layer: ...}, (B,) int -> (B,).
    """
    del acts
    return -optax.softmax_cross_entropy_with_integer_labels(logits, target)


def untargeted_objective(logits: jax.Array, acts: dict, label: jax.Array):
    """CE(logits, label) per sample: ascending it moves away from `label`.

    (B, K), {layer: ...}, (B,) int -> (B,).
    """
    del acts
    return optax.softmax_cross_entropy_with_integer_labels(logits, label)


def is_success(logits: jax.Array, target: jax.Array, targeted: bool) -> jax.Array:
    """(..., K), (...) int -> (...) bool: argmax == target (targeted) or
    argmax != label (untargeted)."""
    hit = jnp.argmax(logits, axis=-1) == target
    return hit if targeted else ~hit


def perturbation_norms(x: Any, x_adv: Any) -> dict[str, jax.Array]:
    """Per-sample l-inf and l2 norms of `x_adv - x`.

    Args:
      x: (B, ...) clean inputs.
      x_adv: (..., B, ...) adversarial inputs; extra leading axes (e.g. the
        (T,) targets of `over_targets`) broadcast against `x`.

    Returns:
      {"linf": (..., B), "l2": (..., B)}.
    """
    x, x_adv = jnp.asarray(x), jnp.asarray(x_adv)
    d = x_adv - jnp.broadcast_to(x, x_adv.shape)
    axes = tuple(range(x_adv.ndim - x.ndim + 1, x_adv.ndim))
    return {
        "linf": jnp.max(jnp.abs(d), axis=axes),
        "l2": jnp.sqrt(jnp.sum(d * d, axis=axes)),
    }


def success_rate(result: AttackResult) -> float:
    """Attack success rate: the share of successful (image, target) pairs."""
    return float(jnp.mean(jnp.asarray(result.success, jnp.float32)))


def num_classes(apply_fn: Callable, x: jax.Array) -> int:
    """K of `apply_fn`'s logits (B, K), from shapes only."""
    logits, _ = outputs(
        jax.eval_shape(apply_fn, jax.ShapeDtypeStruct(x.shape, x.dtype))
    )
    if len(logits.shape) != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(
            f"apply_fn must return logits of shape (B, K) = ({x.shape[0]}, K), "
            f"got {logits.shape}"
        )
    return int(logits.shape[1])


def check_targets(target: Any, num: int, k: int, name: str = "target") -> jax.Array:
    """An int or (num,) integers in [0, k) -> (num,) int32; else a ValueError
    naming `name`, the bad values and K. Tracers pass unchecked."""
    if isinstance(target, jax.core.Tracer):
        return jnp.broadcast_to(target.astype(jnp.int32), (num,))
    t = np.asarray(target)
    if not np.issubdtype(t.dtype, np.integer) or t.dtype == np.bool_:
        raise ValueError(f"{name} must be integer class indices, got dtype {t.dtype}")
    if t.ndim == 0:
        t = np.full((num,), int(t))
    if t.shape != (num,):
        raise ValueError(f"{name} must be an int or of shape ({num},), got {t.shape}")
    bad = (t < 0) | (t >= k)
    if bad.any():
        raise ValueError(
            f"{name} has {int(bad.sum())} values outside the classes [0, K={k}): "
            f"{np.unique(t[bad])[:10].tolist()}"
        )
    return jnp.asarray(t, jnp.int32)


def check_range(lo: float, hi: float) -> None:
    """lo < hi, neither NaN (inf allowed: no clipping on that side)."""
    if not (float(lo) < float(hi)):
        raise ValueError(f"data range must have lo < hi, got lo={lo}, hi={hi}")


def prepare(
    apply_fn: Callable, x: Any, target: Any, lo: float, hi: float
) -> tuple[jax.Array, jax.Array]:
    """The eager front of every attack: checks `x` and resolves `target`.

    Args:
      apply_fn: model on a batch, `(B, ...) -> logits (B, K)` or
        `(logits, acts)`.
      x: (B, ...) floating-point inputs inside [lo, hi].
      target: int or (B,) ints in [0, K).
      lo, hi: the data range.

    Returns:
      `(x, t)`: `x` as a JAX array and (B,) int32 classes.

    Raises:
      ValueError: naming `x` (not floating point, no batch axis, non-finite
        values (`checks.NonFiniteError`), values outside [lo, hi]), `target`
        (dtype, shape, values outside [0, K)) or the data range.
    """
    check_range(lo, hi)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be floating point, got dtype {x.dtype}")
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"x must have a non-empty leading batch axis, got {x.shape}")
    checks.check_finite({"x": x}, hint="attacks need finite inputs")
    if not isinstance(x, jax.core.Tracer):
        low, high = jax.device_get((jnp.min(x), jnp.max(x)))
        if low < lo or high > hi:
            raise ValueError(
                f"x has values in [{low:.4g}, {high:.4g}], outside the data range "
                f"[lo, hi] = [{lo}, {hi}]"
            )
    return x, check_targets(target, x.shape[0], num_classes(apply_fn, x))
