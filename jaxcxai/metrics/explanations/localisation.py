"""Localisation of attribution maps against ground-truth object masks.

SynthAerial plants its objects, so its masks are ground truth for where an
explanation should point.

- Relevance mass (Arras, Osman & Samek 2022, "CLEVR-XAI"): the share of
  positive relevance inside the mask, sum_{mask} R+ / sum R+. With
  `mode="abs"` it uses |R|, and on a non-negative saliency map it is the
  energy-based pointing game of Score-CAM (Wang et al. 2020).
- Relevance rank accuracy (Arras et al. 2022): the share of the K highest
  relevances (K = mask size) that lie inside the mask.
- Pointing game (Zhang et al. 2016, "Top-down Neural Attention by
  Excitation Backprop"): a hit when the maximum of the map lies within
  `tolerance` pixels (Euclidean) of the mask; ties: the first maximum in
  row-major order.

Shapes: phi (N, H, W) (reduce channels first, e.g. with
`attribution.reduce_channels`), mask (N, H, W) bool. Returns (N,). A map with
no positive mass gives NaN for relevance mass; an empty mask gives NaN for
the rank accuracy.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["relevance_mass", "relevance_rank_accuracy", "pointing_game"]


def _check(phi: Any, mask: Any) -> tuple[jax.Array, jax.Array]:
    phi = jnp.asarray(phi, jnp.float32)
    mask = jnp.asarray(mask)
    if phi.ndim != 3 or mask.shape != phi.shape:
        raise ValueError(
            f"phi and mask must both be (N, H, W), got {phi.shape} and {mask.shape}"
        )
    return phi, mask.astype(bool)


def relevance_mass(phi: Any, mask: Any, *, mode: str = "positive") -> jax.Array:
    """Share of relevance inside the mask: "positive" (R+) or "abs" (|R|). (N,)."""
    phi, mask = _check(phi, mask)
    if mode not in ("positive", "abs"):
        raise ValueError(f"mode must be 'positive' or 'abs', got {mode!r}")
    r = jnp.maximum(phi, 0.0) if mode == "positive" else jnp.abs(phi)
    inside = jnp.sum(jnp.where(mask, r, 0.0), axis=(1, 2))
    total = jnp.sum(r, axis=(1, 2))
    return jnp.where(total > 0, inside / jnp.where(total > 0, total, 1.0), jnp.nan)


def relevance_rank_accuracy(phi: Any, mask: Any) -> jax.Array:
    """Share of the top-K relevances (K = mask size; ties: lower index first)
    inside the mask. (N,)."""
    phi, mask = _check(phi, mask)
    n = phi.shape[0]
    flat, m = phi.reshape(n, -1), mask.reshape(n, -1)
    k = jnp.sum(m, axis=1)
    order = jnp.argsort(-flat, axis=1, stable=True)
    top = jnp.arange(flat.shape[1])[None] < k[:, None]
    hits = jnp.sum(jnp.take_along_axis(m, order, axis=1) & top, axis=1)
    return jnp.where(k > 0, hits / jnp.maximum(k, 1), jnp.nan)


def pointing_game(phi: Any, mask: Any, *, tolerance: float = 0.0) -> jax.Array:
    """1.0 where the map's maximum falls within `tolerance` px of the mask. (N,)."""
    phi, mask = _check(phi, mask)
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    n, h, w = phi.shape
    flat = jnp.argmax(phi.reshape(n, -1), axis=1)
    i, j = flat // w, flat % w
    if tolerance == 0:
        return mask[jnp.arange(n), i, j].astype(jnp.float32)
    # Dilate the mask by a disk of radius `tolerance` around the maximum.
    r = int(np.floor(tolerance))
    off = np.array([(a, b) for a in range(-r, r + 1) for b in range(-r, r + 1)
                    if a * a + b * b <= tolerance * tolerance])  # fmt: skip
    ii, jj = i[:, None] + off[None, :, 0], j[:, None] + off[None, :, 1]
    inside = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
    vals = mask[jnp.arange(n)[:, None], jnp.clip(ii, 0, h - 1), jnp.clip(jj, 0, w - 1)]
    return jnp.any(vals & inside, axis=1).astype(jnp.float32)
