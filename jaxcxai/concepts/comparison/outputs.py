"""Probes' responses on shared test images, in the common form `similarity` compares.

Layers differ in shape and their probes live in different spaces, so the
comparison of Mikriukov et al. (arXiv:2305.07663; spec concepts.md §6.2, a
reconstruction) compares what the probes *predict* on the same N images:

* Net2Vec probes (`jaxcxai.concepts.probes.Probe`, w (K, C), b (K,)): masks
  M(x) = [sigmoid(w . a(x) + b) > 0.5] on a common G x G grid. The logit map
  is computed at the layer's native resolution and resampled bilinearly
  (PyTorch `align_corners=False`, `net2vec.probe_logits`), then thresholded.
  Net2Vec's prediction upsamples the activations first (spec §2.1); bilinear
  resampling is linear with rows summing to one, so resampling the logits is
  the same map (spec §9.3), and thresholding after resampling keeps
  sub-native-pixel boundaries (thresholding first would resample blocky
  0/1 masks). Spec §1.4 lists the grids each method uses for fitting but
  names none for comparisons: the grid G is the caller's choice. When G is
  smaller than a layer's grid the resampling samples the logits without
  anti-aliasing. sigmoid(z) > 0.5 is tested as z > 0 (equal in exact
  arithmetic; float32 sigmoid rounds |z| < 3e-8 to 0.5).
* CAVs (`jaxcxai.concepts.probes.Cavs`, K concepts x R random runs): the
  signed distance of f(x) to the classifier's plane,
  s(x) = (w . f(x) + b) / |w| = v . f(x) + b / |w| with v the unit CAV, so
  s > 0 where the classifier predicts the concept. This is spec §6.2's
  v . f(x) - b' with offset b' = -b / |w|; Pearson correlation ignores the
  offset and the scale, presence flags s > 0 do not. The R runs are averaged
  (the mean of the members' distance functions, as hybrid_learning's
  MEAN_NORMALIZED_DIST aggregates Net2Vec ensembles), or one run is picked.

Both return per-layer arrays (K, N, G, G) / (K, N); the `*_layers` forms
stack L layers into the (L, K, N, ...) input of `similarity.layer_similarity`.
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxcxai.checks import check_finite
from jaxcxai.concepts.probes.cavs import Cavs, flatten_acts
from jaxcxai.concepts.probes.net2vec import Probe, probe_logits

__all__ = [
    "net2vec_masks",
    "net2vec_layer_masks",
    "cav_projections",
    "cav_layer_projections",
]

_HI = jax.lax.Precision.HIGHEST


def _grid(grid: int | tuple[int, int]) -> tuple[int, int]:
    size = (grid, grid) if isinstance(grid, int) else tuple(int(g) for g in grid)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"grid must be G or (G_h, G_w) >= 1, got {grid!r}")
    return size


@functools.partial(jax.jit, static_argnums=2)
def _masks(probe, acts, size):
    return probe_logits(probe, acts, size) > 0.0


def net2vec_masks(
    probe: Probe,
    acts: jax.typing.ArrayLike,
    grid: int | tuple[int, int],
    *,
    batch_size: int | None = None,
) -> jax.Array:
    """Net2Vec masks of K concepts on N images, resampled to a common grid.

    Args:
      probe: `Probe` with w (K, C) and b (K,) (any leading axes (...)).
      acts: (N, h, w, C) activations of the probe's layer (native resolution).
      grid: G or (G_h, G_w), the common grid of all compared layers.
      batch_size: images per compiled call (bounds the (K, n, G, G) logits);
        default all N at once.

    Returns:
      (..., N, G_h, G_w) bool masks, sigmoid(logit) > 0.5.

    Raises:
      ValueError: `acts` is not (N, h, w, C) with the probe's C channels.
      NonFiniteError: `acts` or the probe holds NaN or inf.
    """
    acts = jnp.asarray(acts)
    probe = Probe(jnp.asarray(probe.w, jnp.float32), jnp.asarray(probe.b, jnp.float32))
    if acts.ndim != 4 or acts.shape[-1] != probe.w.shape[-1]:
        raise ValueError(
            f"acts must be (N, h, w, C) with C = {probe.w.shape[-1]} (the probe's "
            f"channels), got shape {acts.shape}"
        )
    check_finite({"acts": acts, "probe": probe})
    size, n = _grid(grid), acts.shape[0]
    step = n if batch_size is None else max(1, int(batch_size))
    parts = [_masks(probe, acts[i : i + step], size) for i in range(0, n, step)]
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-3)


def net2vec_layer_masks(
    probes: Sequence[Probe],
    acts: Sequence[jax.typing.ArrayLike],
    grid: int | tuple[int, int],
    *,
    batch_size: int | None = None,
) -> jax.Array:
    """`net2vec_masks` of L layers (any native shapes), stacked: (L, K, N, G, G)."""
    if len(probes) != len(acts) or not len(probes):
        raise ValueError(
            f"probes and acts need one entry per layer, got {len(probes)} and "
            f"{len(acts)}"
        )
    return jnp.stack(
        [net2vec_masks(p, a, grid, batch_size=batch_size) for p, a in zip(probes, acts)]
    )


@functools.partial(jax.jit, static_argnums=2)
def _projections(cavs, feats, run):
    dist = jnp.einsum("krd,nd->krn", cavs.weight, feats, precision=_HI)
    norm = jnp.linalg.norm(cavs.weight, axis=-1)
    norm = jnp.where(norm > 0, norm, 1.0)[..., None]
    dist = (dist + cavs.bias[..., None]) / norm  # signed distance (K, R, N)
    return jnp.mean(dist, axis=1) if run is None else dist[:, run]


def cav_projections(
    cavs: Cavs,
    acts: jax.typing.ArrayLike,
    *,
    pool: str = "flatten",
    run: int | None = None,
) -> jax.Array:
    """TCAV-style projections of N images onto K concepts' CAV classifiers.

    Args:
      cavs: `Cavs` with (K, R, d) weights and (K, R) biases (`fit_cavs`).
      acts: (N, d) CAV features, or (N, H, W, C) maps turned into features
        with `flatten_acts(acts, pool)` as the CAVs were fitted.
      pool: "flatten" or "mean" (see `flatten_acts`), for maps only.
      run: random run r to use; default the mean over the R runs.

    Returns:
      (K, N) float32 signed distances (w . f(x) + b) / |w|.

    Raises:
      ValueError: feature sizes differ, or `run` is out of range.
      NonFiniteError: `acts` or `cavs` hold NaN or inf.
    """
    acts = jnp.asarray(acts, jnp.float32)
    feats = acts if acts.ndim == 2 else flatten_acts(acts, pool)
    if jnp.ndim(cavs.weight) != 3:
        raise ValueError(f"cavs must be (K, R, d), got weight {jnp.shape(cavs.weight)}")
    d, r = cavs.weight.shape[-1], cavs.weight.shape[1]
    if feats.ndim != 2 or feats.shape[-1] != d:
        raise ValueError(
            f"acts give features of shape {feats.shape}, the CAVs expect (N, {d})"
        )
    if run is not None and not -r <= int(run) < r:
        raise ValueError(f"run must be in [0, {r}) (R = {r} random runs), got {run}")
    check_finite({"acts": feats, "cavs": cavs})
    cavs = Cavs(*(jnp.asarray(x, jnp.float32) for x in cavs))
    return _projections(cavs, feats, None if run is None else int(run) % r)


def cav_layer_projections(
    cavs: Sequence[Cavs],
    acts: Sequence[jax.typing.ArrayLike],
    *,
    pool: str = "flatten",
    run: int | None = None,
) -> jax.Array:
    """`cav_projections` of L layers (any feature sizes), stacked: (L, K, N)."""
    if len(cavs) != len(acts) or not len(cavs):
        raise ValueError(
            f"cavs and acts need one entry per layer, got {len(cavs)} and {len(acts)}"
        )
    return jnp.stack(
        [cav_projections(c, a, pool=pool, run=run) for c, a in zip(cavs, acts)]
    )
