"""Layer gradients and concept attribution <gradient, CAV>, optionally smoothed.

`layer_gradients` gives d S_t / d A_l(x) per sample at a named layer l of a
model `f(x) -> (logits, {layer: act})` (the layer is tapped by `tap.py`, or
split explicitly with `head`). With `n > 0` the gradient is smoothed as in
SmoothGrad: noise is added to the *input* and the layer gradients of the
noisy copies are averaged; `smooth.REFERENCE_SMOOTHING` gives the group
code's setting (50 copies at std (0.1 range)^2 plus the clean image, as in
the LoCE reference code's gradient propagators, `src/hooks/`), which the
stability paper advises for shallow layers.

`concept_attribution` is the TCAV sensitivity S = <mean gradient, v> (Kim et
al. 2018, "Interpretability Beyond Feature Attribution") for CAVs v of the
three dimensionalities of Mikriukov et al. 2023 ("Evaluating the Stability
of Semantic Concept Representations in CNNs", arXiv 2304.14864). For a
per-sample activation A of shape (h, w, C):

- "3d": v of shape (h, w, C) or (h*w*C,): <g, v> over the full tensor;
- "1d": v of shape (C,) (a CAV on spatially averaged activations):
  <mean_hw g, v> (or the spatial sum, `spatial="sum"`);
- "2d": v of shape (h, w) (a CAV on channel-averaged activations):
  <mean_C g, v>.

The 1D and 2D reductions are a reconstruction (not verified against the
paper), kept swappable in `aggregate_gradient`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jaxcxai.attribution.core import check_chunk, check_finite, map_samples, prepare
from jaxcxai.attribution.noise import copy_sums, noise_source, smoothed
from jaxcxai.attribution.tap import head_tap, layer_output, layer_tap, tapped_scalar

__all__ = ["layer_gradients", "concept_attribution", "aggregate_gradient", "make_tap"]

_KINDS = ("1d", "2d", "3d")


def make_tap(f: Callable, x_single: Any, layer: str, head: Callable | None):
    """(tapped, per-sample activation shape) at `layer` for (1, ...) inputs."""
    spec = jax.ShapeDtypeStruct((1,) + tuple(x_single.shape), x_single.dtype)
    if head is None:
        tapped, act = layer_tap(f, spec, layer)
    else:
        tapped = head_tap(f, layer, head)
        act = jax.eval_shape(lambda x: layer_output(f(x), layer), spec)
    return tapped, tuple(act.shape[1:])


def aggregate_gradient(g: jax.Array, kind: str, spatial: str = "mean") -> jax.Array:
    """One sample's layer gradient (h, w, C) in the CAV's space (see module doc)."""
    if kind == "3d" or g.ndim == 1:
        return g
    if kind == "1d":
        axes = tuple(range(g.ndim - 1))
        return jnp.mean(g, axes) if spatial == "mean" else jnp.sum(g, axes)
    return jnp.mean(g, axis=-1)


def _check_cav(cav: Any, act_shape: tuple, kind: str) -> jax.Array:
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    cav = jnp.asarray(cav, jnp.float32)
    check_finite("cav", cav)
    if len(act_shape) == 1 and kind == "2d":
        raise ValueError(f"a 2d CAV needs a spatial layer, got activations {act_shape}")
    want = {
        "1d": [act_shape[-1:]],
        "2d": [act_shape[:-1]],
        "3d": [act_shape, (int(jnp.prod(jnp.asarray(act_shape))),)],
    }[kind]
    for w in want:
        if cav.shape[cav.ndim - len(w) :] == w and cav.ndim >= len(w):
            return (
                cav.reshape(cav.shape[: cav.ndim - len(w)] + act_shape)
                if (kind == "3d" and w != act_shape)
                else cav
            )
    raise ValueError(
        f"cav of kind {kind} must end with shape {' or '.join(map(str, want))} "
        f"for activations {act_shape}, got {cav.shape}"
    )


def _layer_base(f, layer, head, tfn, x):
    tapped, act_shape = make_tap(f, x[0], layer, head)
    grad = jax.grad(tapped_scalar(tapped, tfn), argnums=1, has_aux=True)
    zero = jnp.zeros(act_shape, x.dtype)
    return lambda xs, ts: grad(xs, zero, ts)[0]


@partial(jax.jit, static_argnums=tuple(range(5)))
def _clean(f, layer, head, tfn, mesh, x, t):
    return map_samples(_layer_base(f, layer, head, tfn, x), x, t, mesh=mesh)


@partial(jax.jit, static_argnums=tuple(range(8)))
def _chunk(f, layer, head, tfn, sigma, scale, clip, mesh, x, t, src, js, ws):
    base = _layer_base(f, layer, head, tfn, x)
    explicit = src.ndim == x.ndim + 1
    return copy_sums(base, sigma, scale, "mean", clip, explicit, mesh)(
        x, t, src, js, ws
    )


@partial(jax.jit, static_argnums=(0, 1))
def _project(kind, spatial, g, cav):
    def one(gs):
        a = aggregate_gradient(gs, kind, spatial)
        lead = cav.ndim - a.ndim
        return jnp.tensordot(cav, a, axes=a.ndim) if lead else jnp.sum(cav * a)

    return jax.vmap(one)(g)


def _layer(f, x, layer, target, cav, kind, spatial, head, key, noise, n, sigma,
           noise_scale, keep_clean, clip, chunk_size, target_fn, mesh):  # fmt: skip
    x, t = prepare(f, x, target, target_fn)
    if cav is not None:
        _, act_shape = make_tap(f, x[0], layer, head)
        cav = _check_cav(cav, act_shape, kind)
    if spatial not in ("mean", "sum"):
        raise ValueError(f"spatial must be 'mean' or 'sum', got {spatial!r}")
    clean = lambda: _clean(f, layer, head, target_fn, mesh, x, t)
    if noise is not None or n > 0:
        src, n = noise_source(x, key, noise, n, sigma, noise_scale, "mean", chunk_size)
        clip = None if clip is None else (float(clip[0]), float(clip[1]))
        g = smoothed(
            lambda js, ws: _chunk(f, layer, head, target_fn, float(sigma), noise_scale,
                                  clip, mesh, x, t, src, js, ws),
            clean, n, check_chunk("chunk_size", chunk_size), keep_clean, "mean",
        )  # fmt: skip
    else:
        g = clean()
    return g if cav is None else _project(kind, spatial, g, cav)


def layer_gradients(
    f: Callable,
    x: Any,
    layer: str,
    target: Any = None,
    *,
    head: Callable | None = None,
    key: jax.Array | None = None,
    noise: Any = None,
    n: int = 0,
    sigma: float = 0.15,
    noise_scale: str = "relative",
    keep_clean: bool = False,
    clip: tuple[float, float] | None = None,
    chunk_size: int | None = 10,
    target_fn: Callable | None = None,
    mesh: Mesh | None = None,
) -> jax.Array:
    """Per-sample gradient of the target scalar w.r.t. a layer's activation.

    Args:
      f: `f(x) -> (logits, {layer: act})`.
      x: (N, ...) inputs.
      layer: the activation's name in `f`'s dict.
      target: None (predicted class), an int, or (N,) ints.
      head: optional explicit network from the layer on, `head(act) ->
        logits` (default: tap `f` itself, see `tap.py`).
      key, noise, n, sigma, noise_scale, keep_clean, clip, chunk_size: input
        noise as in `smooth.smoothgrad`; n = 0 and no `noise` means the
        plain gradient.
      target_fn: optional `target_fn(outputs) -> (N,)` custom scalar (e.g. a
        detection score).
      mesh: optional mesh; samples are split over its `data` axis.

    Returns:
      (N, *S) gradients, S the activation's per-sample shape (e.g. h, w, C).
    """
    return _layer(f, x, layer, target, None, "3d", "mean", head, key, noise, n,
                  sigma, noise_scale, keep_clean, clip, chunk_size, target_fn,
                  mesh)  # fmt: skip


def concept_attribution(
    f: Callable,
    x: Any,
    layer: str,
    cav: Any,
    target: Any = None,
    *,
    kind: str = "1d",
    spatial: str = "mean",
    head: Callable | None = None,
    key: jax.Array | None = None,
    noise: Any = None,
    n: int = 0,
    sigma: float = 0.15,
    noise_scale: str = "relative",
    keep_clean: bool = False,
    clip: tuple[float, float] | None = None,
    chunk_size: int | None = 10,
    target_fn: Callable | None = None,
    mesh: Mesh | None = None,
) -> jax.Array:
    """Concept attribution <(smoothed) layer gradient, CAV> per sample.

    Args:
      f, x, layer, target, head, key, noise, n, sigma: as in `layer_gradients`;
        so are noise_scale, keep_clean, clip, chunk_size, target_fn and mesh.
      cav: (..., C) for "1d", (..., h, w) for "2d", (..., h, w, C) or
        (..., h*w*C) for "3d"; leading axes hold K CAVs.
      kind: the CAV's dimensionality, "1d", "2d" or "3d".
      spatial: "mean" or "sum" of the gradient over space for "1d".

    Returns:
      (N,) sensitivities, or (N, *K) for several CAVs.

    Raises:
      ValueError: naming `cav` (shape, non-finite), `kind`, `spatial`, or the
        arguments of `layer_gradients`.
    """
    return _layer(f, x, layer, target, cav, kind, spatial, head, key, noise, n,
                  sigma, noise_scale, keep_clean, clip, chunk_size, target_fn,
                  mesh)  # fmt: skip
