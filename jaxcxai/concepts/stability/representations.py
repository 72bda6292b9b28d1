"""The 1D, 2D and 3D views of a layer's activations that CAVs are fitted on.

Mikriukov, Schwalbe, Hellert & Bade 2023 ("Evaluating the Stability of
Semantic Concept Representations in CNNs for Robust Explainability", arXiv
2304.14864) compare CAVs of three dimensionalities for one activation map
A (H, W, C) per sample (channels last, as the repository's models):

- "1d": the spatial mean, A averaged over H and W: (C,), the paper's
  "dimensionality reduction via data aggregation" (`cavs.flatten_acts`
  with pool "mean");
- "2d": the channel mean, A averaged over C: (H*W,), row-major over (H, W);
- "3d": the whole map flattened: (H*W*C,), plain TCAV (`cavs.flatten_acts`
  with pool "flatten"; the feature order is (H, W, C), channels fastest).

The paper's 1D and 3D views are the spatial mean and the flattened tensor
(abstract: "1D-, 2D-, 3D-CAVs"); which mean the 2D view takes is a
reconstruction (not verified against the paper), swappable through `VIEWS`.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxcxai.checks import check_finite
from jaxcxai.concepts.probes.cavs import flatten_acts

__all__ = [
    "DIMS",
    "VIEWS",
    "spatial_mean",
    "channel_mean",
    "flattened",
    "represent",
    "feature_size",
    "check_maps",
]


def spatial_mean(acts: jax.Array) -> jax.Array:
    """The 1D view: (N, H, W, C) -> (N, C), the mean over H and W."""
    return flatten_acts(acts, pool="mean")


def channel_mean(acts: jax.Array) -> jax.Array:
    """The 2D view: (N, H, W, C) -> (N, H*W), the mean over C (reconstruction).

    Rows are flattened row-major over (H, W), so feature h*W + w is the
    mean of A[h, w, :].
    """
    acts = jnp.asarray(acts)
    return jnp.mean(acts, axis=-1).reshape(acts.shape[:-3] + (-1,))


def flattened(acts: jax.Array) -> jax.Array:
    """The 3D view: (N, H, W, C) -> (N, H*W*C), in (H, W, C) order."""
    return flatten_acts(acts, pool="flatten")


DIMS = ("1d", "2d", "3d")
# One entry per CAV dimensionality; swap an entry to try another reduction.
VIEWS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "1d": spatial_mean,
    "2d": channel_mean,
    "3d": flattened,
}


def check_maps(acts, name: str = "acts") -> jax.Array:
    """`acts` as a float32 (N, H, W, C) array, or a ValueError naming `name`.

    Raises:
      ValueError: wrong rank or no samples.
      NonFiniteError: NaN or inf entries (a ValueError naming `name`).
    """
    acts = jnp.asarray(acts)
    if acts.ndim != 4 or acts.shape[0] < 1:
        raise ValueError(
            f"{name} must be (N, H, W, C) activation maps with N >= 1, "
            f"got shape {acts.shape}"
        )
    if not jnp.issubdtype(acts.dtype, jnp.floating):
        acts = acts.astype(jnp.float32)
    check_finite({name: acts})
    return acts


def represent(acts: jax.typing.ArrayLike, dim: str, name: str = "acts") -> jax.Array:
    """The `dim` view of activation maps, one feature row per sample.

    Args:
      acts: (N, H, W, C) activation maps (channels last).
      dim: "1d" (spatial mean, (N, C)), "2d" (channel mean, (N, H*W)) or
        "3d" (flattened, (N, H*W*C)).
      name: the argument's name in error messages.

    Returns:
      (N, D) features, D = `feature_size(acts.shape[1:], dim)`.

    Raises:
      ValueError: unknown `dim`, or `acts` is not (N, H, W, C) or holds NaN
        or inf (naming `name`).

    References:
      Mikriukov et al. 2023, arXiv 2304.14864 (1D/2D/3D CAVs).
    """
    if dim not in VIEWS:
        raise ValueError(f"dim must be one of {tuple(VIEWS)}, got {dim!r}")
    return VIEWS[dim](check_maps(acts, name))


def feature_size(map_shape: tuple[int, int, int], dim: str) -> int:
    """D of the `dim` view for per-sample maps of shape (H, W, C)."""
    if dim not in VIEWS:
        raise ValueError(f"dim must be one of {tuple(VIEWS)}, got {dim!r}")
    spec = jax.ShapeDtypeStruct((1,) + tuple(map_shape), jnp.float32)
    return int(jax.eval_shape(VIEWS[dim], spec).shape[-1])
