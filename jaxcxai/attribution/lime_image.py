"""LIME for images (Ribeiro et al. 2016, Sec. 3.3 and 5): superpixels on/off.

As the `lime` package's `LimeImageExplainer` does by default:

- Superpixels from scikit-image (quickshift with kernel_size=4,
  max_dist=200, ratio=0.2), computed on the host once per image
  (`segment_images`); SLIC and Felzenszwalb are also offered.
- num_samples = 1000 random on/off vectors over the superpixels
  (Bernoulli(1/2)), row 0 all on; an "off" superpixel takes its mean colour
  (`hide_color=None`) or a constant.
- Kernel: cosine distance D between the on/off vector and all-on, weight
  sqrt(exp(-D^2 / 0.25^2)).
- Ridge (alpha = 1, intercept, sample weights) on every superpixel (the
  package's default num_features=100000 keeps them all).

Ours explains the predicted class by default (the package's top_labels=5
explains the five best); the map gives each pixel its superpixel's weight.
Images are vmapped (and optionally split over a mesh's `data` axis); the
perturbed copies are scanned in chunks, so memory is N x chunk_size images.
Reproducible from a key: image i uses split(key, N)[i] (or its own key).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxcxai.attribution.core import check_finite, prepare
from jaxcxai.attribution.perturb import (
    batch_score,
    map_sample_chunks,
    sample_keys,
    uniform,
    weighted_ridge,
)

__all__ = ["segment_images", "lime_image"]

QUICKSHIFT = {"kernel_size": 4, "max_dist": 200, "ratio": 0.2}


def segment_images(
    images: Any, method: str = "quickshift", **kwargs: Any
) -> np.ndarray:
    """Superpixel labels 0..S_i-1 of each image, on the host (scikit-image).

    Args:
      images: (N, H, W, 3) (quickshift needs colour) or (N, H, W[, C]).
      method: "quickshift" (lime's default, `QUICKSHIFT` settings unless
        overridden), "slic" or "felzenszwalb".
      **kwargs: passed to the scikit-image function.

    Returns:
      (N, H, W) int32 labels, consecutive from 0 in each image.
    """
    try:
        from skimage import segmentation
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "segment_images needs scikit-image (pip install scikit-image)"
        ) from e
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(
            f"images must be (N, H, W) or (N, H, W, C), got {images.shape}"
        )
    check_finite("images", images)
    color = images.ndim == 4
    out = []
    for img in images:
        if method == "quickshift":
            seg = segmentation.quickshift(
                img.astype(np.float64), **{**QUICKSHIFT, **kwargs}
            )
        elif method == "slic":
            seg = segmentation.slic(img, channel_axis=-1 if color else None, **kwargs)
        elif method == "felzenszwalb":
            seg = segmentation.felzenszwalb(
                img, channel_axis=-1 if color else None, **kwargs
            )
        else:
            raise ValueError(
                f"method must be quickshift, slic or felzenszwalb, got {method!r}"
            )
        out.append(np.unique(seg, return_inverse=True)[1].reshape(seg.shape))
    return np.asarray(out, np.int32)


def _segment_means(xs, seg, num_seg):
    """(S, C) mean colour of each superpixel of one (H, W, C) image."""
    flat = xs.reshape(-1, xs.shape[-1])
    ids = seg.reshape(-1)
    sums = jax.ops.segment_sum(flat, ids, num_segments=num_seg)
    counts = jax.ops.segment_sum(
        jnp.ones_like(ids, xs.dtype), ids, num_segments=num_seg
    )
    return sums / jnp.maximum(counts, 1.0)[:, None]


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6, 7))
def _run(f, target_fn, softmax, num_seg, num_samples, chunk, batch, mesh, *args):
    x, seg, t, keys, hide, width = args
    steps = -(-num_samples // chunk)

    def one(xs, ss, ts, k, hs):
        valid = jnp.arange(num_seg) < jnp.max(ss) + 1
        fudged = jnp.where(jnp.isnan(hs), _segment_means(xs, ss, num_seg)[ss], hs)
        z = (uniform(k, (steps * chunk, num_seg)) < 0.5) & valid[None]
        z = z.at[0].set(valid)

        def step(_, zc):
            keep = zc[:, ss][..., None]
            copies = jnp.where(keep, xs[None], fudged[None])
            return None, batch_score(f, copies, ts, target_fn, softmax)

        _, y = jax.lax.scan(step, None, z.reshape(steps, chunk, num_seg))
        y, z = y.reshape(-1)[:num_samples], z[:num_samples].astype(xs.dtype)
        on = jnp.sum(z, axis=1)
        cos = on / jnp.sqrt(jnp.maximum(on, 1e-30) * jnp.sum(valid))
        dist = jnp.where(on > 0, 1.0 - cos, 1.0)
        w = jnp.sqrt(jnp.exp(-(dist**2) / width**2))
        coef, _ = weighted_ridge(z, y, w, 1.0, valid)
        return coef[ss]

    return map_sample_chunks(one, (x, seg, t, keys, hide), batch, mesh)


def lime_image(
    f: Callable,
    x: Any,
    segments: Any,
    target: Any = None,
    *,
    key: Any,
    num_samples: int = 1000,
    kernel_width: float = 0.25,
    hide_color: float | None = None,
    softmax: bool = False,
    target_fn: Callable | None = None,
    chunk_size: int = 50,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
) -> jax.Array:
    """LIME maps of a batch of images (see the module doc).

    Args:
      f: model function, `f(x) -> logits (N, C)` or `(logits, acts)`.
      x: (N, H, W, C) images.
      segments: (N, H, W) int superpixel labels (`segment_images`).
      target: None (predicted class), an int, or (N,) ints.
      key: a PRNG key (split over images) or (N,) keys.
      num_samples: on/off vectors per image (row 0 all on).
      kernel_width: width of the exponential kernel on cosine distance.
      hide_color: None (superpixel mean colour) or a constant.
      softmax: explain the target's probability (lime's classifier_fn
        returns probabilities) instead of its logit.
      target_fn: optional custom score `target_fn(outputs) -> (B,)`.
      chunk_size: perturbed copies per image and scan step.
      batch_size: images per loop step (None: all at once).
      mesh: optional mesh; images are split over its `data` axis.

    Returns:
      (N, H, W) maps: each pixel carries its superpixel's ridge weight.

    Raises:
      ValueError: naming `x`, `segments`, `target`, `key`, `num_samples`,
        `kernel_width`, `hide_color` or `chunk_size`.
    """
    x, t = prepare(f, x, target, target_fn)
    if x.ndim != 4:
        raise ValueError(f"x must be (N, H, W, C) images, got {x.shape}")
    seg = np.asarray(segments)
    if seg.shape != x.shape[:3] or not np.issubdtype(seg.dtype, np.integer):
        raise ValueError(
            f"segments must be integers of shape {x.shape[:3]}, got {seg.dtype} {seg.shape}"
        )
    if seg.min() < 0:
        raise ValueError(f"segments has {int((seg < 0).sum())} negative labels")
    if int(num_samples) != num_samples or num_samples < 2:
        raise ValueError(f"num_samples must be an integer >= 2, got {num_samples}")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    if not kernel_width > 0:
        raise ValueError(f"kernel_width must be > 0, got {kernel_width}")
    if hide_color is not None and not np.isfinite(hide_color):
        raise ValueError(f"hide_color must be finite or None, got {hide_color}")
    n = x.shape[0]
    keys = sample_keys(key, n)
    hide = jnp.full((n,), jnp.nan if hide_color is None else hide_color, x.dtype)
    chunk = min(int(chunk_size), int(num_samples))
    batch = n if batch_size is None else int(batch_size)
    static = (
        f,
        target_fn,
        bool(softmax),
        int(seg.max()) + 1,
        int(num_samples),
        chunk,
        batch,
        mesh,
    )
    return _run(*static, x, jnp.asarray(seg), t, keys, hide, float(kernel_width))
