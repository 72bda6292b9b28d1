"""RISE (Petsiuk, Das & Saenko 2018, "RISE: Randomized Input Sampling for
Explanation of Black-box Models", BMVC).

Saliency of image x for the explained score s (the target's output of f,
its probability with `softmax=True` as in the paper, or a custom
`target_fn`):

    S(x) = 1 / (M p) sum_i s(x * M_i + baseline * (1 - M_i)) M_i,

over M random masks M_i. Each mask is a (g x g) grid of Bernoulli(p)
cells, upsampled bilinearly to ((g + 1) c_h, (g + 1) c_w) with c = ceil(H /
g) (cell size), then cropped to H x W at a random offset in [0, c) per
axis, so the cells' edges fall anywhere (the paper's Sec. 3.2).

Masks are shared by every image, as in the authors' code, and are drawn
chunk by chunk: chunk j uses fold_in(key, j), so the result does not depend
on the number of images or on sharding, and memory is N x chunk_size
masked images. The bilinear upsampling is `jax.image.resize` ("linear",
half-pixel centres); the authors use scikit-image's `resize(order=1,
mode="reflect")`, which differs at the border of the upsampled grid (a
reconstruction detail that leaves the cropped interior unchanged up to the
edge pixel row).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jaxcxai.attribution.core import check_finite, check_key, map_samples, prepare
from jaxcxai.attribution.perturb import batch_score, uniform

__all__ = ["rise", "rise_masks"]


def rise_masks(
    key: jax.Array, num: int, size: tuple[int, int], grid_size: int = 7, p: float = 0.5
) -> jax.Array:
    """`num` RISE masks of spatial `size` (H, W): float in [0, 1], (num, H, W)."""
    h, w = size
    ch, cw = -(-h // grid_size), -(-w // grid_size)
    # One uniform draw per mask for the cells and both shifts (one PRNG
    # kernel: threefry is costly to compile on CPU).
    u = uniform(key, (num, grid_size * grid_size + 2))
    grid = (u[:, :-2] < p).astype(jnp.float32).reshape(num, grid_size, grid_size)
    up = (grid_size + 1) * ch, (grid_size + 1) * cw
    big = jax.image.resize(grid, (num,) + up, method="linear")
    shift = jnp.floor(u[:, -2:] * jnp.array([ch, cw], jnp.float32)[None]).astype(
        jnp.int32
    )
    shift = jnp.minimum(shift, jnp.array([ch - 1, cw - 1])[None])
    crop = lambda m, s: jax.lax.dynamic_slice(m, (s[0], s[1]), (h, w))
    return jax.vmap(crop)(big, shift)


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6, 7))
def _run(f, target_fn, softmax, num, chunk, grid_size, p, mesh, x, t, baseline, key):
    n, h, w = x.shape[:3]
    steps = -(-num // chunk)
    trail = x.ndim - 3

    def step(acc, j):
        masks = rise_masks(jax.random.fold_in(key, j), chunk, (h, w), grid_size, p)
        valid = (j * chunk + jnp.arange(chunk)) < num
        mb = masks.reshape(masks.shape + (1,) * trail)

        def one(xs, ts, bs):
            copies = xs[None] * mb + bs[None] * (1.0 - mb)
            s = batch_score(f, copies, ts, target_fn, softmax) * valid
            return jnp.tensordot(s, masks.astype(s.dtype), axes=1)

        return acc + map_samples(one, x, t, baseline, mesh=mesh), None

    total, _ = jax.lax.scan(step, jnp.zeros((n, h, w), x.dtype), jnp.arange(steps))
    return total / (num * p)


def rise(
    f: Callable,
    x: Any,
    target: Any = None,
    *,
    key: jax.Array,
    num_masks: int = 4000,
    grid_size: int = 7,
    p: float = 0.5,
    baseline: Any = 0.0,
    softmax: bool = False,
    target_fn: Callable | None = None,
    chunk_size: int = 100,
    mesh: Mesh | None = None,
) -> jax.Array:
    """RISE saliency maps of a batch of images (see the module doc).

    Args:
      f: model function, `f(x) -> logits (N, C)` or `(logits, acts)`.
      x: (N, H, W) or (N, H, W, C) images.
      target: None (predicted class), an int, or (N,) ints.
      key: PRNG key of the masks (shared by all images).
      num_masks: masks M (the paper uses 4000 for ResNet50 on ImageNet).
      grid_size: g, cells per side of the low-resolution grid.
      p: probability that a cell is kept.
      baseline: value of the removed pixels (scalar or (N, H, W[, C])).
      softmax: score the target's probability (the paper) instead of its
        logit.
      target_fn: optional custom score `target_fn(outputs) -> (B,)`.
      chunk_size: masks per scan step.
      mesh: optional mesh; images are split over its `data` axis.

    Returns:
      (N, H, W) saliency maps.

    Raises:
      ValueError: naming `x`, `target`, `key`, `num_masks`, `grid_size`, `p`,
        `baseline` or `chunk_size`.
    """
    x, t = prepare(f, x, target, target_fn)
    if x.ndim < 3:
        raise ValueError(f"x must be (N, H, W) or (N, H, W, C) images, got {x.shape}")
    check_key("key", key)
    for name, v in (
        ("num_masks", num_masks),
        ("grid_size", grid_size),
        ("chunk_size", chunk_size),
    ):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v}")
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p}")
    base = jnp.asarray(baseline, x.dtype)
    check_finite("baseline", base)
    if base.ndim and base.shape != x.shape:
        raise ValueError(
            f"baseline must be a scalar or of shape {x.shape}, got {base.shape}"
        )
    base = jnp.broadcast_to(base, x.shape)
    chunk = min(int(chunk_size), int(num_masks))
    static = (
        f,
        target_fn,
        bool(softmax),
        int(num_masks),
        chunk,
        int(grid_size),
        float(p),
        mesh,
    )
    return _run(*static, x, t, base, key)
