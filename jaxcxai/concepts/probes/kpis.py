"""Concept-segmentation KPIs of bulk-fitted Net2Vec probes, streamed over chunks."""

import functools
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

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
    """
    c = probe.w.shape[-1]
    thr = jnp.full((c,), -jnp.inf) if thresholds is None else jnp.asarray(thresholds)
    total, n = None, 0
    for acts, masks in chunks:
        out = _eval_chunk(probe, jnp.asarray(acts), jnp.asarray(masks), thr,
                          num_thresholds, num_bins)  # fmt: skip
        total = out if total is None else jax.tree.map(jnp.add, total, out)
        n += masks.shape[0]
    if total is None:
        raise ValueError("evaluate_net2vec got no chunks")
    conf, acc, frac, ece = seg.calibration_from_counts(*total["calibration"])
    return {
        "set_iou": seg.iou_from_counts(*total["iou"]),
        "mean_sample_iou": total["sample_iou"] / n,
        "iou_curve": seg.iou_from_counts(*total["curve"]),
        "ece": ece,
        "calibration": (conf, acc, frac),
    }
