"""Concept-segmentation KPIs of bulk-fitted Net2Vec probes, streamed over chunks.

Non-finite probes, thresholds or chunk arrays raise `NonFiniteError`: NetDissect
thresholding would zero a NaN activation silently (NaN > T is false). The
chunks' counts are accumulated on device and fetched once, after the stream.
"""

import functools
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.checks import NonFiniteError, check_finite
from jaxcxai.concepts.probes.net2vec import Probe, apply_thresholds, probe_logits
from jaxcxai.metrics import segmentation as seg

__all__ = ["evaluate_net2vec"]


@functools.partial(jax.jit, static_argnums=(4, 5))
def _eval_chunk(probe, acts, masks, thr, num_thresholds, num_bins):
    acts = apply_thresholds(acts, thr)
    prob = jax.nn.sigmoid(probe_logits(probe, acts, masks.shape[-2:]))  # (K,R,n,H,W)
    target = jnp.moveaxis(masks, 1, 0)[:, None].astype(jnp.float32)  # (K,1,n,H,W)
    ths = jnp.linspace(0.0, 1.0, num_thresholds)
    return {
        "iou": seg.iou_counts(prob, target),
        "sample_iou": jnp.sum(seg.sample_iou(prob, target), axis=-1),
        "curve": seg.threshold_curve_counts(prob, target, ths),
        "calibration": seg.calibration_counts(prob, target, num_bins),
    }


def _num_bad(x: jax.Array) -> jax.Array:
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.zeros((), jnp.int32)
    return jnp.sum(~jnp.isfinite(x))


def evaluate_net2vec(
    probe: Probe,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    thresholds: jax.typing.ArrayLike | None = None,
    num_thresholds: int = 20,
    num_bins: int = 10,
) -> dict[str, jax.Array]:
    """Concept-segmentation KPIs of K x R probes over a stream of chunks.

    Args:
      probe: w (K, R, C), b (K, R).
      chunks: iterable of (acts (n, h, w, C), masks (n, K, H, W)).
      thresholds: (C,) NetDissect thresholds used in training, if any.
      num_thresholds: points of the IoU-vs-threshold curve in [0, 1].
      num_bins: calibration bins.

    Returns:
      Dict of (K, R, ...) arrays: `set_iou`, `mean_sample_iou` (over all
      images), `iou_curve` (K, R, T), `ece`, and `calibration` =
      (confidence, accuracy, fraction), each (K, R, num_bins).

    Raises:
      NonFiniteError: the probe, the thresholds (-inf is allowed: no
        thresholding) or the chunks' arrays hold NaN or inf.
    """
    c = probe.w.shape[-1]
    thr = jnp.full((c,), -jnp.inf) if thresholds is None else jnp.asarray(thresholds)
    # -inf thresholds are the documented "no thresholding".
    check_finite({"probe": probe, "thresholds": thr}, allow_neg_inf=["thresholds"])
    total, n = None, 0
    bad, size = {"acts": 0, "masks": 0}, {"acts": 0, "masks": 0}
    for acts, masks in chunks:
        arrays = {"acts": jnp.asarray(acts), "masks": jnp.asarray(masks)}
        for name, x in arrays.items():
            bad[name], size[name] = bad[name] + _num_bad(x), size[name] + x.size
        out = _eval_chunk(probe, *arrays.values(), thr, num_thresholds, num_bins)
        total = out if total is None else jax.tree.map(jnp.add, total, out)
        n += masks.shape[0]
    if total is None:
        raise ValueError("evaluate_net2vec got no chunks")
    for name, count in jax.device_get(bad).items():
        if count:
            raise NonFiniteError(f"chunks' {name}", int(count), size[name])
    conf, acc, frac, ece = seg.calibration_from_counts(*total["calibration"])
    return {
        "set_iou": seg.iou_from_counts(*total["iou"]),
        "mean_sample_iou": total["sample_iou"] / n,
        "iou_curve": seg.iou_from_counts(*total["curve"]),
        "ece": ece,
        "calibration": (conf, acc, frac),
    }
