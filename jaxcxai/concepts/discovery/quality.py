"""Quality of a discovered dictionary: fit, sparsity, dead codes, localization.

* `r2`: 1 - ||X - X_hat||^2 / ||X - mean(X)||^2 of the reconstruction
  X_hat = codes @ components + mean.
* `sparsity`: fraction of zero codes and mean L0 (non-zeros per row).
* `dead_codes`: components whose code never exceeds a tolerance.
* `localization_iou`: NetDissect-style IoU (Bau et al. 2017, "Network
  dissection") of each component's presence map with each concept's mask.
  Presence maps (N, h, w, k) are upsampled bilinearly (`jax.image.resize`,
  half-pixel centres) to the mask size (H, W) and thresholded; the dataset
  IoU of component j and concept c is
  sum_n |M_j(n) & L_c(n)| / sum_n |M_j(n) | L_c(n)|.
  Thresholds: `top_quantile=q` takes, as NetDissect, the (1 - q) quantile
  of each component's low-resolution presence values over the dataset
  (q = 0.005 in NetDissect); `top_quantile="area"` instead thresholds
  component j for concept c at the upsampled quantile that leaves as many
  pixels as concept c covers (a per-pair, parameter-free choice that lets a
  perfect detector reach IoU 1 for large objects).
* `best_concepts` / `recovered_concepts`: the best concept per component,
  and the concepts some component localizes with IoU >= 0.3.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.concepts.discovery.common import as_rows, check_finite

__all__ = [
    "r2",
    "sparsity",
    "dead_codes",
    "upsample_presence",
    "localization_iou",
    "best_concepts",
    "recovered_concepts",
]


def r2(acts, codes, components, mean=None):
    """Coefficient of determination of X ~ codes @ components + mean.

    Args:
      acts: (N, d) or (N, ..., C) activations (rows as in the fit).
      codes: (rows, k) codes (or (N, ..., k), flattened the same way).
      components: (k, d).
      mean: optional (d,).
    """
    x = as_rows(acts, "acts").astype(jnp.float32)
    c = jnp.asarray(codes).reshape(x.shape[0], -1)
    rec = c @ jnp.asarray(components)
    if mean is not None:
        rec = rec + jnp.reshape(mean, (1, -1))
    sse = jnp.sum((x - rec) ** 2)
    sst = jnp.sum((x - jnp.mean(x, axis=0, keepdims=True)) ** 2)
    return float(1.0 - sse / jnp.maximum(sst, jnp.finfo(x.dtype).tiny))


def sparsity(codes, tol=0.0):
    """{"fraction_zero", "mean_l0"} of codes (..., k): |code| <= tol is zero."""
    c = jnp.asarray(codes)
    check_finite(c, "codes")
    active = jnp.abs(c) > tol
    return {
        "fraction_zero": float(1.0 - jnp.mean(active)),
        "mean_l0": float(jnp.mean(jnp.sum(active, axis=-1))),
    }


def dead_codes(codes, tol=0.0):
    """(k,) bool: components whose |code| never exceeds `tol` on any row."""
    c = jnp.asarray(codes)
    return np.asarray(jnp.all(jnp.abs(c.reshape(-1, c.shape[-1])) <= tol, axis=0))


def upsample_presence(presence, size):
    """Bilinear upsampling of presence maps (N, h, w, k) to (N, H, W, k)."""
    p = jnp.asarray(presence)
    return jax.image.resize(p, (p.shape[0], *size, p.shape[-1]), "bilinear")


@functools.partial(jax.jit, static_argnames=("batch",))
def _counts(presence, masks, thresholds, batch):
    """Intersection and prediction counts (k, c) summed over images."""
    n = presence.shape[0]
    pad = -n % batch
    # Padded images are masked out of both counts by `valid`.
    valid = (jnp.arange(n + pad) < n).reshape(-1, batch)
    pres = jnp.pad(presence, ((0, pad),) + ((0, 0),) * 3)
    mask = jnp.pad(masks, ((0, pad),) + ((0, 0),) * 3)
    pres = pres.reshape((-1, batch) + presence.shape[1:])
    mask = mask.reshape((-1, batch) + masks.shape[1:])

    def one(args):
        p, m, v = args
        up = upsample_presence(p, m.shape[1:3])
        on = (up[..., :, None] > thresholds[None, None, None]) & v[
            :, None, None, None, None
        ]
        inter = jnp.sum(on & m[..., None, :], axis=(0, 1, 2))
        return inter, jnp.sum(on, axis=(0, 1, 2))

    inter, pred = jax.lax.map(one, (pres, mask, valid))
    return jnp.sum(inter, 0), jnp.sum(pred, 0)


def localization_iou(presence, masks, *, top_quantile=0.005, batch_size=32):
    """IoU (k, c) of each component's thresholded presence with each concept.

    Args:
      presence: (N, h, w, k) presence maps (codes reshaped; `ice.presence`).
      masks: (N, H, W, c) boolean (or {0, 1}) concept masks at image size.
      top_quantile: NetDissect's fraction of values above the threshold
        (0 < q < 1), or "area" (see the module docstring).
      batch_size: images per upsampling step.

    Returns:
      (k, c) float NumPy IoUs (0 where the union is empty).
    """
    p = jnp.asarray(presence, jnp.float32)
    m = jnp.asarray(masks)
    if p.ndim != 4 or m.ndim != 4 or p.shape[0] != m.shape[0]:
        raise ValueError(
            f"presence (N, h, w, k) and masks (N, H, W, c) disagree: {p.shape}, {m.shape}"
        )
    check_finite(p, "presence")
    m = m > 0.5 if jnp.issubdtype(m.dtype, jnp.floating) else m.astype(bool)
    if top_quantile == "area":
        area = jnp.mean(m, axis=(0, 1, 2))  # (c,)
        up = upsample_presence(p, m.shape[1:3]).reshape(-1, p.shape[-1])
        thr = jnp.quantile(up, 1.0 - area, axis=0).T  # (k, c)
    else:
        if not 0.0 < float(top_quantile) < 1.0:
            raise ValueError(
                f"top_quantile must be in (0, 1) or 'area', got {top_quantile}"
            )
        thr = jnp.quantile(p.reshape(-1, p.shape[-1]), 1.0 - top_quantile, axis=0)
        thr = jnp.broadcast_to(thr[:, None], (p.shape[-1], m.shape[-1]))
    inter, pred = _counts(p, m, thr, min(batch_size, p.shape[0]))
    inter, pred = np.asarray(inter, np.float64), np.asarray(pred, np.float64)
    area = np.asarray(jnp.sum(m, axis=(0, 1, 2)), np.float64)
    union = pred + area[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def best_concepts(iou, names=None):
    """Per component: {"concept", "iou"} of its best-matching concept."""
    iou = np.asarray(iou)
    names = [str(i) for i in range(iou.shape[1])] if names is None else list(names)
    best = iou.argmax(axis=1)
    return [{"concept": names[c], "iou": float(iou[j, c])} for j, c in enumerate(best)]


def recovered_concepts(iou, names=None, threshold=0.3):
    """Concepts localized by some component with IoU >= threshold:
    name -> (component, IoU) of the best such component."""
    iou = np.asarray(iou)
    names = [str(i) for i in range(iou.shape[1])] if names is None else list(names)
    out = {}
    for c, name in enumerate(names):
        j = int(iou[:, c].argmax())
        if iou[j, c] >= threshold:
            out[name] = (j, float(iou[j, c]))
    return out
