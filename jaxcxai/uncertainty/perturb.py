"""Natural perturbations of tabular and image inputs, vmapped over levels.

Uncertainty gating (Mikriukov, Montavon & Hoehne, arXiv:2603.29915, section
4.4; reference code comrados/uq-xai `data/perturbations.py`) perturbs the
z-scored test set at seven levels per kind:

- Gaussian: x~_ij = x_ij + sigma * std_j * eps_ij, eps ~ N(0, 1), std_j the
  population (ddof = 0) standard deviation of column j of the set being
  perturbed;
- missing: each entry is masked with probability p and replaced by the
  per-feature median of the (clean) set being perturbed;
- permutation: max(1, floor(f d)) distinct columns chosen at random are each
  shuffled independently across the samples;
- image noise: clip(x + sigma N(0, I), -1, 1) for images in [-1, 1].

Level 0 is the clean input for every kind (the reference's sweeps start at
0; for permutation, level 0 permutes no column rather than max(1, 0) = 1).

Each realisation draws from its own PRNG key. `perturb_sweep` returns the
(L, R, n, d) stack for L levels x R realisations, realisation (l, r) drawn
with `keys[l, r]` of `jax.random.split(key, (L, R))` (or `keys[r]` at every
level with `paired=True`: common random numbers across levels). The
reference draws everything from one advancing NumPy generator, so its
values cannot be reproduced draw for draw; only the distributions match.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.checks import check_finite

__all__ = [
    "GAUSSIAN_LEVELS",
    "IMAGE_NOISE_LEVELS",
    "MISSING_LEVELS",
    "PERMUTATION_LEVELS",
    "gaussian_noise",
    "image_noise",
    "missing_values",
    "n_permuted",
    "permute_features",
    "perturb_sweep",
]

# The paper's levels (arXiv:2603.29915, section 4.4).
GAUSSIAN_LEVELS = (0.01, 0.05, 0.1, 0.3, 0.5, 1.0, 2.0)
MISSING_LEVELS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
PERMUTATION_LEVELS = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25)
IMAGE_NOISE_LEVELS = (0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2)


def _table(x: Any, name: str = "x") -> jax.Array:
    check_finite({name: x})
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 2:
        raise ValueError(f"{name} must be (n, d), got shape {x.shape}")
    return x


def _gaussian(x, sigma, key):
    std = jnp.std(x, axis=0)  # ddof = 0, as NumPy's default
    eps = jax.random.normal(key, x.shape, x.dtype)
    return x + sigma * std[None, :] * eps


def _missing(x, p, key):
    med = jnp.median(x, axis=0)
    mask = jax.random.uniform(key, x.shape) < p
    return jnp.where(mask, jnp.broadcast_to(med[None, :], x.shape), x)


def _permute(x, k, key):
    """Shuffles k columns (k traced, 0 <= k <= d) independently."""
    k_cols, k_rows = jax.random.split(key)
    n, d = x.shape
    # The k columns of smallest random score: k distinct columns, uniform.
    col_rank = jnp.argsort(jnp.argsort(jax.random.uniform(k_cols, (d,))))
    chosen = col_rank < k
    # One independent uniform permutation of the rows per column.
    perm = jnp.argsort(jax.random.uniform(k_rows, (n, d)), axis=0)
    shuffled = jnp.take_along_axis(x, perm, axis=0)
    return jnp.where(chosen[None, :], shuffled, x)


def n_permuted(fraction: Any, d: int) -> np.ndarray:
    """Columns permuted at each fraction: max(1, floor(f d)), 0 at f = 0.

    Computed on the host in float64, as the reference's `int(d * f)`.

    Args:
      fraction: () or (L,) fractions in [0, 1].
      d: number of features.

    Returns:
      int32 array of the shape of `fraction`.
    """
    f = np.asarray(fraction, np.float64)
    if np.any((f < 0) | (f > 1)):
        raise ValueError(f"fraction must lie in [0, 1], got {f}")
    k = np.maximum(1, np.floor(d * f)).astype(np.int32)
    return np.where(f == 0, 0, k).astype(np.int32)


def gaussian_noise(x: Any, sigma: float, key: jax.Array) -> jax.Array:
    """Adds feature-scaled Gaussian noise (arXiv:2603.29915, section 4.4).

    Args:
      x: (n, d) inputs; std_j is taken on this set.
      sigma: noise level (multiple of each feature's std).
      key: PRNG key of this realisation.

    Returns:
      (n, d) float32 x + sigma * std(x, axis=0) * N(0, 1).
    """
    return jax.jit(_gaussian)(_table(x), jnp.float32(sigma), key)


def missing_values(x: Any, rate: float, key: jax.Array) -> jax.Array:
    """Masks entries with probability `rate`, imputing the feature median.

    The median is that of the clean set x (arXiv:2603.29915, section 4.4;
    the reference's `np.median(X, axis=0)`).

    Args:
      x: (n, d) inputs.
      rate: masking probability p in [0, 1].
      key: PRNG key of this realisation.

    Returns:
      (n, d) float32 inputs with the masked entries set to the medians.
    """
    return jax.jit(_missing)(_table(x), jnp.float32(rate), key)


def permute_features(x: Any, fraction: float, key: jax.Array) -> jax.Array:
    """Shuffles max(1, floor(f d)) random columns across the samples.

    Each chosen column gets its own permutation of the rows, so marginals
    are kept and feature-label links broken (arXiv:2603.29915, section 4.4).

    Args:
      x: (n, d) inputs.
      fraction: share f of the d columns to shuffle (0 = clean).
      key: PRNG key of this realisation.

    Returns:
      (n, d) float32 inputs with the chosen columns shuffled.
    """
    x = _table(x)
    k = jnp.int32(n_permuted(fraction, x.shape[1]))
    return jax.jit(_permute)(x, k, key)


def image_noise(x: Any, sigma: float, key: jax.Array) -> jax.Array:
    """clip(x + sigma N(0, I), -1, 1) (arXiv:2603.29915, section 5.2).

    Args:
      x: images of any shape, scaled to [-1, 1].
      sigma: noise standard deviation.
      key: PRNG key of this realisation.

    Returns:
      float32 array of x's shape.
    """
    check_finite({"x": x})
    x = jnp.asarray(x, jnp.float32)
    eps = jax.random.normal(key, x.shape, x.dtype)
    return jnp.clip(x + jnp.float32(sigma) * eps, -1.0, 1.0)


_KINDS = {
    "gaussian": _gaussian,
    "missing": _missing,
    "permutation": _permute,
    "image": lambda x, s, k: jnp.clip(x + s * jax.random.normal(k, x.shape), -1, 1),
}


@partial(jax.jit, static_argnames=("kind", "paired", "n_realisations"))
def _sweep(x, levels, key, kind, n_realisations, paired):
    fn = _KINDS[kind]
    n_levels = levels.shape[0]
    if paired:
        keys = jax.random.split(key, n_realisations)
        keys = jnp.broadcast_to(keys[None], (n_levels, *keys.shape))
    else:
        keys = jax.random.split(key, (n_levels, n_realisations))
    over_r = jax.vmap(fn, in_axes=(None, None, 0))
    return jax.vmap(over_r, in_axes=(None, 0, 0))(x, levels, keys)


def perturb_sweep(
    x: Any,
    kind: str,
    levels: Any,
    key: jax.Array,
    n_realisations: int = 1,
    *,
    paired: bool = False,
) -> jax.Array:
    """All levels x realisations of one perturbation kind in one program.

    Args:
      x: (n, d) inputs (for kind "image": (n, ...) images in [-1, 1]).
      kind: "gaussian", "missing", "permutation" or "image".
      levels: (L,) levels (sigma, rate, fraction or image sigma; see the
        `*_LEVELS` constants of arXiv:2603.29915, section 4.4).
      key: PRNG key; realisation (l, r) uses `jax.random.split(key, (L, R))[l, r]`.
      n_realisations: R, independent draws per level.
      paired: use the same key for realisation r at every level.

    Returns:
      (L, R, *x.shape) float32 perturbed copies.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
    if n_realisations < 1:
        raise ValueError(f"n_realisations must be >= 1, got {n_realisations}")
    check_finite({"levels": levels})
    if kind == "image":
        check_finite({"x": x})
        x = jnp.asarray(x, jnp.float32)
    else:
        x = _table(x)
    levels_np = np.atleast_1d(np.asarray(levels, np.float64))
    if levels_np.ndim != 1:
        raise ValueError(f"levels must be 1-D, got shape {levels_np.shape}")
    if kind == "permutation":
        levels_j = jnp.asarray(n_permuted(levels_np, x.shape[1]))
    else:
        levels_j = jnp.asarray(levels_np, jnp.float32)
    return _sweep(x, levels_j, key, kind, n_realisations, paired)
