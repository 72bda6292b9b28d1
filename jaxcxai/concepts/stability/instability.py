"""Gradient instability of concept attribution: sign flips, spread, batching.

Mikriukov, Schwalbe, Hellert & Bade 2023 ("Evaluating the Stability of
Semantic Concept Representations in CNNs for Robust Explainability", arXiv
2304.14864) report that gradient-based concept attribution is unstable, most
in shallow layers. The group's code (the LoCE reference code's gradient
propagators, `src/hooks/`) has a "stable" mode that backpropagates one image
at a time and a "fast" mode that backpropagates a whole batch, whose
batch-dependent kernels change gradients by ~1e-10 and flip the sign of tiny
shallow-layer sensitivities. Here:

- `sign_flip_rate`: share of elements whose sign differs between two
  attribution arrays; `compare` adds the largest and the relative
  difference (`Instability`);
- `single_gradients` ("one image at a time": one jitted call per image) and
  `batched_gradients` (one vmapped call, or one backward pass of the summed
  batch), compared per layer by `batch_instability`;
- `coefficient_of_variation` over repeated runs (noise keys, seeds) and
  `variability` of T repeated concept attributions: per-sample CV, sign
  agreement and the spread of the TCAV score. Which statistic the paper
  reports is a reconstruction (not verified against the paper): each is its
  own function, so another can be used instead.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import attribution as attr
from jaxcxai.attribution.tap import head_tap, layer_output, layer_tap
from jaxcxai.checks import check_finite

__all__ = [
    "Instability",
    "sign_flip_rate",
    "coefficient_of_variation",
    "variability",
    "compare",
    "single_gradients",
    "batched_gradients",
    "batch_instability",
]


def _pair(a, b, xp=jnp):
    a, b = xp.asarray(a), xp.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"b must have the shape of a {a.shape}, got {b.shape}")
    check_finite({"a": a, "b": b})
    return a, b


def _flip_rate(xp, a, b, axis):
    counted = (a != 0) | (b != 0)
    flips = xp.sum((xp.sign(a) != xp.sign(b)) & counted, axis)
    return flips / xp.maximum(xp.sum(counted, axis), 1)


def sign_flip_rate(a: jax.typing.ArrayLike, b: jax.typing.ArrayLike, axis=None):
    """Share of elements whose sign differs between two attribution arrays.

    Elements that are exactly 0 in both are left out; an element that is 0
    in one and not in the other counts as a flip. With nothing left the rate
    is 0.

    Args:
      a, b: attributions of the same shape.
      axis: axes to reduce (default: all).

    Returns:
      The rate, () or with `axis` reduced.

    Raises:
      ValueError: naming `b` (shape differs from `a`), or `a`/`b` (NaN, inf).
    """
    return _flip_rate(jnp, *_pair(a, b), axis)


def coefficient_of_variation(
    values: jax.typing.ArrayLike, axis: int = 0, ddof: int = 0
):
    """std / |mean| over repeated runs along `axis`, element-wise.

    Where the mean is 0 the CV is inf (or 0 where the std is 0 as well).

    Args:
      values: (T, ...) the same attributions from T repeated runs.
      axis: the runs' axis.
      ddof: delta degrees of freedom of the std (0: population std).
    """
    v = jnp.asarray(values)
    check_finite({"values": v})
    if v.ndim < 1 or v.shape[axis] - ddof < 1:
        raise ValueError(f"values needs more than ddof={ddof} runs on axis {axis}, "
                         f"got shape {v.shape}")  # fmt: skip
    mean, std = jnp.mean(v, axis), jnp.std(v, axis, ddof=ddof)
    safe = jnp.where(mean == 0, 1.0, jnp.abs(mean))
    return jnp.where(mean == 0, jnp.where(std == 0, 0.0, jnp.inf), std / safe)


def variability(values: jax.typing.ArrayLike) -> dict[str, jax.Array]:
    """Spread of T repeated concept attributions (T, N) of N samples.

    Returns:
      "cv": (N,) coefficient of variation per sample; "sign_agreement": share
      of samples whose sign is the same in all T runs; "tcav_std": std over
      runs of the TCAV score (share of positive attributions).
      Reconstruction (not verified against the paper).
    """
    v = jnp.asarray(values)
    if v.ndim != 2 or v.shape[0] < 2:
        raise ValueError(f"values must be (T, N) with T >= 2 runs, got {v.shape}")
    signs = jnp.sign(v)
    return {
        "cv": coefficient_of_variation(v),
        "sign_agreement": jnp.mean(jnp.all(signs == signs[:1], axis=0)),
        "tcav_std": jnp.std(jnp.mean(v > 0, axis=1)),
    }


class Instability(NamedTuple):
    """How much two computations of the same gradients differ.

    Attributes:
      sign_flip_rate: () share of sign flips (`sign_flip_rate`).
      max_abs_diff: () largest |a - b|.
      relative_diff: () ||a - b|| / ||a|| (0 where a is all zero).
    """

    sign_flip_rate: jax.Array
    max_abs_diff: jax.Array
    relative_diff: jax.Array


def compare(a: jax.typing.ArrayLike, b: jax.typing.ArrayLike) -> Instability:
    """`Instability` of b against the reference a (same shape).

    Computed on the host in float64, so a float64 reference keeps its
    precision outside a `jax.enable_x64` scope.
    """
    a, b = _pair(np.asarray(a, np.float64), np.asarray(b, np.float64), np)
    norm = np.linalg.norm(a)
    rel = np.linalg.norm(a - b) / norm if norm > 0 else 0.0
    return Instability(_flip_rate(np, a, b, None), np.max(np.abs(a - b)),
                       np.float64(rel))  # fmt: skip


def single_gradients(
    f: Callable, x: jax.typing.ArrayLike, layer: str, target: Any = None, **kwargs
) -> jax.Array:
    """The "one image at a time" layer gradients, the reference's stable mode.

    Args:
      f: `f(x) -> (logits, {layer: act})`.
      x: (N, ...) images; image i is differentiated alone, one jitted call
        of `jaxcxai.attribution.layer_gradients` on x[i:i+1] each.
      layer: the activation's name.
      target: None (predicted class), an int or (N,) class indices.
      **kwargs: `head`, `target_fn` of `layer_gradients`.

    Returns:
      (N, *S) gradients, S the activation's per-sample shape.
    """
    x, t = attr.prepare(f, x, target, kwargs.get("target_fn"))
    return jnp.concatenate([attr.layer_gradients(f, x[i : i + 1], layer, t[i : i + 1],
                                                 **kwargs) for i in range(len(x))])  # fmt: skip


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _summed(f, layer, head, target_fn, x, t):
    if head is None:
        tapped, act = layer_tap(f, jax.ShapeDtypeStruct(x.shape, x.dtype), layer)
    else:
        tapped = head_tap(f, layer, head)
        act = jax.eval_shape(lambda z: layer_output(f(z), layer), x)

    def total(delta):  # the samples' scalars summed: one backward pass
        outputs, _ = tapped(x, delta)
        if target_fn is not None:
            return jnp.sum(target_fn(outputs))
        logits = attr.logits_of(outputs)
        return jnp.sum(jnp.take_along_axis(logits, t[:, None], axis=1))

    return jax.grad(total)(jnp.zeros(act.shape, act.dtype))


def batched_gradients(
    f: Callable,
    x: jax.typing.ArrayLike,
    layer: str,
    target: Any = None,
    *,
    mode: str = "vmap",
    head: Callable | None = None,
    target_fn: Callable | None = None,
) -> jax.Array:
    """The "batched" layer gradients (N, *S) of all images in one call.

    Args:
      f, x, layer, target: as in `single_gradients`.
      head: optional explicit network from the layer on, `head(act) ->
        logits` (default: tap `f`, `jaxcxai.attribution.tap`).
      target_fn: optional custom scalar `target_fn(outputs) -> (N,)`.
      mode: "vmap" (per-sample gradients vmapped over the batch,
        `jaxcxai.attribution.layer_gradients`) or "sum" (the reference's fast
        mode: one backward pass of the summed target scalars of the batch;
        equal to per-sample gradients only for a model that treats samples
        independently, e.g. BatchNorm in eval mode).
    """
    if mode == "vmap":
        return attr.layer_gradients(f, x, layer, target, head=head, target_fn=target_fn)
    if mode != "sum":
        raise ValueError(f"mode must be 'vmap' or 'sum', got {mode!r}")
    x, t = attr.prepare(f, x, target, target_fn)
    return _summed(f, layer, head, target_fn, x, t)


def batch_instability(
    f: Callable,
    x: jax.typing.ArrayLike,
    layers: Sequence[str],
    target: Any = None,
    *,
    mode: str = "vmap",
    head: dict[str, Callable] | None = None,
    target_fn: Callable | None = None,
) -> dict[str, Instability]:
    """Per layer, "one image at a time" versus "batched" layer gradients.

    Args:
      f: `f(x) -> (logits, {layer: act})`.
      x: (N, ...) images.
      layers: the layers to compare.
      target: None (predicted class), an int or (N,) class indices.
      mode: the batched computation, "vmap" or "sum" (`batched_gradients`).
      head: optional {layer: head(act) -> logits} explicit splits.
      target_fn: optional custom scalar `target_fn(outputs) -> (N,)`.

    Returns:
      {layer: `compare(single, batched)`}; exactly zero where the backend
      computes both the same way (XLA:CPU often does in float32).
    """
    x, t = attr.prepare(f, x, target, target_fn)
    target = None if target_fn is not None else t
    out = {}
    for layer in layers:
        kw = {"head": (head or {}).get(layer), "target_fn": target_fn}
        single = single_gradients(f, x, layer, target, **kw)
        out[layer] = compare(single, batched_gradients(f, x, layer, target, mode=mode,
                                                       **kw))  # fmt: skip
    return out
