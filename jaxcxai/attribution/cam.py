"""Grad-CAM and Grad-CAM++ at a named convolutional layer.

For a per-sample activation A of shape (h, w, C) (NHWC models) and the
gradient g = d S_t / d A of the target scalar:

- Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep
  Networks via Gradient-based Localization"): weights
  alpha_c = mean_ij g_ijc, map = ReLU(sum_c alpha_c A_ijc).
- Grad-CAM++ (Chattopadhyay et al. 2018, "Grad-CAM++: Generalized
  Gradient-based Visual Explanations"), with the paper's exponential-score
  closed form for the higher derivatives:
  a_ijc = g^2 / (2 g^2 + sum_ab A_abc g^3) (0 where the denominator is 0),
  w_c = sum_ij a_ijc ReLU(g_ijc), map = ReLU(sum_c w_c A_ijc).

Captum's `LayerGradCam` leaves the final ReLU off by default; here it is on
(the paper's map), `relu=False` turns it off. `size` resizes the maps
bilinearly to the input resolution.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jaxcxai.attribution.core import map_samples, prepare
from jaxcxai.attribution.layer import make_tap
from jaxcxai.attribution.tap import tapped_scalar

__all__ = ["grad_cam", "grad_cam_plus_plus", "cam_weights"]


def cam_weights(act: jax.Array, g: jax.Array, plus: bool) -> jax.Array:
    """Channel weights (C,) from one sample's activation and gradient (h, w, C)."""
    if not plus:
        return jnp.mean(g, axis=(0, 1))
    g2 = g * g
    denom = 2.0 * g2 + jnp.sum(act, axis=(0, 1), keepdims=True) * g2 * g
    safe = jnp.where(denom != 0, denom, 1.0)
    alpha = jnp.where(denom != 0, g2 / safe, 0.0)
    return jnp.sum(alpha * jax.nn.relu(g), axis=(0, 1))


@partial(jax.jit, static_argnums=tuple(range(8)))
def _run(f, layer, head, tfn, plus, relu, size, mesh, x, t):
    tapped, act_shape = make_tap(f, x[0], layer, head)
    if len(act_shape) != 3:
        raise ValueError(
            f"Grad-CAM needs an (h, w, C) activation at {layer!r}, got {act_shape}"
        )
    grad = jax.grad(tapped_scalar(tapped, tfn), argnums=1, has_aux=True)
    zero = jnp.zeros(act_shape, x.dtype)

    def one(xs, ts):
        g, act = grad(xs, zero, ts)
        cam = jnp.einsum("ijc,c->ij", act, cam_weights(act, g, plus))
        cam = jax.nn.relu(cam) if relu else cam
        if size is not None:
            cam = jax.image.resize(cam, size, method="bilinear")
        return cam

    return map_samples(one, x, t, mesh=mesh)


def _cam(f, x, layer, target, plus, head, relu, size, target_fn, mesh):
    x, t = prepare(f, x, target, target_fn)
    if size is not None:
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be (H, W) with positive sides, got {size}")
        size = (int(size[0]), int(size[1]))
    return _run(f, layer, head, target_fn, plus, bool(relu), size, mesh, x, t)


def grad_cam(
    f: Callable,
    x: Any,
    layer: str,
    target: Any = None,
    *,
    head: Callable | None = None,
    relu: bool = True,
    size: tuple[int, int] | None = None,
    target_fn: Callable | None = None,
    mesh: Mesh | None = None,
) -> jax.Array:
    """Grad-CAM maps at `layer` (Selvaraju et al. 2017).

    Args:
      f: `f(x) -> (logits, {layer: act})` with NHWC activations.
      x: (N, ...) inputs.
      layer: the activation's name.
      target: None (predicted class), an int, or (N,) ints.
      head: optional explicit network from the layer on (see `layer.py`).
      relu: apply the final ReLU (the paper's map).
      size: optional (H, W) to resize the maps to (bilinear).
      target_fn: optional `target_fn(outputs) -> (N,)` custom scalar.
      mesh: optional mesh; samples are split over its `data` axis.

    Returns:
      (N, h, w) maps at the layer's resolution, or (N, *size).

    Raises:
      ValueError: naming `x`, `target`, `layer` (missing or not (h, w, C)) or
        `size`.
    """
    return _cam(f, x, layer, target, False, head, relu, size, target_fn, mesh)


def grad_cam_plus_plus(
    f: Callable,
    x: Any,
    layer: str,
    target: Any = None,
    *,
    head: Callable | None = None,
    relu: bool = True,
    size: tuple[int, int] | None = None,
    target_fn: Callable | None = None,
    mesh: Mesh | None = None,
) -> jax.Array:
    """Grad-CAM++ maps at `layer` (Chattopadhyay et al. 2018).

    Args and returns as in `grad_cam`.
    """
    return _cam(f, x, layer, target, True, head, relu, size, target_fn, mesh)
