"""SSIM between two attribution maps, as scikit-image computes it.

Structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004, "Image
Quality Assessment: From Error Visibility to Structural Similarity") with
scikit-image's defaults, which the uncertainty-gating paper uses for image
stability (arXiv 2603.29915, Eq. 6): each map is first min-max normalised
to [0, 1], then compared with a 7 x 7 uniform window, K1 = 0.01, K2 = 0.03,
data_range = 1 and the sample covariance (N / (N - 1) with N = 49).
scikit-image averages the SSIM map after cropping (win - 1) / 2 pixels from
every border, which equals averaging "valid" window positions only, as done
here. A constant map normalises to all zeros (scikit-image's own range would
be 0); pass `normalize=False` to compare raw maps.

Shapes: (H, W) or (N, H, W); with `channel_axis=-1`, (..., H, W, C) maps get
the mean over channels (scikit-image's `channel_axis`). Returns () or (N,).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["minmax_normalize", "ssim"]


def minmax_normalize(m: Any, axes: tuple[int, ...]) -> jax.Array:
    """(m - min) / (max - min) over `axes`; constant maps become zeros."""
    m = jnp.asarray(m, jnp.float32)
    lo = jnp.min(m, axis=axes, keepdims=True)
    span = jnp.max(m, axis=axes, keepdims=True) - lo
    return jnp.where(span > 0, (m - lo) / jnp.where(span > 0, span, 1.0), 0.0)


def _box(v: jax.Array, win: int) -> jax.Array:
    """Mean over every valid win x win window of (B, H, W)."""
    total = jax.lax.reduce_window(
        v, 0.0, jax.lax.add, (1, win, win), (1, 1, 1), "VALID"
    )
    return total / (win * win)


def ssim(
    a: Any,
    b: Any,
    *,
    normalize: bool = True,
    win_size: int = 7,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
    channel_axis: int | None = None,
) -> jax.Array:
    """Mean SSIM of two maps (skimage.metrics.structural_similarity defaults).

    Args:
      a, b: maps of the same shape, (H, W) or (N, H, W), or with a channel
        axis when `channel_axis` is given.
      normalize: min-max normalise each map (over H, W and channels) first.
      win_size: odd window side (7).
      data_range: dynamic range of the (normalised) maps (1).
      k1, k2: the SSIM constants.
      channel_axis: None, or -1 for channels-last maps.

    Returns:
      () or (N,) mean SSIM.

    Raises:
      ValueError: shapes differ, the window is even or larger than the map.
    """
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape, got {a.shape} and {b.shape}"
        )
    if channel_axis not in (None, -1):
        raise ValueError(f"channel_axis must be None or -1, got {channel_axis}")
    spatial = 2 if channel_axis is None else 3
    if a.ndim not in (spatial, spatial + 1):
        raise ValueError(f"maps must be {spatial}-D or batched, got shape {a.shape}")
    single = a.ndim == spatial
    if single:
        a, b = a[None], b[None]
    if channel_axis is None:
        a, b = a[..., None], b[..., None]
    n, h, w, c = a.shape
    if win_size % 2 == 0 or win_size > min(h, w):
        raise ValueError(
            f"win_size must be odd and <= min(H, W) = {min(h, w)}, got {win_size}"
        )
    if normalize:
        a, b = minmax_normalize(a, (1, 2, 3)), minmax_normalize(b, (1, 2, 3))
    # Channels to the batch axis: (N C, H, W).
    a = jnp.moveaxis(a, -1, 1).reshape(n * c, h, w)
    b = jnp.moveaxis(b, -1, 1).reshape(n * c, h, w)
    cov_norm = win_size * win_size / (win_size * win_size - 1.0)
    ux, uy = _box(a, win_size), _box(b, win_size)
    vx = cov_norm * (_box(a * a, win_size) - ux * ux)
    vy = cov_norm * (_box(b * b, win_size) - uy * uy)
    vxy = cov_norm * (_box(a * b, win_size) - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / (
        (ux * ux + uy * uy + c1) * (vx + vy + c2)
    )
    r = jnp.mean(s.reshape(n, c, -1), axis=(1, 2))
    return r[0] if single else r
