"""Relative layer depth and where each layer's best match lies.

Mikriukov et al. (arXiv:2305.07663) report that similar concepts emerge at
similar *relative* depth, independent of the total depth of the networks.
With d = index / (#layers - 1) in [0, 1], a layer similarity matrix
Sim (La, Lb) (`similarity.layer_similarity`, `cka.cka_matrix`) is read row
by row: layer i of A is matched to its most similar layer of B,
j*(i) = argmax_j Sim(i, j), and the match lies |d_i^A - d_j*^B| away from
the relative-depth diagonal (spec concepts.md §6.2; a reconstruction, not
verified against the paper). The same works for A = B (self-similarity,
semantic flow), optionally excluding the trivial diagonal.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxcxai.checks import check_finite

__all__ = ["DepthMatch", "relative_depth", "best_match"]


class DepthMatch(NamedTuple):
    """Each row layer's best-matching column layer and its depth offset.

    Attributes:
      best: (La,) int32 column index j*(i) = argmax_j Sim(i, j) (the first
        one on ties).
      depth_a: (La,) relative depths of the rows, i / (La - 1).
      depth_b: (Lb,) relative depths of the columns, j / (Lb - 1).
      distance: (La,) |depth_a[i] - depth_b[best[i]]|.
      mean_distance: () mean of `distance` over all rows.
      tied: (La,) bool, True where the row's maximum is attained more than
        once (e.g. a row of zeros: no concept found), so `best` is arbitrary.
    """

    best: jax.Array
    depth_a: jax.Array
    depth_b: jax.Array
    distance: jax.Array
    mean_distance: jax.Array
    tied: jax.Array


def relative_depth(num_layers: int) -> jax.Array:
    """Relative depths d_i = i / (num_layers - 1) of the compared layers.

    Args:
      num_layers: number of layers compared (in depth order); a single
        layer has depth 0.

    Returns:
      (num_layers,) float32 in [0, 1], from 0 (first) to 1 (last).
    """
    num_layers = int(num_layers)
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    return jnp.arange(num_layers, dtype=jnp.float32) / max(num_layers - 1, 1)


def best_match(
    similarity: jax.typing.ArrayLike, *, exclude_diagonal: bool = False
) -> DepthMatch:
    """Each row's argmax column and its distance from the relative-depth diagonal.

    Args:
      similarity: (La, Lb) layer similarity, rows and columns in depth order
        (A's layers down the rows, B's across the columns).
      exclude_diagonal: for A = B (La = Lb) only: match every layer to its
        most similar *other* layer (semantic flow) instead of itself.

    Returns:
      `DepthMatch`.

    Raises:
      ValueError: `similarity` is not 2-D, or `exclude_diagonal` with a
        non-square matrix or a single layer.
      NonFiniteError: `similarity` holds NaN or inf.
    """
    sim = jnp.asarray(similarity, jnp.float32)
    if sim.ndim != 2 or 0 in sim.shape:
        raise ValueError(
            f"similarity must be a non-empty (La, Lb) matrix, got {sim.shape}"
        )
    if exclude_diagonal and (sim.shape[0] != sim.shape[1] or sim.shape[0] < 2):
        raise ValueError(
            "exclude_diagonal needs a square similarity of at least 2 layers "
            f"(A = B), got {sim.shape}"
        )
    check_finite({"similarity": sim})
    return _best_match(sim, exclude_diagonal)


@functools.partial(jax.jit, static_argnums=1)
def _best_match(sim, exclude_diagonal):
    la, lb = sim.shape
    if exclude_diagonal:
        sim = jnp.where(jnp.eye(la, dtype=bool), -jnp.inf, sim)
    best = jnp.argmax(sim, axis=1).astype(jnp.int32)
    top = jnp.max(sim, axis=1, keepdims=True)
    tied = jnp.sum(sim == top, axis=1) > 1
    depth_a, depth_b = relative_depth(la), relative_depth(lb)
    distance = jnp.abs(depth_a - depth_b[best])
    return DepthMatch(best, depth_a, depth_b, distance, jnp.mean(distance), tied)
