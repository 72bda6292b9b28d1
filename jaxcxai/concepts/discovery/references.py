"""Reference samples of concepts: the top-n images (or crops) per concept.

"Show me the concept": for each concept, the images whose code is largest,
each with the concept's presence map upsampled (bilinear) to image size for
overlay. Works for discovered concepts (presence = NMF/SAE codes reshaped
to (N, h, w, k)) and for supervised ones alike (presence = a probe's
per-position scores, e.g. the projection of each position's activation on
a CAV, or a Net2Vec logit map, stacked to (N, h, w, c)).

An image's score for concept j is the max (default) or mean of its
presence map; crops are fixed-size windows centred on the map's arg-max
(clipped to the image), as CRAFT shows concept crops.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.concepts.discovery.common import check_finite
from jaxcxai.concepts.discovery.quality import upsample_presence

__all__ = [
    "References",
    "vector_presence",
    "image_scores",
    "top_examples",
    "reference_samples",
]


class References(NamedTuple):
    """Top-n reference samples of k concepts.

    Attributes:
      indices: (k, n) image indices, best first.
      scores: (k, n) their scores.
      crops: (k, n, ch, cw, channels) image crops.
      maps: (k, n, ch, cw) upsampled presence maps over the crops.
      boxes: (k, n, 4) crop boxes (y0, x0, y1, x1) in image pixels.
    """

    indices: np.ndarray
    scores: np.ndarray
    crops: np.ndarray
    maps: np.ndarray
    boxes: np.ndarray


def vector_presence(acts, vectors, bias=None, *, sigmoid=False):
    """Presence maps (N, h, w, c) of supervised concept vectors.

    The projection of every position's activation on each vector (a CAV's
    score map), plus an optional bias and sigmoid (a Net2Vec probe's
    probability map).

    Args:
      acts: (N, h, w, C) activations.
      vectors: (c, C) concept vectors (CAVs, Net2Vec weights).
      bias: optional (c,) biases.
      sigmoid: apply a sigmoid (Net2Vec probabilities).
    """
    a, v = jnp.asarray(acts), jnp.asarray(vectors)
    check_finite(a, "acts")
    check_finite(v, "vectors")
    if a.ndim != 4 or v.ndim != 2 or v.shape[1] != a.shape[-1]:
        raise ValueError(
            f"acts (N, h, w, C) and vectors (c, C) disagree: {a.shape}, {v.shape}"
        )
    out = a @ v.T
    if bias is not None:
        out = out + jnp.reshape(jnp.asarray(bias), (1, 1, 1, -1))
    return jax.nn.sigmoid(out) if sigmoid else out


def image_scores(presence, reduce="max"):
    """(N, k) image-level scores of presence (N, ..., k): max or mean over
    positions ((N, k) codes are returned as they are)."""
    p = jnp.asarray(presence)
    flat = p.reshape(p.shape[0], -1, p.shape[-1])
    if reduce == "max":
        return np.asarray(jnp.max(flat, axis=1))
    if reduce == "mean":
        return np.asarray(jnp.mean(flat, axis=1))
    raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")


def top_examples(scores, n):
    """Indices and values (k, n) of the n largest scores per concept.

    Ties are broken by the lower image index (stable sort).
    """
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be (N, k), got {s.shape}")
    n = min(int(n), s.shape[0])
    order = np.argsort(-s, axis=0, kind="stable")[:n].T  # (k, n)
    return order, np.take_along_axis(s.T, order, axis=1)


def _box(peak, size, full):
    lo = int(np.clip(peak - size // 2, 0, full - size))
    return lo, lo + size


def reference_samples(images, presence, n=8, *, crop=None, reduce="max"):
    """Top-n images (crops) per concept with upsampled presence maps.

    Args:
      images: (N, H, W, channels) images (any dtype matplotlib can show).
      presence: (N, h, w, k) presence maps of k concepts.
      n: samples per concept.
      crop: None (whole images), a fraction in (0, 1] of the image side, or
        an (ch, cw) size in pixels.
      reduce: image score, "max" or "mean" of the presence map.

    Returns:
      `References`.
    """
    imgs = np.asarray(images)
    p = jnp.asarray(presence)
    if imgs.ndim != 4 or p.ndim != 4 or imgs.shape[0] != p.shape[0]:
        raise ValueError(
            f"images (N, H, W, ch) and presence (N, h, w, k) disagree: "
            f"{imgs.shape}, {p.shape}"
        )
    check_finite(p, "presence")
    big, wide = imgs.shape[1:3]
    if crop is None:
        ch, cw = big, wide
    elif np.ndim(crop) == 0:
        if not 0.0 < crop <= 1.0:
            raise ValueError(f"crop fraction must be in (0, 1], got {crop}")
        ch, cw = max(1, round(crop * big)), max(1, round(crop * wide))
    else:
        ch, cw = (min(int(c), s) for c, s in zip(crop, (big, wide)))
    idx, scores = top_examples(image_scores(p, reduce), n)
    k, n = idx.shape
    up = np.asarray(upsample_presence(p[np.unique(idx)], (big, wide)))
    row_of = {int(i): r for r, i in enumerate(np.unique(idx))}
    crops = np.zeros((k, n, ch, cw) + imgs.shape[3:], imgs.dtype)
    maps = np.zeros((k, n, ch, cw), np.float32)
    boxes = np.zeros((k, n, 4), np.int64)
    for j in range(k):
        for i, img in enumerate(idx[j]):
            m = up[row_of[int(img)], ..., j]
            py, px = np.unravel_index(int(np.argmax(m)), m.shape)
            y0, y1 = _box(py, ch, big)
            x0, x1 = _box(px, cw, wide)
            crops[j, i] = imgs[img, y0:y1, x0:x1]
            maps[j, i] = m[y0:y1, x0:x1]
            boxes[j, i] = (y0, x0, y1, x1)
    return References(idx, scores, crops, maps, boxes)
