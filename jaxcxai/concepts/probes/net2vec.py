"""Net2Vec concept segmentation probes: 1x1 conv + sigmoid per (concept, layer).

A probe (w: (C,), b: ()) predicts M(x) = sigmoid(U(sum_c w_c A_c(x) + b)),
where A (h, w, C) are the layer's activations at native resolution and U is
bilinear upsampling (PyTorch `align_corners=False`) to the label resolution
(H, W). Net2Vec (Fong & Vedaldi, CVPR 2018) upsamples the
activations first; because U is linear, acts per channel and its rows sum to
one, U(sum_c w_c A_c + b) = sum_c w_c U(A_c) + b, so computing the logit map
at native resolution and upsampling it is exact and C times cheaper.

Objectives (per-image losses, averaged over pixels; swap via `OBJECTIVES`):

* "net2vec": the soft TP/TN objective
  -mean_p [a M_p L_p + (1 - a) (1 - M_p) (1 - L_p)] with the dataset-level
  a = 1 - mean foreground fraction. (reconstruction - not verified against
  the paper; consistent with the reference code.) The reconstructed loss
  sums over pixels; the mean only rescales the gradient by 1 / (H W).
* "balanced_bce": class-weighted BCE
  -mean_p [f L_p log M_p + (1 - f) (1 - L_p) log(1 - M_p)], f = 0.95 as in
  the reference config (hybrid_learning `BalancedBCELoss(0.95)`); for
  binary labels this is BCE with weight f on positive, 1 - f on negative
  pixels.
* "fuzzy_bce": BCE against the binarized label T = [L > 0.5] with pixel
  weights a T L + (1 - a) (1 - T) (1 - L), so pixels of soft (fuzzy) label
  near 0.5 count little (bg_randomized_loce "proper_bce"; it sums over
  pixels, we average).

Fitting in bulk (K concepts x R runs x L same-shaped layers in one jitted
scan) lives in `jaxcxai.concepts.probes.bulk`; this module holds the probe math,
NetDissect activation thresholds and the embedding form of a probe.
"""

from collections.abc import Iterable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.data.resample import interpolation_matrix

__all__ = [
    "Probe",
    "Embedding",
    "OBJECTIVES",
    "net2vec_loss",
    "balanced_bce_loss",
    "fuzzy_bce_loss",
    "foreground_alpha",
    "upsample_logits",
    "probe_logits",
    "netdissect_thresholds",
    "apply_thresholds",
    "probe_to_embedding",
    "embedding_to_probe",
    "normalize_embedding",
    "mean_normalized_embedding",
]

_HI = jax.lax.Precision.HIGHEST


class Probe(NamedTuple):
    """Concept segmentation probes: logit = w . a + b per activation pixel.

    Attributes:
      w: (..., C) weights (leading axes e.g. (K, R) concepts x runs).
      b: (...) biases.
    """

    w: jax.Array
    b: jax.Array


class Embedding(NamedTuple):
    """A probe as a hyperplane (hybrid_learning's concept embedding form).

    logit(a) = scale * (normal . a - support * |normal|^2); for a probe
    (w, b): normal = w, support = -b / |w|^2, scale = 1.

    Attributes:
      normal: (..., C) normal vector.
      support: (...) support factor (the plane passes through support*normal).
      scale: (...) scaling factor of the logit.
    """

    normal: jax.Array
    support: jax.Array
    scale: jax.Array


def _per_pixel(weight, logits):
    """Broadcasts a (...)-shaped weight against (..., H, W) maps explicitly."""
    weight = jnp.asarray(weight)[..., None, None]
    return jnp.broadcast_to(weight, jnp.broadcast_shapes(weight.shape, logits.shape))


def net2vec_loss(logits, target, alpha):
    """Net2Vec soft TP/TN loss per image; (..., H, W) -> (...).

    (reconstruction - not verified against the paper; keep it swappable.)
    `alpha` broadcasts against the leading axes (e.g. (K, 1) per concept).
    """
    m = jax.nn.sigmoid(logits)
    alpha = _per_pixel(alpha, logits)
    gain = alpha * m * target + (1.0 - alpha) * (1.0 - m) * (1.0 - target)
    return -jnp.mean(gain, axis=(-2, -1))


def balanced_bce_loss(logits, target, pos_weight=0.95):
    """Class-balanced BCE per image; (..., H, W) -> (...)."""
    f = _per_pixel(pos_weight, logits)
    ll = f * target * jax.nn.log_sigmoid(logits)
    ll = ll + (1.0 - f) * (1.0 - target) * jax.nn.log_sigmoid(-logits)
    return -jnp.mean(ll, axis=(-2, -1))


def fuzzy_bce_loss(logits, target, alpha):
    """BCE against [target > 0.5] with fuzzy-boundary weights; (..., H, W) -> (...)."""
    a = _per_pixel(alpha, logits)
    hard = (target > 0.5).astype(logits.dtype)
    weight = a * hard * target + (1.0 - a) * (1.0 - hard) * (1.0 - target)
    bce = -(
        hard * jax.nn.log_sigmoid(logits) + (1 - hard) * jax.nn.log_sigmoid(-logits)
    )
    return jnp.mean(weight * bce, axis=(-2, -1))


# name -> (loss(logits, target, weight), default weight: "dataset" = alpha).
OBJECTIVES = {
    "net2vec": (net2vec_loss, "dataset"),
    "balanced_bce": (balanced_bce_loss, 0.95),
    "fuzzy_bce": (fuzzy_bce_loss, "dataset"),
}


def foreground_alpha(masks, weights=None) -> np.ndarray:
    """Dataset-level alpha_k = 1 - mean fraction of foreground (label > 0) pixels.

    Args:
      masks: (N, K, H, W) labels.
      weights: optional (N, K) example weights (0 excludes an image from
        concept k's training set).

    Returns:
      (K,) float32.
    """
    masks = np.asarray(masks)
    frac = (masks > 0).mean(axis=(-2, -1))  # (N, K)
    w = np.ones_like(frac) if weights is None else np.asarray(weights, np.float64)
    return (1.0 - (w * frac).sum(0) / np.maximum(w.sum(0), 1e-12)).astype(np.float32)


def upsample_logits(logits: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Bilinear (align_corners=False) resize of (..., h, w) maps to (..., H, W)."""
    h, w = logits.shape[-2:]
    if (h, w) == tuple(size):
        return logits
    rh = jnp.asarray(interpolation_matrix(h, size[0], "bilinear"), logits.dtype)
    rw = jnp.asarray(interpolation_matrix(w, size[1], "bilinear"), logits.dtype)
    out = jnp.einsum("Hh,...hw->...Hw", rh, logits, precision=_HI)
    return jnp.einsum("...Hw,Ww->...HW", out, rw, precision=_HI)


def probe_logits(probe: Probe, acts: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Probe logits at label resolution.

    Args:
      probe: `Probe` with w (..., C) and b (...).
      acts: (N, h, w, C) activations (native resolution).
      size: (H, W) label resolution.

    Returns:
      (..., N, H, W) logits: native-resolution logits, then bilinear upsampling.
    """
    if acts.shape[-1] != probe.w.shape[-1]:
        raise ValueError(
            f"probe has {probe.w.shape[-1]} channels, activations {acts.shape}"
        )
    z = jnp.einsum("nhwc,...c->...nhw", acts, probe.w, precision=_HI)
    return upsample_logits(z + probe.b[..., None, None, None], size)


def netdissect_thresholds(
    acts: np.ndarray | Iterable[np.ndarray], top_quantile: float = 0.005
) -> np.ndarray:
    """Per-channel NetDissect thresholds T_c: the (1 - top_quantile) quantile.

    Exact (NumPy's default linear interpolation) over all N*h*w values of
    each channel, computed in one pass with a running top-k, so activations
    can be streamed in chunks.

    Args:
      acts: (N, ..., C) array or an iterable of (n, ..., C) chunks.
      top_quantile: fraction of values above the threshold (0.005 = top 0.5%).

    Returns:
      (C,) float32 thresholds.
    """
    if not 0.0 < top_quantile < 1.0:
        raise ValueError(f"top_quantile must be in (0, 1), got {top_quantile}")
    chunks = [acts] if isinstance(acts, np.ndarray | jax.Array) else acts
    top, total = None, 0
    for chunk in chunks:
        chunk = np.asarray(chunk, np.float32)
        vals = chunk.reshape(-1, chunk.shape[-1])
        total += vals.shape[0]
        # Values outside the top ceil(q M_seen) + 2 can never re-enter the
        # final top-k, because M only grows.
        k = min(int(np.ceil(top_quantile * total)) + 2, total)
        pool = vals if top is None else np.concatenate([top, vals])
        top = -np.partition(-pool, k - 1, axis=0)[:k] if k < len(pool) else pool
    if top is None:
        raise ValueError("netdissect_thresholds got no activations")
    top = -np.sort(-top, axis=0)  # descending
    pos = (1.0 - top_quantile) * (total - 1)  # ascending position
    lo = int(np.floor(pos))
    frac = pos - lo
    lo_val = top[total - 1 - lo]
    hi_val = top[max(total - 2 - lo, 0)]
    return (lo_val + frac * (hi_val - lo_val)).astype(np.float32)


def apply_thresholds(acts: jax.Array, thresholds: jax.Array) -> jax.Array:
    """NetDissect activation thresholding: keep values > T_c, zero the rest."""
    thresholds = jnp.asarray(thresholds)
    thresholds = thresholds.reshape(
        (1,) * (acts.ndim - thresholds.ndim) + thresholds.shape
    )
    return jnp.where(acts > thresholds, acts, jnp.zeros_like(acts))


def probe_to_embedding(probe: Probe) -> Embedding:
    """(w, b) -> (normal = w, support = -b / |w|^2, scale = 1)."""
    sq = jnp.sum(probe.w**2, axis=-1)
    return Embedding(probe.w, -probe.b / sq, jnp.ones_like(probe.b))


def embedding_to_probe(emb: Embedding) -> Probe:
    """Inverse of `probe_to_embedding` (for any scale)."""
    sq = jnp.sum(emb.normal**2, axis=-1)
    return Probe(emb.scale[..., None] * emb.normal, -emb.scale * emb.support * sq)


def normalize_embedding(emb: Embedding) -> Embedding:
    """Same logit function with a unit normal: (n/|n|, b'|n|, scale |n|)."""
    norm = jnp.linalg.norm(emb.normal, axis=-1)
    return Embedding(emb.normal / norm[..., None], emb.support * norm, emb.scale * norm)


def mean_normalized_embedding(emb: Embedding, axis: int = 0) -> Embedding:
    """Aggregates runs/ensemble members by MEAN_NORMALIZED_DIST (hybrid_learning).

    Members are normalized to unit normals n_j with support b'_j (so their
    signed distance to the plane is n_j . a - b'_j). The mean normal is
    m = mean_j n_j and b' = mean_j(b'_j |n_j|^2) / |m|^2 = mean_j b'_j / |m|^2,
    which makes the aggregate's distance function the members' mean. The
    result is re-normalized and its scale set to the mean of the normalized
    members' scales.

    Args:
      emb: `Embedding` whose members lie along `axis` of the leading axes.
      axis: member axis (of `support`; `normal` has one more trailing axis).
    """
    unit = normalize_embedding(emb)
    axis = axis % unit.support.ndim
    m = jnp.mean(unit.normal, axis=axis)
    support = jnp.mean(unit.support, axis=axis) / jnp.sum(m**2, axis=-1)
    agg = normalize_embedding(Embedding(m, support, jnp.ones_like(support)))
    return agg._replace(scale=jnp.mean(unit.scale, axis=axis))
