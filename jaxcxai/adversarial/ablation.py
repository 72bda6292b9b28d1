"""Ablation of perturbation components at a layer (F2, success attribution).

Reconstruction (xai.md 2.2, step 4) of "The Anatomy of Adversarial Attacks:
Concept-based XAI Dissection" (Mikriukov et al., xAI 2024), finding F2: a
subset of the global perturbation components (`decomposition`) makes the
attack work. For m = 0..k the first m components J_m of an ordering are
removed from the perturbation at the layer, A_l(x_adv) - P_{J_m} Delta, and
the rest of the network is run on it (activation patching,
`latent.patched_logits`); attack success and the target logit are recorded.
Orders (a ranking fixed before removal, not a search re-scored after each
step): by explained variance, or by target-logit gradient alignment
|<grad_{A_l} Z_t, u_j>| (`gradient_order`). The complementary check adds
only P_{J_m} Delta to the clean activation.

`num_classes` keeps the first K logits (models whose head has extra outputs,
e.g. SynthAerial's has_<concept> logits, after the class block).
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import checks
from jaxcxai.adversarial import core, latent
from jaxcxai.adversarial.decomposition import Components, project_masked, unit_rows

__all__ = [
    "ablation_curve",
    "add_only_curve",
    "gradient_order",
    "target_gradient",
]


def _activation_shape(model: nn.Module, variables: Any, x, layer: str) -> tuple:
    """Shape of `layer`'s activation for inputs like x (no computation)."""
    out = jax.eval_shape(
        lambda v, xb: model.apply(v, xb, train=False, layers=(layer,)), variables, x
    )
    return tuple(out[1][layer].shape)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _target_grad(model, layer, variables, x, zeros, target):
    def z_t(d):
        logits = latent.patched_logits(model, variables, x, layer, d)
        return jnp.sum(jnp.take_along_axis(logits, target[:, None], axis=1))

    return jax.grad(z_t)(zeros)


def target_gradient(
    model: nn.Module, variables: Any, x, layer: str, target, batch_size: int = 64
) -> jax.Array:
    """grad of the target logit Z_t with respect to A_l, per sample.

    Taken as the derivative of `patched_logits` in its delta at delta = 0,
    so it is defined wherever patching is.

    Args:
      model, variables: a backbone supported by `patched_logits`.
      x: (N, H, W, C) inputs.
      layer: layer name.
      target: an int or (N,) target classes.
      batch_size: images per pass.

    Returns:
      (N, h, w, C) (or (N, C)) gradients.
    """
    x = jnp.asarray(x)
    checks.check_finite({"x": x})
    shape = _activation_shape(model, variables, x, layer)
    logits = jax.eval_shape(lambda: model.apply(variables, x[:1], train=False)[0])
    t = core.check_targets(target, x.shape[0], logits.shape[-1])
    zeros = jnp.zeros((x.shape[0],) + shape[1:], x.dtype)
    grad = functools.partial(_target_grad, model, layer, variables)
    return latent.map_batches(grad, (x, zeros, t), batch_size)


def gradient_order(
    model, variables, x_adv, layer, vectors, target, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Components ordered by target-gradient alignment.

    Reconstruction (xai.md 2.2, step 4): score_j = mean_i |<g_i, u_j>| with
    g_i = grad of Z_t with respect to A_l at x_adv_i, summed over spatial
    positions (the derivative of Z_t for shifting every position along
    u_j).

    Returns:
      (order (k,) indices by descending score, scores (k,)).
    """
    g = target_gradient(model, variables, x_adv, layer, target, batch_size)
    g = np.asarray(g, np.float64)
    g = g.reshape(g.shape[0], -1, g.shape[-1]).sum(1)
    u = np.asarray(unit_rows(jnp.asarray(vectors)), np.float64)
    scores = np.abs(g @ u.T).mean(0)
    return np.argsort(-scores, kind="stable"), scores


@functools.partial(jax.jit, static_argnums=(0, 1))
def _curve_logits(model, layer, variables, x, delta, vectors, masks, sign):
    def one(mask):
        part = project_masked(delta, vectors, mask)
        return latent.patched_logits(model, variables, x, layer, sign * part)

    return jax.lax.map(one, masks)  # sequential over masks: memory of one pass


@functools.partial(jax.jit, static_argnums=(0, 1))
def _delta(model, layer, variables, x, x_adv):
    both = model.apply(
        variables, jnp.concatenate([x, x_adv]), train=False, layers=(layer,)
    )
    act = both[1][layer]
    return act[x.shape[0] :] - act[: x.shape[0]]


def _check_inputs(x_adv, x, delta):
    x_adv, x = jnp.asarray(x_adv), jnp.asarray(x)
    if x_adv.shape != x.shape or x.ndim != 4:
        raise ValueError(
            f"x_adv and x must share an (N, H, W, C) shape, got {x_adv.shape} "
            f"and {x.shape}"
        )
    arrays = {"x_adv": x_adv, "x": x}
    if delta is not None:
        delta = jnp.asarray(delta)
        if delta.shape[0] != x.shape[0]:
            raise ValueError(f"delta must have N={x.shape[0]} rows, got {delta.shape}")
        arrays["delta"] = delta
    checks.check_finite(arrays)
    return x_adv, x, delta


def _order(model, variables, x_adv, layer, components, target, order, batch_size):
    vectors = jnp.asarray(components.vectors)
    k = vectors.shape[0]
    if isinstance(order, str):
        if order == "variance":
            ratio = np.asarray(components.explained_variance_ratio)
            return np.argsort(-ratio, kind="stable")
        if order == "gradient":
            return gradient_order(
                model, variables, x_adv, layer, vectors, target, batch_size
            )[0]
        raise ValueError(
            f"order must be 'variance', 'gradient' or a permutation, got {order!r}"
        )
    perm = np.asarray(order, np.int64).reshape(-1)
    if sorted(perm.tolist()) != list(range(k)):
        raise ValueError(f"order must be a permutation of range({k}), got {order}")
    return perm


def _curve(
    model,
    variables,
    x_adv,
    x,
    layer,
    delta,
    components,
    target,
    order,
    batch_size,
    num_classes,
    add,
):
    x_adv, x, delta = _check_inputs(x_adv, x, delta)
    if delta is None:
        delta = latent.map_batches(
            functools.partial(_delta, model, layer, variables), (x, x_adv), batch_size
        )
    vectors = jnp.asarray(components.vectors, delta.dtype)
    if vectors.ndim != 2 or vectors.shape[1] != delta.shape[-1]:
        raise ValueError(
            f"components.vectors must be (k, {delta.shape[-1]}), got {vectors.shape}"
        )
    k = vectors.shape[0]
    perm = _order(model, variables, x_adv, layer, components, target, order, batch_size)
    masks = np.zeros((k + 1, k), np.float32)
    for m in range(1, k + 1):
        masks[m:, perm[m - 1]] = 1.0
    base, sign = (x, 1.0) if add else (x_adv, -1.0)
    curve = functools.partial(
        _curve_logits,
        model,
        layer,
        variables,
        vectors=vectors,
        masks=jnp.asarray(masks),
        sign=jnp.asarray(sign, delta.dtype),
    )
    logits = latent.map_batches(curve, (base, delta), batch_size, out_axis=1)
    logits = np.asarray(logits)[..., :num_classes]  # (k + 1, N, K)
    t = np.asarray(core.check_targets(target, base.shape[0], logits.shape[-1]))
    picked = np.take_along_axis(
        logits, np.broadcast_to(t[None, :, None], logits.shape[:2] + (1,)), 2
    )
    return {
        "added" if add else "removed": np.arange(k + 1),
        "success": (logits.argmax(-1) == t[None]).mean(1),
        "target_logit": picked[..., 0].mean(1),
        "order": perm,
    }


def ablation_curve(
    model,
    variables,
    x_adv,
    x,
    layer: str,
    delta,
    components: Components,
    target,
    order="variance",
    *,
    batch_size: int = 64,
    num_classes: int | None = None,
) -> dict[str, np.ndarray]:
    """Attack success as perturbation components are removed at a layer.

    Reconstruction (xai.md 2.2, step 4): for m = 0..k, forward x_adv with
    A_l(x_adv) - P_{J_m} Delta at `layer`, J_m the first m components of
    `order`; m = 0 is the adversarial forward pass and, when the components
    span Delta, m = k restores the clean activation.

    Args:
      model, variables: a backbone supported by `latent.patched_logits`.
      x_adv: (N, H, W, C) adversarial inputs.
      x: (N, H, W, C) clean inputs.
      layer: layer name.
      delta: (N, h, w, C) or (N, C) Delta at the layer, or None (computed).
      components: `Components` (vectors (k, C), explained_variance_ratio).
      target: target class, an int or (N,) ints.
      order: "variance" (descending explained ratio), "gradient"
        (`gradient_order` at x_adv) or an explicit permutation of range(k).
      batch_size: images per forward pass.
      num_classes: keep the first K logits (None: all).

    Returns:
      {"removed": (k + 1,) m, "success": (k + 1,) fraction with argmax =
      target, "target_logit": (k + 1,) mean Z_t, "order": (k,) permutation}.
    """
    args = (model, variables, x_adv, x, layer, delta, components, target)
    return _curve(*args, order, batch_size, num_classes, add=False)


def add_only_curve(
    model,
    variables,
    x_adv,
    x,
    layer: str,
    delta,
    components: Components,
    target,
    order="variance",
    *,
    batch_size: int = 64,
    num_classes: int | None = None,
) -> dict[str, np.ndarray]:
    """Attack success when only the first m components are added to clean x.

    Reconstruction (xai.md 2.2, step 4, complementary check): for m = 0..k,
    forward x with A_l(x) + P_{J_m} Delta; same arguments and ordering as
    `ablation_curve` ("gradient" is taken at x_adv, so both curves share J_m).

    Returns:
      {"added": (k + 1,) m, "success", "target_logit", "order"} as
      `ablation_curve`.
    """
    args = (model, variables, x_adv, x, layer, delta, components, target)
    return _curve(*args, order, batch_size, num_classes, add=True)
