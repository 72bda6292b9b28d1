"""Concept-segmentation metrics: IoU variants, IoU-vs-threshold, calibration.

Pure `jnp` functions, batched over any leading axes (concepts, runs, layers):
a prediction `pred` holds probabilities in [0, 1] (e.g. sigmoid outputs of a
Net2Vec probe) and `target` holds (soft) labels, both shaped (..., N, H, W)
(leading axes broadcast, e.g. (K, R, N, H, W) against (K, 1, N, H, W)).
Following the KPIs of the reference framework (Schwalbe's hybrid_learning,
continental/hybrid_learning):

* a pixel is predicted positive if `pred > threshold` (0.5) and is a label
  positive if `target > label_threshold` (0);
* IoUs are smoothed as (I + smooth) / (U + smooth) with smooth = 1e-6, so an
  empty prediction of an empty label scores 1;
* the set IoU sums I and U over the whole set (all N images) before the
  ratio; the per-sample IoU takes the ratio per image.

Every metric also has a `*_counts` form returning additive sums, so a large
set can be evaluated chunk by chunk: add the counts, then take the ratio.
"""

import math

import jax
import jax.numpy as jnp

__all__ = [
    "iou_counts",
    "iou_from_counts",
    "set_iou",
    "sample_iou",
    "mean_iou",
    "default_thresholds",
    "threshold_curve_counts",
    "iou_threshold_curve",
    "calibration_counts",
    "calibration_from_counts",
    "calibration_curve",
    "expected_calibration_error",
]

_SET_AXES = (-3, -2, -1)
_SAMPLE_AXES = (-2, -1)


def _check(pred: jax.Array, target: jax.Array, min_ndim: int):
    """Broadcasts pred and target to a common (..., N, H, W) shape."""
    try:
        shape = jnp.broadcast_shapes(pred.shape, target.shape)
    except ValueError:
        raise ValueError(
            f"pred and target shapes do not broadcast: {pred.shape} vs {target.shape}"
        ) from None
    if pred.shape[-3:] != target.shape[-3:] or len(shape) < min_ndim:
        raise ValueError(
            f"expected (..., N, H, W) maps with equal trailing (N, H, W) and at least "
            f"{min_ndim} axes, got {pred.shape} and {target.shape}"
        )
    return jnp.broadcast_to(pred, shape), jnp.broadcast_to(target, shape)


def iou_counts(
    pred: jax.typing.ArrayLike,
    target: jax.typing.ArrayLike,
    threshold: float = 0.5,
    label_threshold: float = 0.0,
    axes: tuple[int, ...] = _SET_AXES,
) -> tuple[jax.Array, jax.Array]:
    """Intersection and union pixel counts of `pred > t` and `target > lt`.

    Args:
      pred: (..., N, H, W) probabilities.
      target: (..., N, H, W) labels.
      threshold: prediction threshold (strict `>`).
      label_threshold: label threshold (strict `>`).
      axes: axes summed over; the default sums N, H and W (set counts).

    Returns:
      (intersection, union), float32 arrays of the remaining shape.
    """
    pred, target = _check(jnp.asarray(pred), jnp.asarray(target), len(axes))
    p = pred > threshold
    t = target > label_threshold
    inter = jnp.sum(p & t, axis=axes, dtype=jnp.float32)
    union = jnp.sum(p | t, axis=axes, dtype=jnp.float32)
    return inter, union


def iou_from_counts(
    inter: jax.typing.ArrayLike, union: jax.typing.ArrayLike, smooth: float = 1e-6
) -> jax.Array:
    """Smoothed IoU (I + smooth) / (U + smooth)."""
    return (jnp.asarray(inter) + smooth) / (jnp.asarray(union) + smooth)


def set_iou(pred, target, threshold=0.5, label_threshold=0.0, smooth=1e-6):
    """Set IoU: sum_x |P(x) & L(x)| / sum_x |P(x) | L(x)| over N images.

    Args: as `iou_counts`; maps (..., N, H, W). Returns: (...,) IoUs.
    """
    counts = iou_counts(pred, target, threshold, label_threshold, _SET_AXES)
    return iou_from_counts(*counts, smooth)


def sample_iou(pred, target, threshold=0.5, label_threshold=0.0, smooth=1e-6):
    """Per-image IoU. Args: maps (..., N, H, W). Returns: (..., N) IoUs."""
    counts = iou_counts(pred, target, threshold, label_threshold, _SAMPLE_AXES)
    return iou_from_counts(*counts, smooth)


def mean_iou(pred, target, threshold=0.5, label_threshold=0.0, smooth=1e-6):
    """Mean over concepts of the set IoU.

    Args:
      pred, target: (K, N, H, W) maps, one row per concept (more leading axes
        are allowed; the mean runs over axis 0).

    Returns:
      (...,) mean IoU (a scalar for (K, N, H, W) inputs).
    """
    ious = set_iou(pred, target, threshold, label_threshold, smooth)
    if ious.ndim == 0:
        raise ValueError("mean_iou needs a leading concept axis: (K, N, H, W)")
    return jnp.mean(ious, axis=0)


def default_thresholds(num: int = 20) -> jax.Array:
    """`num` evenly spaced prediction thresholds in [0, 1] (both included)."""
    return jnp.linspace(0.0, 1.0, num, dtype=jnp.float32)


def threshold_curve_counts(pred, target, thresholds=None, label_threshold=0.0):
    """Set-IoU counts at several prediction thresholds.

    Args:
      pred, target: (..., N, H, W) maps.
      thresholds: (T,) thresholds; default `default_thresholds(20)`.
      label_threshold: label threshold.

    Returns:
      (intersection, union), each (..., T).
    """
    thresholds = default_thresholds() if thresholds is None else thresholds
    thresholds = jnp.asarray(thresholds, jnp.float32)
    pred, target = _check(jnp.asarray(pred), jnp.asarray(target), 3)
    t = target > label_threshold
    # lax.map keeps one (..., N, H, W) boolean map alive at a time instead of T.

    def one(th):
        p = pred > th
        return (
            jnp.sum(p & t, axis=_SET_AXES, dtype=jnp.float32),
            jnp.sum(p | t, axis=_SET_AXES, dtype=jnp.float32),
        )

    inter, union = jax.lax.map(one, thresholds)
    return jnp.moveaxis(inter, 0, -1), jnp.moveaxis(union, 0, -1)


def iou_threshold_curve(
    pred, target, thresholds=None, label_threshold=0.0, smooth=1e-6
) -> tuple[jax.Array, jax.Array]:
    """Set IoU as a function of the prediction threshold.

    Returns:
      (thresholds (T,), ious (..., T)).
    """
    thresholds = default_thresholds() if thresholds is None else thresholds
    thresholds = jnp.asarray(thresholds, jnp.float32)
    inter, union = threshold_curve_counts(pred, target, thresholds, label_threshold)
    return thresholds, iou_from_counts(inter, union, smooth)


def calibration_counts(pred, target, num_bins=10, label_threshold=None):
    """Per-bin sums for a reliability diagram over all pixels of N images.

    Pixels are put into `num_bins` equal-width confidence bins over [0, 1]
    (p = 1 falls into the last bin). The "accuracy" of a pixel is its label:
    `target` itself (soft labels) when `label_threshold` is None, else
    `target > label_threshold`; for binary targets both agree.

    Args:
      pred, target: (..., N, H, W) maps.
      num_bins: number of bins.
      label_threshold: None for soft labels, or a binarization threshold.

    Returns:
      (sum_confidence, sum_label, count), each (..., num_bins).
    """
    pred, target = _check(jnp.asarray(pred, jnp.float32), jnp.asarray(target), 3)
    if label_threshold is None:
        label = target.astype(jnp.float32)
    else:
        label = (target > label_threshold).astype(jnp.float32)
    lead = pred.shape[:-3]
    p = pred.reshape((math.prod(lead), math.prod(pred.shape[-3:])))
    y = label.reshape(p.shape)
    bins = jnp.clip(jnp.floor(p * num_bins).astype(jnp.int32), 0, num_bins - 1)

    def per_row(b, p_row, y_row):
        seg = lambda v: jax.ops.segment_sum(v, b, num_segments=num_bins)  # noqa: E731
        return seg(p_row), seg(y_row), seg(jnp.ones_like(p_row))

    sums = jax.vmap(per_row)(bins, p, y)
    return tuple(s.reshape(lead + (num_bins,)) for s in sums)


def calibration_from_counts(sum_conf, sum_label, count):
    """Curve and ECE from `calibration_counts`.

    Returns:
      (confidence, accuracy, fraction, ece): per-bin mean confidence and mean
      label (0 for empty bins), the fraction of pixels per bin, and
      ECE = sum_b fraction_b * |accuracy_b - confidence_b|, all batched over
      the leading axes.
    """
    safe = jnp.maximum(count, 1.0)
    conf, acc = sum_conf / safe, sum_label / safe
    frac = count / jnp.maximum(jnp.sum(count, axis=-1, keepdims=True), 1.0)
    ece = jnp.sum(frac * jnp.abs(acc - conf), axis=-1)
    return conf, acc, frac, ece


def calibration_curve(pred, target, num_bins=10, label_threshold=None):
    """Reliability diagram: (confidence, accuracy, fraction) per bin, (..., B)."""
    counts = calibration_counts(pred, target, num_bins, label_threshold)
    return calibration_from_counts(*counts)[:3]


def expected_calibration_error(pred, target, num_bins=10, label_threshold=None):
    """Expected calibration error over all pixels; (...,) for (..., N, H, W)."""
    counts = calibration_counts(pred, target, num_bins, label_threshold)
    return calibration_from_counts(*counts)[3]
