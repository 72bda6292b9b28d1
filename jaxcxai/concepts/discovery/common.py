"""Shared pieces of the factorizations: the result type and input checks.

Every discovery method factorizes a matrix of activations X (N, d), one row
per example (or per spatial position of a spatial layer), as
X ~ codes @ components (+ mean), with components (k, d) the concept vectors
and codes (N, k) the per-row concept weights. Spatial activations
(N, H, W, C) are flattened to (N H W, C) rows by `as_rows`, so the concept
vectors live in channel space (ICE, Zhang et al. 2021; CRAFT, Fel et al.
2023).
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import checks

__all__ = [
    "Factorization",
    "as_rows",
    "check_finite",
    "check_rank",
    "check_positive_int",
    "frobenius_loss",
    "host_rng",
]


class Factorization(NamedTuple):
    """Result of a factorization X ~ codes @ components (+ mean).

    Attributes:
      components: (..., k, d) concept vectors, one per row.
      codes: (..., N, k) weight of each concept in each row of X.
      losses: (..., T + 1) objective after 0, 1, ..., T iterations (NMF,
        k-means), or an empty (..., 0) array for closed-form methods.
      mean: (..., d) row mean removed before factorizing (PCA, ICA; zeros
        for NMF and k-means).
    """

    components: jax.Array
    codes: jax.Array
    losses: jax.Array
    mean: jax.Array


def check_finite(x: Any, name: str) -> None:
    """Raises `checks.NonFiniteError` (a ValueError) naming `name` and the
    count of NaN/inf entries; `jaxcxai.checks.check_finite` for one array."""
    checks.check_finite({name: x})


def check_positive_int(value: Any, name: str) -> int:
    """Returns `value` as an int, or raises ValueError naming `name`."""
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_rank(k: int, n: int, d: int | None) -> int:
    """Checks 1 <= k <= min(N, d) for a rank-k factorization of (N, d) rows.

    `d=None` skips the d bound (k-means may have more clusters than
    dimensions).

    Raises:
      ValueError: naming k and d (or k and N) when k is out of range.
    """
    k = check_positive_int(k, "k")
    if d is not None and k > d:
        raise ValueError(f"k={k} exceeds the activation dimension d={d}")
    if k > n:
        raise ValueError(f"k={k} exceeds the number of rows N={n}")
    return k


def as_rows(acts: Any, name: str = "acts", *, nonnegative: bool = False) -> jax.Array:
    """Flattens activations to a float (rows, d) matrix and validates them.

    Args:
      acts: (N, d) or (N, ..., C) activations; spatial axes are folded into
        rows, giving (N * prod(...), C).
      name: argument name used in error messages.
      nonnegative: also reject negative entries (NMF inputs).

    Returns:
      (rows, d) float array (float32 unless the input is float64 under x64).

    Raises:
      ValueError: naming `name`, for fewer than 2 axes, an empty array,
        a non-numeric dtype, non-finite entries (with their count) or, with
        `nonnegative`, negative entries (with their count).
    """
    # NumPy inputs are checked on the host (no device round trip or compile).
    xp = jnp if isinstance(acts, jax.Array) else np
    x = acts if xp is jnp else np.asarray(acts)
    if not (xp.issubdtype(x.dtype, xp.floating) or xp.issubdtype(x.dtype, xp.integer)):
        raise ValueError(f"{name} must be a real numeric array, got {x.dtype}")
    if x.ndim < 2 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty (N, d) or (N, ..., C) array")
    x = x.reshape(-1, x.shape[-1])
    check_finite(x, name)
    if nonnegative:
        neg = int((x < 0).sum())
        if neg:
            raise ValueError(
                f"{name} has {neg} negative entries; NMF needs non-negative "
                "activations (use fit_semi_nmf for signed ones)"
            )
    if not xp.issubdtype(x.dtype, xp.floating):
        x = x.astype(np.float32)
    return jnp.asarray(x)


def frobenius_loss(x: jax.Array, codes: jax.Array, components: jax.Array) -> jax.Array:
    """0.5 ||X - codes @ components||_F^2, computed directly (float64 in NumPy
    callers is the reference; this is the device version)."""
    r = x - jnp.matmul(codes, components, precision=jax.lax.Precision.HIGHEST)
    return 0.5 * jnp.sum(r * r)


def host_rng(key: jax.Array) -> np.random.Generator:
    """A NumPy generator seeded by a JAX key's data (no device program).

    Used for small random inits drawn on the host: reproducible from the
    key, and free of a per-shape threefry compilation.
    """
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key).ravel().tolist())
