"""IoUs of LoCE projections: on the target grid and at the original resolution.

`iou_on_grid` scores a LoCE's own projection against its soft target on the
T x T grid; `iou_original` is the LoCE reference's stored "loss", the IoU of
the resized uint8 projection against the original-resolution mask. Both are
stored per LoCE by `store.fit_to_store`.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.data.resample import interpolation_matrix

__all__ = ["iou_on_grid", "iou_original"]

_HI = jax.lax.Precision.HIGHEST


def iou_on_grid(z, t, *, target_threshold=0.5, smooth=0.0) -> jax.Array:
    """IoU of [sigmoid(z) > 0.5] (i.e. z > 0) against [t > target_threshold].

    Args:
      z: (..., H, W) logits; t: (..., H, W) targets.
      target_threshold: 0.5 here; the BG code uses t > 0 with smooth=1e-4.
      smooth: added to intersection and union; with 0 an empty union is 0.

    Returns:
      (...) IoUs.
    """
    pred, truth = z > 0, t > target_threshold
    inter = jnp.sum(pred & truth, axis=(-2, -1)).astype(jnp.float32)
    union = jnp.sum(pred | truth, axis=(-2, -1)).astype(jnp.float32)
    return jnp.where(
        union + smooth > 0, (inter + smooth) / jnp.maximum(union + smooth, 1e-30), 0.0
    )


@jax.jit
def _iou_resized(proj, masks, a_h, a_w):
    up = jnp.einsum(
        "Hh,nhw,Ww->nHW", a_h, proj.astype(jnp.float32) / 255.0, a_w, precision=_HI
    )
    pred, truth = up > 0.5, masks
    inter = jnp.sum(pred & truth, axis=(-2, -1)).astype(jnp.float32)
    union = jnp.sum(pred | truth, axis=(-2, -1)).astype(jnp.float32)
    return jnp.where(union > 0, inter / jnp.maximum(union, 1.0), 0.0)


def iou_original(proj, masks: Sequence[np.ndarray]) -> np.ndarray:
    """The reference's stored "loss": IoU at the original mask resolution.

    The uint8 projection is resized like `skimage.transform.resize(order=1)`
    (float in [0, 1]), thresholded at > 0.5 and compared with the binary mask
    (Jaccard; 0 when both are empty, as sklearn's default).

    Args:
      proj: (N, T, T) uint8 projections.
      masks: N binary masks, each of any (H_i, W_i).

    Returns:
      (N,) float32 IoUs. Masks of equal shape are evaluated as one batch.
    """
    proj = np.asarray(proj)
    if len(masks) != proj.shape[0]:
        raise ValueError(f"{len(masks)} masks for {proj.shape[0]} projections")
    out = np.zeros(proj.shape[0], np.float32)
    shapes = [tuple(np.shape(m)) for m in masks]
    for shape in sorted(set(shapes)):
        rows = np.array([i for i, s in enumerate(shapes) if s == shape])
        a_h = interpolation_matrix(proj.shape[1], shape[0], "skimage")
        a_w = interpolation_matrix(proj.shape[2], shape[1], "skimage")
        batch = np.stack([np.asarray(masks[i]) > 0 for i in rows])
        out[rows] = np.asarray(_iou_resized(proj[rows], batch, a_h, a_w))
    return out
