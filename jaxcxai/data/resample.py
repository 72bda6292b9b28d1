"""Resampling masks and maps between grids (as the LoCE/GCPV codes do), in JAX.

Every mode is separable: along each axis a 1-D resampling matrix A (out, in)
acts, so a 2-D resize is `A_h @ X @ A_w.T`. `interpolation_matrix` returns
A (LoCE upsamples logit maps with it); `resize` applies the same operator
directly (gathers for the nearest and bilinear modes, a matmul otherwise)
and agrees with the matrices.

Modes, for an axis of `n` input and `m` output samples (s = n / m):

* "nearest": PyTorch `F.interpolate(x, size=..., mode="nearest")`:
  src = min(floor(dst * s), n - 1), with s and the product in float32 as
  PyTorch computes them.
* "nearest_exact": half-pixel nearest, src = min(floor((dst + 0.5) * s),
  n - 1) (PyTorch "nearest-exact"; also `skimage.transform.resize` with
  order=0 and no anti-aliasing, GCPV's bool-mask resize).
* "bilinear": PyTorch `mode="bilinear", align_corners=False, antialias=False`
  (LoCE's activation upsampling): half-pixel centers
  src = max((dst + 0.5) * s - 0.5, 0), linear between floor(src) and the
  next sample, clamped at the last one. No anti-aliasing when downsampling.
* "area": PyTorch `mode="area"` (adaptive average pooling): output i is the
  plain mean of inputs floor(i*s) .. ceil((i+1)*s) - 1.
* "skimage": `skimage.transform.resize(x, shape, order=1, mode="reflect")`
  with its default anti-aliasing (LoCE's soft mask targets): a Gaussian
  prefilter with sigma = max(0, (s - 1) / 2) (truncated at 4 sigma, as
  scipy does) followed by half-pixel linear interpolation, both with
  mirror boundaries (d c b | a b c d | c b a). skimage clips the result to
  the input's range; a convex operator like this one never leaves it.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["MODES", "interpolation_matrix", "resize"]

MODES = ("nearest", "nearest_exact", "bilinear", "area", "skimage")


def _check(in_size: int, out_size: int, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown resampling mode {mode!r}; use one of {MODES}")
    if int(in_size) < 1 or int(out_size) < 1:
        raise ValueError(f"sizes must be >= 1, got in={in_size}, out={out_size}")


def _nearest_index(n: int, m: int, exact: bool) -> np.ndarray:
    if exact:
        src = np.floor((np.arange(m) + 0.5) * (n / m))
    else:
        # float32 on purpose: PyTorch computes floorf(dst * (float)n / m).
        scale = np.float32(n) / np.float32(m)
        src = np.floor(np.arange(m, dtype=np.float32) * scale)
    return np.minimum(src.astype(np.int64), n - 1)


def _linear_taps(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch align_corners=False taps: (i0, i1, weight of i1), each (m,)."""
    src = np.maximum((np.arange(m) + 0.5) * (n / m) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    return i0, i1, np.clip(src - i0, 0.0, 1.0)


def _mirror(idx: np.ndarray, n: int) -> np.ndarray:
    """scipy.ndimage "mirror" boundary: reflect about the edge samples."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= n, period - idx, idx)


def _gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) scipy `gaussian_filter1d(mode="mirror")` as a matrix."""
    if sigma <= 1e-15:  # scipy skips axes with (near) zero sigma
        return np.eye(n)
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * offsets**2 / sigma**2)
    kernel /= kernel.sum()
    mat = np.zeros((n, n))
    rows = np.repeat(np.arange(n), len(offsets))
    cols = _mirror((np.arange(n)[:, None] + offsets[None, :]).reshape(-1), n)
    np.add.at(mat, (rows, cols), np.tile(kernel, n))
    return mat


def _skimage_matrix(n: int, m: int) -> np.ndarray:
    s = n / m
    src = (np.arange(m) + 0.5) * s - 0.5
    lo = np.floor(src).astype(np.int64)
    frac = src - lo
    interp = np.zeros((m, n))
    np.add.at(interp, (np.arange(m), _mirror(lo, n)), 1.0 - frac)
    np.add.at(interp, (np.arange(m), _mirror(lo + 1, n)), frac)
    return interp @ _gaussian_matrix(n, max(0.0, (s - 1.0) / 2.0))


def interpolation_matrix(
    in_size: int, out_size: int, mode: str = "bilinear", dtype=np.float32
) -> np.ndarray:
    """The (out_size, in_size) 1-D resampling matrix of `mode`.

    Resizing a (H, W) map to (h, w) is `A_h @ X @ A_w.T` with
    `A_h = interpolation_matrix(H, h, mode)`, `A_w = interpolation_matrix(W, w,
    mode)`; it equals `resize(X, (h, w), mode)`. Built in float64 and cast to
    `dtype`. Rows sum to 1 in every mode.
    """
    _check(in_size, out_size, mode)
    n, m = int(in_size), int(out_size)
    mat = np.zeros((m, n))
    rows = np.arange(m)
    if mode in ("nearest", "nearest_exact"):
        mat[rows, _nearest_index(n, m, mode == "nearest_exact")] = 1.0
    elif mode == "bilinear":
        i0, i1, w1 = _linear_taps(n, m)
        np.add.at(mat, (rows, i0), 1.0 - w1)
        np.add.at(mat, (rows, i1), w1)
    elif mode == "area":
        for i in range(m):
            start, end = (i * n) // m, -((-(i + 1) * n) // m)  # floor, ceil
            mat[i, start:end] = 1.0 / (end - start)
    else:
        mat = _skimage_matrix(n, m)
    return mat.astype(dtype)


def _resize_axis(x: jax.Array, axis: int, out: int, mode: str) -> jax.Array:
    n = x.shape[axis]
    if mode in ("nearest", "nearest_exact"):
        idx = _nearest_index(n, out, mode == "nearest_exact")
        return jnp.take(x, jnp.asarray(idx), axis=axis)
    if mode == "bilinear":
        i0, i1, w1 = _linear_taps(n, out)
        shape = [1] * x.ndim
        shape[axis] = out
        w1 = jnp.asarray(w1.reshape(shape), x.dtype)
        a = jnp.take(x, jnp.asarray(i0), axis=axis)
        b = jnp.take(x, jnp.asarray(i1), axis=axis)
        return a + w1 * (b - a)
    mat = jnp.asarray(interpolation_matrix(n, out, mode, np.float64), x.dtype)
    y = jnp.tensordot(mat, x, axes=[[1], [axis]], precision=jax.lax.Precision.HIGHEST)
    return jnp.moveaxis(y, 0, axis)


@functools.partial(jax.jit, static_argnames=("size", "mode", "axes"))
def _resize(x: jax.Array, size: tuple, mode: str, axes: tuple) -> jax.Array:
    if mode not in ("nearest", "nearest_exact"):
        x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    for a, out in zip(axes, size):
        if x.shape[a] != out:  # every mode is the identity at equal size
            x = _resize_axis(x, a, out, mode)
    return x


def resize(
    x: jax.typing.ArrayLike,
    size,
    mode: str = "bilinear",
    axes=(-2, -1),
) -> jax.Array:
    """Resizes the two spatial axes of `x` to `size` (see module docstring).

    Jitted per (shape, size, mode, axes); callable inside `jax.jit`/`vmap`.

    Args:
      x: (..., H, W) array (or any layout, with `axes` naming the spatial
        axes, e.g. (1, 2) for NHWC). NumPy inputs are accepted.
      size: (h, w) output size.
      mode: one of `MODES`.
      axes: the (row, column) axes.

    Returns:
      The resized array. Nearest modes keep the dtype (bool masks stay bool);
      the others compute in at least float32.

    Raises:
      ValueError: unknown mode, sizes < 1, or bad `size`/`axes`.
    """
    x = jnp.asarray(x)
    size, axes = tuple(int(s) for s in size), tuple(int(a) for a in axes)
    if len(size) != 2 or len(axes) != 2:
        raise ValueError(f"size and axes must have 2 entries, got {size}, {axes}")
    nd = x.ndim
    if not all(-nd <= a < nd for a in axes) or axes[0] % nd == axes[1] % nd:
        raise ValueError(f"bad spatial axes {axes} for an array of shape {x.shape}")
    axes = tuple(a % nd for a in axes)
    for a, out in zip(axes, size):
        _check(x.shape[a], out, mode)
    return _resize(x, size, mode, axes)
