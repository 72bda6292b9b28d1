"""Occlusion (Zeiler & Fergus 2014, "Visualizing and Understanding
Convolutional Networks", ECCV): the drop of the explained score when a
sliding window of the input is replaced by a baseline.

For a window w and stride s over the first k axes of a sample (for NHWC
images, window (h, w) slides over H and W and covers every channel), the
window positions start at 0 and step by s until the axis is covered (the
last window may be cut at the border), as in Captum's `Occlusion`. Each
element's attribution is the mean, over the windows that cover it, of

    score(x) - score(x with the window set to the baseline),

where score is the target's output of f (logit by default), or any custom
`target_fn`. Elements that no window covers (stride > window) get 0.

Batched: samples are vmapped (and optionally split over a mesh's `data`
axis), window positions are scanned in chunks of `chunk_size` occluded
copies per sample, so memory is N x chunk_size inputs whatever the number
of positions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxcxai.attribution.core import check_finite, prepare
from jaxcxai.attribution.perturb import batch_score, map_sample_chunks

__all__ = ["occlusion", "window_starts"]


def window_starts(
    shape: tuple[int, ...], window: tuple[int, ...], stride: tuple[int, ...]
):
    """(P, k) int32 start offsets of every window position (see module doc)."""
    counts = [1 + max(0, -(-(n - w) // s)) for n, w, s in zip(shape, window, stride)]
    grids = [np.arange(c) * s for c, s in zip(counts, stride)]
    return np.array(list(itertools.product(*grids)), np.int32).reshape(-1, len(window))


def _window_mask(start: jax.Array, shape: tuple[int, ...], window: tuple[int, ...]):
    """Bool mask of the occluded axes' shape, True inside the window."""
    mask = jnp.ones(shape, bool)
    for a, (n, w) in enumerate(zip(shape, window)):
        idx = jnp.arange(n)
        inside = (idx >= start[a]) & (idx < start[a] + w)
        mask = mask & inside.reshape((1,) * a + (n,) + (1,) * (len(shape) - a - 1))
    return mask


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6))
def _run(f, target_fn, softmax, window, chunk, batch, mesh, x, t, baseline, starts):
    k = len(window)
    occ_shape = x.shape[1 : 1 + k]
    trail = x.ndim - 1 - k
    num = starts.shape[0]
    steps = -(-num // chunk)
    pad = steps * chunk - num
    valid = jnp.arange(steps * chunk) < num
    starts = jnp.concatenate([starts, jnp.zeros((pad, k), starts.dtype)])
    plan = (starts.reshape(steps, chunk, k), valid.reshape(steps, chunk))
    masks_of = jax.vmap(lambda s: _window_mask(s, occ_shape, window))
    count = jnp.sum(masks_of(starts) * valid.reshape((-1,) + (1,) * k), axis=0)

    def one(xs, ts):
        full = batch_score(f, xs[None], ts, target_fn, softmax)[0]

        def step(acc, inp):
            st, ok = inp
            m = masks_of(st)
            mb = m.reshape(m.shape + (1,) * trail)
            copies = jnp.where(mb, baseline[None], xs[None])
            drop = (full - batch_score(f, copies, ts, target_fn, softmax)) * ok
            return acc + jnp.tensordot(drop, m.astype(acc.dtype), axes=1), None

        total, _ = jax.lax.scan(step, jnp.zeros(occ_shape, x.dtype), plan)
        attr = jnp.where(count > 0, total / jnp.maximum(count, 1), 0.0)
        return jnp.broadcast_to(attr.reshape(occ_shape + (1,) * trail), xs.shape)

    return map_sample_chunks(one, (x, t), batch, mesh)


def occlusion(
    f: Callable,
    x: Any,
    target: Any = None,
    *,
    window: tuple[int, ...],
    stride: tuple[int, ...] | int | None = None,
    baseline: Any = 0.0,
    softmax: bool = False,
    target_fn: Callable | None = None,
    chunk_size: int = 64,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
) -> jax.Array:
    """Occlusion attributions of a batch (see the module doc).

    Args:
      f: model function, `f(x) -> logits (N, C)` or `(logits, acts)`.
      x: (N, ...) inputs, e.g. (N, H, W, C) images or (N, d) features.
      target: None (predicted class), an int, or (N,) ints.
      window: window size over the first k axes after N (k = len(window));
        the remaining axes are occluded whole.
      stride: step per windowed axis (an int for all; None: the window).
      baseline: replacement value: a scalar or an array of x.shape[1:].
      softmax: score the target's probability instead of its logit.
      target_fn: optional custom score `target_fn(outputs) -> (B,)`.
      chunk_size: occluded copies per sample and scan step.
      batch_size: samples per loop step (None: all at once).
      mesh: optional mesh; samples are split over its `data` axis.

    Returns:
      (N, ...) attributions, the shape of `x`.

    Raises:
      ValueError: naming `x`, `target`, `window`, `stride`, `baseline` or
        `chunk_size`.
    """
    x, t = prepare(f, x, target, target_fn)
    window = tuple(int(w) for w in np.atleast_1d(window))
    k = len(window)
    if not 1 <= k <= x.ndim - 1 or any(w < 1 for w in window):
        raise ValueError(
            f"window must be 1 to {x.ndim - 1} positive sizes, got {window}"
        )
    shape = x.shape[1 : 1 + k]
    if any(w > n for w, n in zip(window, shape)):
        raise ValueError(f"window {window} is larger than the input's axes {shape}")
    stride = (
        window
        if stride is None
        else tuple(int(s) for s in np.broadcast_to(stride, (k,)))
    )
    if any(s < 1 for s in stride):
        raise ValueError(f"stride must be positive, got {stride}")
    base = jnp.asarray(baseline, x.dtype)
    if base.ndim and base.shape != x.shape[1:]:
        raise ValueError(
            f"baseline must be a scalar or of shape {x.shape[1:]}, got {base.shape}"
        )
    check_finite("baseline", base)
    base = jnp.broadcast_to(base, x.shape[1:])
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    starts = window_starts(shape, window, stride)
    chunk = min(int(chunk_size), len(starts))
    batch = x.shape[0] if batch_size is None else int(batch_size)
    static = (f, target_fn, bool(softmax), window, chunk, batch, mesh)
    return _run(*static, x, t, base, jnp.asarray(starts))
