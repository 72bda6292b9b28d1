"""LoCE projections and the per-sample loss (`fit`).

Projection logits of an embedding at native resolution with the logit map
upsampled (`logits`, `projection`), the reference's activation upsampling
(`_upsample_acts`), input checks (`_as_views`, `_alphas`) and the scaled
per-sample loss (`_sample_loss`) minimized by the fits.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxcxai.concepts.loce import objectives
from jaxcxai.data.resample import interpolation_matrix

__all__ = ["logits", "projection"]


_HI = jax.lax.Precision.HIGHEST


def _matrices(native: Sequence[int], grid: Sequence[int], mode: str):
    a_h = jnp.asarray(interpolation_matrix(native[0], grid[0], mode))
    a_w = jnp.asarray(interpolation_matrix(native[1], grid[1], mode))
    return a_h, a_w


def _upsample_acts(acts: jax.Array, grid, mode: str) -> jax.Array:
    """(..., C, h, w) -> (..., C, H, W): the reference's activation upsampling."""
    if tuple(acts.shape[-2:]) == tuple(grid):
        return acts
    a_h, a_w = _matrices(acts.shape[-2:], grid, mode)
    return jnp.einsum("Hh,...hw,Ww->...HW", a_h, acts, a_w, precision=_HI)


def logits(v: jax.Array, acts: jax.Array, grid, *, mode: str = "bilinear"):
    """Projection logits of v on the target grid, projecting at native size.

    Args:
      v: (C,) embedding.
      acts: (..., C, h, w) activations (leading axes: views).
      grid: (H, W) target grid.
      mode: resampling mode (`jaxcxai.data.resample`).

    Returns:
      (..., H, W) logits, equal to `v . upsample(acts)`.
    """
    # HIGHEST: no TF32 on GPUs, so both upsampling orders agree to ~1e-6.
    z = jnp.einsum("c,...chw->...hw", v, acts, precision=_HI)
    if tuple(acts.shape[-2:]) == tuple(grid):
        return z
    a_h, a_w = _matrices(acts.shape[-2:], grid, mode)
    return jnp.einsum("Hh,...hw,Ww->...HW", a_h, z, a_w, precision=_HI)


def projection(v: jax.Array, acts: jax.Array, grid, *, mode: str = "bilinear"):
    """The stored projection uint8(255 sigmoid(clip(z, -10, 10))), (..., H, W).

    uint8 truncation makes "projection > 0.5 after /255" mean s >= 128/255.
    """
    z = jnp.clip(logits(v, acts, grid, mode=mode), -10.0, 10.0)
    return (255.0 * jax.nn.sigmoid(z)).astype(jnp.uint8)


def _as_views(acts, target, alpha):
    """Adds a view axis of 1 to single-view inputs and checks shapes."""
    acts, target = jnp.asarray(acts), jnp.asarray(target, jnp.float32)
    if acts.ndim not in (3, 4) or target.ndim != acts.ndim - 1:
        raise ValueError(
            f"expected acts (C, h, w) with target (H, W), or (V, C, h, w) with "
            f"(V, H, W); got {acts.shape} and {target.shape}"
        )
    if acts.ndim == 3:
        acts, target = acts[None], target[None]
    if acts.shape[0] != target.shape[0]:
        raise ValueError(
            f"{acts.shape[0]} activation views vs {target.shape[0]} targets"
        )
    if alpha is None:
        alpha = objectives.alpha_from_target(target)
    alpha = jnp.broadcast_to(jnp.asarray(alpha, jnp.float32), target.shape[:1])
    return acts, target, alpha


def _alphas(targets, alphas):
    targets = jnp.asarray(targets, jnp.float32)
    if alphas is None:
        alphas = objectives.alpha_from_target(targets)
    return targets, jnp.asarray(alphas, jnp.float32)


def _sample_loss(v, acts, target, alpha, *, config):
    """Scaled sum over views of the objective; acts (V, C, h, w) or (C, h, w)."""
    acts, target, alpha = _as_views(acts, target, alpha)
    z = logits(v, acts, target.shape[-2:], mode=config.interp)
    obj = objectives.get_objective(config.objective).fn
    return config.scale() * jnp.sum(
        jax.vmap(obj, in_axes=(0, 0, 0, None))(z, target, alpha, v)
    )
