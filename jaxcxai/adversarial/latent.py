"""Latent perturbations of adversarial examples and activation patching.

Reconstruction (xai.md 2.2, step 2) of the latent side of "The Anatomy of
Adversarial Attacks: Concept-based XAI Dissection" (Mikriukov, Schwalbe,
Motzkus & Bade, xAI 2024): the perturbation an attack leaves at layer l is
Delta_l(x) = A_l(x_adv) - A_l(x), a (h, w, C) map per image (spatial form),
or its global average delta_l(x) = GAP(Delta_l(x)) in R^C (vector form).

Activation patching forwards an input with a chosen delta ADDED to the
activation of layer l, and the rest of the network run on the result; it is
how the decomposition removes or adds perturbation components (step 4).
Models follow the backbone contract (`model.apply(variables, x, train=False)
-> (logits, acts)`); the patch goes through `flax.linen.intercept_methods`
at the submodule that produces or consumes the layer, which each supported
model class names in `PATCH_POINTS`. On a single-path net patching x_adv
with -Delta gives the clean logits (up to float rounding).
"""

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcxai import checks
from jaxcxai.models.cnn import SmallCNN
from jaxcxai.models.efficientnet import EfficientNetLite
from jaxcxai.models.mobilenet import MobileNetV2

__all__ = [
    "PATCH_POINTS",
    "PatchPoint",
    "gap",
    "latent_perturbation",
    "map_batches",
    "patch_point",
    "patched_logits",
]


class PatchPoint(NamedTuple):
    """Where a layer's activation can be changed inside a model.

    Attributes:
      module: name of the top-level submodule whose `__call__` is intercepted.
      where: "output" (the layer is that submodule's output) or "input" (the
        submodule consumes the layer as its first argument).
      spatial_mean: the consumer takes the layer's spatial mean (a GAP then a
        linear head), so a spatial delta enters as its mean over (h, w); exact
        because the mean is linear.
    """

    module: str
    where: str
    spatial_mean: bool = False


def _small_cnn_point(model: SmallCNN, layer: str) -> PatchPoint | None:
    # conv{i} (after max-pool) is the input of conv{i+1}.conv; the last conv
    # stage reaches `fc` through a spatial mean, the pool directly.
    n = len(model.widths)
    match = re.fullmatch(r"conv(\d+)", layer)
    if match and 1 <= int(match[1]) < n:
        return PatchPoint(f"conv{int(match[1]) + 1}.conv", "input")
    if layer == f"conv{n}":
        return PatchPoint("fc", "input", spatial_mean=True)
    return PatchPoint("fc", "input") if layer == "pool" else None


def _mobilenet_point(model: MobileNetV2, layer: str) -> PatchPoint | None:
    # features.1..17 are InvertedResidual outputs; the stem is a conv-BN-ReLU6
    # function (no module of its own), consumed by block features.1; the last
    # conv features.18 reaches the head through the mean (dropout is the
    # identity at eval).
    match = re.fullmatch(r"features\.(\d+)", layer)
    if match and 1 <= int(match[1]) <= 17:
        return PatchPoint(layer, "output")
    if layer == "features.0":
        return PatchPoint("features.1", "input")
    if layer == "features.18":
        return PatchPoint("classifier.1", "input", spatial_mean=True)
    return PatchPoint("classifier.1", "input") if layer == "pool" else None


def _efficientnet_point(model: EfficientNetLite, layer: str) -> PatchPoint | None:
    # Same plan as MobileNetV2: blocks are modules, stem and head are not.
    if re.fullmatch(r"_blocks\.\d+", layer):
        return PatchPoint(layer, "output")
    if layer == "_conv_stem":
        return PatchPoint("_blocks.0", "input")
    if layer == "_conv_head":
        return PatchPoint("_fc", "input", spatial_mean=True)
    return PatchPoint("_fc", "input") if layer == "pool" else None


PATCH_POINTS: dict[type, Callable[[Any, str], PatchPoint | None]] = {
    SmallCNN: _small_cnn_point,
    MobileNetV2: _mobilenet_point,
    EfficientNetLite: _efficientnet_point,
}


def patch_point(model: nn.Module, layer: str) -> PatchPoint:
    """The `PatchPoint` of `layer` in `model`.

    Raises:
      ValueError: the model class has no entry in `PATCH_POINTS`, or the layer
        is not one of its patchable layers (the message names both).
    """
    rule = PATCH_POINTS.get(type(model))
    if rule is None:
        names = sorted(c.__name__ for c in PATCH_POINTS)
        raise ValueError(
            f"activation patching is not supported for {type(model).__name__}; "
            f"supported models: {names}"
        )
    point = rule(model, layer)
    if point is None:
        raise ValueError(
            f"layer {layer!r} of {type(model).__name__} cannot be patched "
            "(unknown layer name; see the model's docstring for its layers)"
        )
    return point


def gap(delta: jax.Array) -> jax.Array:
    """Vector form: (N, h, w, C) -> (N, C) spatial mean; (N, C) is returned."""
    delta = jnp.asarray(delta)
    if delta.ndim == 4:
        return jnp.mean(delta, axis=(1, 2))
    if delta.ndim == 2:
        return delta
    raise ValueError(f"delta must be (N, h, w, C) or (N, C), got {delta.shape}")


@functools.lru_cache(maxsize=16)
def _delta_fn(apply_fn: Callable, layers: tuple[str, ...]) -> Callable:
    # Cached per (apply_fn, layers): a stable apply_fn (a module-level or
    # bound function) compiles once per batch shape across calls.
    @jax.jit
    def deltas(xb, xab):
        _, clean = apply_fn(xb)
        _, adv = apply_fn(xab)
        unknown = [name for name in layers if name not in clean]
        if unknown:
            raise KeyError(f"unknown layer name(s) {unknown}; valid: {list(clean)}")
        return {name: adv[name] - clean[name] for name in layers}

    return deltas


def latent_perturbation(
    apply_fn: Callable, x, x_adv, layers: Sequence[str], batch_size: int = 64
) -> dict[str, jax.Array]:
    """Delta_l = A_l(x_adv) - A_l(x) at each named layer.

    Reconstruction (xai.md 2.2, step 2).

    Args:
      apply_fn: `x (B, ...) -> (logits (B, K), {layer: activation})`.
      x: (N, ...) clean inputs.
      x_adv: (N, ...) adversarial inputs, same shape as x.
      layers: layer names of `apply_fn`'s activations.
      batch_size: images per forward pass.

    Returns:
      {layer: Delta (N, h, w, C) (or (N, C) for vector layers such as pool)}.

    Raises:
      ValueError: shape mismatch, non-finite inputs, bad batch size.
      KeyError: a layer not returned by `apply_fn` (lists the valid names).
    """
    x, x_adv = jnp.asarray(x), jnp.asarray(x_adv)
    if x.shape != x_adv.shape or x.ndim < 2:
        raise ValueError(
            f"x and x_adv must share an (N, ...) shape, got {x.shape} and {x_adv.shape}"
        )
    checks.check_finite({"x": x, "x_adv": x_adv})
    if isinstance(layers, str):
        layers = (layers,)
    if not layers:
        raise ValueError("layers must name at least one layer")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")

    try:
        deltas = _delta_fn(apply_fn, tuple(layers))
    except TypeError:  # an unhashable apply_fn: compiled for this call only
        deltas = _delta_fn.__wrapped__(apply_fn, tuple(layers))
    return map_batches(deltas, (x, x_adv), batch_size)


def map_batches(fn: Callable, arrays: tuple, batch_size: int, out_axis: int = 0):
    """fn over equal-size batches of `arrays` (split on axis 0), concatenated.

    The last batch is zero-padded to the size of the others and its outputs
    trimmed, so a jitted `fn` compiles once per call shape.

    Args:
      fn: `(*batches) -> pytree` of arrays with the batch on `out_axis`.
      arrays: arrays sharing the leading size N.
      batch_size: rows per batch (min(batch_size, N) is used).
      out_axis: batch axis of fn's outputs.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    n = arrays[0].shape[0]
    size = min(int(batch_size), n)
    outs = []
    for i in range(0, n, size):
        chunk = [a[i : i + size] for a in arrays]
        rows = chunk[0].shape[0]
        if rows < size:
            chunk = [
                jnp.concatenate([c, jnp.zeros((size - rows,) + c.shape[1:], c.dtype)])
                for c in chunk
            ]
        out = fn(*chunk)
        outs.append(
            jax.tree.map(
                lambda o, r=rows: jax.lax.slice_in_dim(o, 0, r, axis=out_axis), out
            )
        )
    return jax.tree.map(lambda *o: jnp.concatenate(o, axis=out_axis), *outs)


def _add(value: jax.Array, delta: jax.Array, point: PatchPoint) -> jax.Array:
    if point.spatial_mean and delta.ndim == 4:
        delta = jnp.mean(delta, axis=(1, 2))
    elif value.ndim == 4 and delta.ndim == 2:
        delta = delta[:, None, None, :]  # one vector added at every position
    try:
        fits = jnp.broadcast_shapes(delta.shape, value.shape) == value.shape
    except ValueError:
        fits = False
    if not fits or delta.shape[0] != value.shape[0] or delta.ndim != value.ndim:
        raise ValueError(
            f"delta of shape {delta.shape} does not fit the activation of shape "
            f"{value.shape} at {point.module} ({point.where})"
        )
    return value + jnp.broadcast_to(delta, value.shape).astype(value.dtype)


@functools.partial(jax.jit, static_argnames=("model", "layer"))
def patched_logits(
    model: nn.Module, variables: Any, x: jax.Array, layer: str, delta: jax.Array
) -> jax.Array:
    """Logits of x with `delta` added to the activation at `layer`.

    Reconstruction (xai.md 2.2, step 4): activation patching. Jitted with
    `model` and `layer` static (one compilation per model, layer and shape);
    differentiable in `delta` and `x`.

    Args:
      model: a linen backbone whose class is in `PATCH_POINTS` (SmallCNN,
        MobileNetV2, EfficientNetLite); run with `train=False`.
      variables: its variables (`params`, `batch_stats`).
      x: (B, H, W, C) model inputs.
      layer: the layer's name in the model's activations.
      delta: (B, h, w, C) for a spatial layer (or (B, C), added at every
        position), (B, C) for a vector layer.

    Returns:
      (B, K) logits.

    Raises:
      ValueError: unsupported model/layer, or a delta that does not match the
        layer's activation shape.
    """
    point = patch_point(model, layer)
    delta = jnp.asarray(delta)
    hits = []

    def intercept(next_fun, args, kwargs, context):
        if context.method_name != "__call__" or context.module.path != (point.module,):
            return next_fun(*args, **kwargs)
        hits.append(point.module)
        if point.where == "input":
            return next_fun(_add(args[0], delta, point), *args[1:], **kwargs)
        return _add(next_fun(*args, **kwargs), delta, point)

    with nn.intercept_methods(intercept):
        logits, acts = model.apply(variables, x, train=False, layers=(layer,))
    if len(hits) != 1:
        raise RuntimeError(f"patch point {point} was reached {len(hits)} times, not 1")
    act_shape = acts[layer].shape
    if delta.shape not in (act_shape, act_shape[:1] + act_shape[-1:]):
        raise ValueError(
            f"delta must have the shape of layer {layer!r}'s activation {act_shape} "
            f"(or {act_shape[:1] + act_shape[-1:]}), got {delta.shape}"
        )
    return logits
