"""Noisy copies of an input: noise scales, noise sources, averaging over copies.

The machinery under SmoothGrad, SmoothIG and smoothed layer gradients
(`smooth.py`, `layer.py`). The noise std (`noise_scale`):

- "absolute": sigma;
- "relative": sigma * (max x - min x) per sample (Smilkov et al.'s noise
  level, e.g. 0.15);
- "range_squared": (sigma * (max x - min x))^2 per sample, the group code's
  quirk (the LoCE reference code's SmoothGrad in `src/hooks/`: it multiplies
  standard normal noise by var^2 with var = 0.1 * range, where SmoothGrad
  means var).

Noise comes from a key (copy j of sample i draws from
fold_in(split(key, N)[i], j), so results do not depend on chunking or
sharding) or from an explicit (N, n, ...) array of standard normal draws (to
share noise with another library). Copies are summed in chunks of
`chunk_size`, one jitted chunk program called in a host loop
(`core.host_chunked_sum`): memory is N x chunk_size attributions, not N x n
(captum#497).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.attribution.core import (
    check_chunk,
    check_finite,
    check_key,
    host_chunked_sum,
    map_samples,
)

__all__ = [
    "SCALES",
    "REDUCTIONS",
    "noise_std",
    "smooth_noise",
    "noisy_input",
    "copy_sums",
    "combine",
    "smoothed",
    "noise_source",
]

SCALES = ("absolute", "relative", "range_squared")
REDUCTIONS = ("mean", "mean_square", "var")


def noise_std(xs: jax.Array, sigma: float, noise_scale: str) -> jax.Array:
    """Standard deviation of the noise for one sample `xs` (see module doc)."""
    if noise_scale == "absolute":
        return jnp.asarray(sigma, xs.dtype)
    spread = jnp.max(xs) - jnp.min(xs)
    if noise_scale == "relative":
        return sigma * spread
    return (sigma * spread) ** 2


def smooth_noise(key: jax.Array, n: int, shape: tuple[int, ...]) -> jax.Array:
    """The (N, n, *shape) standard normal draws the key mode uses.

    `shape` is (N, ...): the input's shape. Materialising them is only for
    inspection or sharing; the explainers draw each copy where it is used.
    """
    keys = jax.random.split(key, shape[0])
    draw = lambda k, j: jax.random.normal(jax.random.fold_in(k, j), shape[1:])
    return jax.vmap(lambda k: jax.vmap(lambda j: draw(k, j))(jnp.arange(n)))(keys)


def noisy_input(xs, src, j, sigma, scale, clip, explicit: bool) -> jax.Array:
    """Copy j of one sample: xs + std * eps_j (then clamped to `clip`).

    `src` is the sample's key (eps_j from fold_in(src, j)) or, with
    `explicit`, its (n, ...) standard normal draws (eps_j = src[j]).
    """
    if explicit:
        eps = src[j]
    else:
        eps = jax.random.normal(jax.random.fold_in(src, j), xs.shape, xs.dtype)
    noisy = xs + noise_std(xs, sigma, scale) * eps
    return noisy if clip is None else jnp.clip(noisy, clip[0], clip[1])


def copy_sums(base, sigma, scale, reduce, clip, explicit, mesh=None):
    """`sums(x, t, src, js, ws)`: sum_j w_j a_ij (and sum_j w_j a_ij^2 unless
    `reduce` is "mean") over one chunk of copies js of every sample i, with
    a_ij = base(copy j of sample i, t_i).

    The N x c copies form one flat batch (sample-major, so a mesh splits it
    by samples) under a single vmap.
    """

    def sums(x, t, src, js, ws):
        n, c = x.shape[0], js.shape[0]
        copy = lambda xs, ss, j: noisy_input(xs, ss, j, sigma, scale, clip, explicit)
        noisy = jax.vmap(lambda xs, ss: jax.vmap(lambda j: copy(xs, ss, j))(js))(x, src)
        flat = noisy.reshape((n * c,) + x.shape[1:])
        a = map_samples(base, flat, jnp.repeat(t, c), mesh=mesh)
        a = a.reshape((n, c) + a.shape[1:])
        total = lambda v: jnp.tensordot(v, ws.astype(v.dtype), axes=[[1], [0]])
        return (total(a), total(a * a)) if reduce != "mean" else total(a)

    return sums


def combine(total, clean, count: int, reduce: str):
    """The mean, mean square or variance from the sums (plus the clean term)."""
    if clean is not None:
        clean = (clean, clean * clean) if reduce != "mean" else clean
        total = jax.tree.map(jnp.add, total, clean)
        count += 1
    if reduce == "mean":
        return total / count
    mean, mean_sq = total[0] / count, total[1] / count
    return mean_sq if reduce == "mean_square" else mean_sq - mean * mean


def smoothed(chunk_call, clean_call, n, chunk_size, keep_clean, reduce):
    """Runs the copies in host-looped chunks and combines them.

    Args:
      chunk_call: `chunk_call(js (c,), ws (c,))` -> the batch's copy sums.
      clean_call: `clean_call()` -> the batch's clean attribution.
      n: copies per sample.
    """
    total = host_chunked_sum(chunk_call, np.arange(n, dtype=np.int32), chunk_size)
    return combine(total, clean_call() if keep_clean else None, n, reduce)


def noise_source(x, key, noise, n, sigma, noise_scale, reduce, chunk_size):
    """Validates the smoothing arguments; returns (per-sample keys or noise, n).

    Raises:
      ValueError: naming `noise_scale`, `reduce`, `sigma`, `chunk_size`,
        `noise` (shape, non-finite), `key` or `n`.
    """
    if noise_scale not in SCALES:
        raise ValueError(f"noise_scale must be one of {SCALES}, got {noise_scale!r}")
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    if not (sigma >= 0 and np.isfinite(sigma)):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
    check_chunk("chunk_size", chunk_size)
    if noise is not None:
        noise = jnp.asarray(noise, x.dtype)
        if (
            noise.ndim != x.ndim + 1
            or noise.shape[0] != x.shape[0]
            or (noise.shape[2:] != x.shape[1:])
        ):
            raise ValueError(
                f"noise must have shape (N, n, ...) = ({x.shape[0]}, n, "
                f"{', '.join(map(str, x.shape[1:]))}), got {noise.shape}"
            )
        if noise.shape[1] < 1:
            raise ValueError("noise must hold at least one copy per sample")
        check_finite("noise", noise)
        return noise, noise.shape[1]
    if key is None:
        raise ValueError("key is required when no noise array is given")
    check_key("key", key)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    if not (
        isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    ):
        key = jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))
    return jax.random.split(key, x.shape[0]), int(n)
