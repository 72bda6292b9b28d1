"""SmoothGrad and SmoothIG: attributions averaged over noisy copies.

SmoothGrad (Smilkov et al. 2017, "SmoothGrad: removing noise by adding
noise"): phi(x) = (1/n) sum_j a(x + eps_j), eps_j ~ N(0, sigma^2 I), with a
base attribution `a` (gradient, |gradient|, gradient x input). SmoothIG
averages Integrated Gradients the same way (the uncertainty-gating
reference's "SIG"). Like Captum's NoiseTunnel, `reduce` also gives the mean
square ("smoothgrad_sq", SquareGrad) and the variance ("vargrad", Adebayo et
al. 2018) over the copies.

Noise scales and sources are those of `noise.py`; with sigma = 0.1,
noise_scale = "range_squared", n = 50 and keep_clean = True (51 gradients)
it is the group code's setting, `REFERENCE_SMOOTHING` (the SmoothGrad of the
LoCE reference code's gradient propagators, `src/hooks/`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxcxai.attribution.core import (
    check_chunk,
    host_chunked_sum,
    map_samples,
    prepare,
)
from jaxcxai.attribution.gradient import per_sample_attribution
from jaxcxai.attribution.integrated import (
    path_gradient_sum,
    quadrature,
    resolve_baseline,
)
from jaxcxai.attribution.noise import (
    combine,
    copy_sums,
    noise_source,
    noisy_input,
    smooth_noise,
    smoothed,
)

__all__ = [
    "REFERENCE_SMOOTHING",
    "smooth_noise",
    "smoothgrad",
    "smooth_integrated_gradients",
]

# The group code's SmoothGrad (the LoCE reference code's gradient propagators,
# `src/hooks/`), as keyword arguments.
REFERENCE_SMOOTHING = {
    "n": 50,
    "sigma": 0.1,
    "noise_scale": "range_squared",
    "keep_clean": True,
}
_BASES = {"gradient": "raw", "saliency": "abs", "gradient_x_input": "x_input"}


@partial(jax.jit, static_argnums=tuple(range(8)))
def _grad_chunk(f, tfn, mode, sigma, scale, reduce, clip, mesh, x, t, src, js, ws):
    base = per_sample_attribution(f, tfn, mode)
    explicit = src.ndim == x.ndim + 1
    return copy_sums(base, sigma, scale, reduce, clip, explicit, mesh)(
        x, t, src, js, ws
    )


@partial(jax.jit, static_argnums=tuple(range(4)))
def _grad_clean(f, tfn, mode, mesh, x, t):
    return map_samples(per_sample_attribution(f, tfn, mode), x, t, mesh=mesh)


@partial(jax.jit, static_argnums=tuple(range(6)))
def _ig_chunk(f, tfn, sigma, scale, clip, mesh, x, b, t, src, js, nodes, ws):
    """Copy-and-step items (j, a_k, w_k): sum w_k (x_j - b) grad S(b + a_k (x_j - b))."""
    path = path_gradient_sum(f, tfn)
    explicit = src.ndim == x.ndim + 1

    def one(xs, bs, ts, ss):
        def term(j, a, w):
            xn = noisy_input(xs, ss, j, sigma, scale, clip, explicit)
            return (xn - bs) * path(xn, bs, ts, a[None], w[None])

        return jnp.sum(jax.vmap(term)(js, nodes, ws), axis=0)

    return map_samples(one, x, b, t, src, mesh=mesh)


def smoothgrad(
    f: Callable,
    x: Any,
    target: Any = None,
    *,
    key: jax.Array | None = None,
    noise: Any = None,
    n: int = 50,
    sigma: float = 0.15,
    noise_scale: str = "relative",
    keep_clean: bool = False,
    base: str = "gradient",
    reduce: str = "mean",
    clip: tuple[float, float] | None = None,
    chunk_size: int | None = 10,
    target_fn: Callable | None = None,
    mesh: Mesh | None = None,
) -> jax.Array:
    """SmoothGrad of each sample's target scalar (Smilkov et al. 2017).

    Args:
      f: model function, `f(x) -> logits (N, C)` or `(logits, acts)`.
      x: (N, ...) inputs.
      target: None (predicted class), an int, or (N,) ints.
      key: PRNG key for the noise (needed unless `noise` is given).
      noise: optional (N, n, ...) standard normal draws (scaled by the noise
        std here); overrides `key` and `n`.
      n: noisy copies per sample.
      sigma, noise_scale: the noise std, see the module docstring.
      keep_clean: also average the clean input's attribution (n + 1 terms).
      base: "gradient" (raw), "saliency" (|gradient|) or "gradient_x_input"
        (of the noisy input, as Captum's NoiseTunnel).
      reduce: "mean" (SmoothGrad), "mean_square" (SquareGrad) or "var"
        (VarGrad) over the copies.
      clip: optional (low, high) clamp of the noisy inputs (the reference
        clamps to [-1, 1]).
      chunk_size: copies evaluated together (None: all n at once).
      target_fn, mesh: as in `gradients.gradients`.

    Returns:
      (N, ...) attributions, the shape of `x`.

    Raises:
      ValueError: naming the bad argument (`x`, `target`, `key`, `noise`,
        `n`, `sigma`, `noise_scale`, `base`, `reduce`, `chunk_size`).
    """
    if base not in _BASES:
        raise ValueError(f"base must be one of {sorted(_BASES)}, got {base!r}")
    x, t = prepare(f, x, target, target_fn)
    src, n = noise_source(x, key, noise, n, sigma, noise_scale, reduce, chunk_size)
    clip = None if clip is None else (float(clip[0]), float(clip[1]))
    mode, sigma = _BASES[base], float(sigma)
    return smoothed(
        lambda js, ws: _grad_chunk(f, target_fn, mode, sigma, noise_scale, reduce,
                                   clip, mesh, x, t, src, js, ws),
        lambda: _grad_clean(f, target_fn, mode, mesh, x, t),
        n, check_chunk("chunk_size", chunk_size), keep_clean, reduce,
    )  # fmt: skip


def smooth_integrated_gradients(
    f: Callable,
    x: Any,
    target: Any = None,
    *,
    key: jax.Array | None = None,
    noise: Any = None,
    n: int = 50,
    sigma: float = 0.1,
    noise_scale: str = "absolute",
    keep_clean: bool = False,
    clip: tuple[float, float] | None = None,
    baseline: Any = "zero",
    steps: int = 50,
    method: str = "gausslegendre",
    chunk_size: int | None = 64,
    target_fn: Callable | None = None,
    mesh: Mesh | None = None,
) -> jax.Array:
    """SmoothIG: Integrated Gradients averaged over noisy copies.

    The defaults (50 copies, absolute std 0.1) are the uncertainty-gating
    reference's "SIG" on z-scored tabular data (arXiv 2603.29915, section
    4.3 and App. A; the reference code's `explainers/`). The
    baseline stays fixed while the input is perturbed.

    Args:
      f, x, target, key, noise, n, sigma, noise_scale: as in `smoothgrad`
        (the mean over copies only); so are keep_clean, clip, target_fn, mesh.
      baseline, steps, method: as in `integrated.integrated_gradients`.
      chunk_size: (copy, step) pairs evaluated together; memory is
        N x chunk_size gradients.

    Returns:
      (N, ...) attributions, the shape of `x`.
    """
    x, t = prepare(f, x, target, target_fn)
    b = resolve_baseline(baseline, x)
    src, n = noise_source(x, key, noise, n, sigma, noise_scale, "mean", chunk_size)
    clip = None if clip is None else (float(clip[0]), float(clip[1]))
    # Items are (copy j, step k) pairs, chunked together (memory: N x
    # chunk_size gradients); the clean input is copy 0 at zero noise.
    nodes, weights = quadrature(method, steps)
    js = np.repeat(np.arange(n, dtype=np.int32), len(nodes))
    items = (js, np.tile(nodes.astype(np.float32), n))
    run = lambda it, w, s, sc: _ig_chunk(f, target_fn, s, sc, clip, mesh, x, b, t, src,
                                          it[0], it[1], w)  # fmt: skip
    chunk = check_chunk("chunk_size", chunk_size)
    total = host_chunked_sum(lambda it, w: run(it, w, float(sigma), noise_scale),
                             items, chunk, np.tile(weights, n))  # fmt: skip
    clean = None
    if keep_clean:  # one more copy at zero noise
        zero = (np.zeros(len(nodes), np.int32), nodes.astype(np.float32))
        clean = host_chunked_sum(lambda it, w: run(it, w, 0.0, "absolute"), zero,
                                 chunk, weights)  # fmt: skip
    return combine(total, clean, n, "mean")
