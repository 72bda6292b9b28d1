"""Scores of image attribution maps: localisation, faithfulness, sanity, stability.

Per explained item (image, concept, target logit `has_<concept>`), with the
concept's class mask as ground truth (`study.build_items`):

- localisation: relevance mass (share of the positive relevance inside the
  mask, Arras et al. 2022) and the pointing game (the map's maximum within
  `tolerance` px of the mask, Zhang et al. 2016); `mask_fraction` (the
  mask's share of the image) is what a map without information scores on
  relevance mass in expectation;
- faithfulness: deletion and insertion AUC (Petsiuk et al. 2018) of the
  target's presence probability sigmoid(logit), deleting to black and
  inserting into a Gaussian-blurred copy (the paper's two starts);
- model-parameter randomisation (Adebayo et al. 2018): the maps after
  randomising the layers top-down, one more at a time (cascading), compared
  with the original maps by Spearman rho of |phi| ranks and by SSIM; a
  method that passes the check gives low similarity;
- seed stability of the sampled methods: Kendall tau-b of |phi| ranks and
  SSIM between the maps of two keys.

`summary` turns per-item values into mean, std and count (NaN items, e.g. a
map without positive mass, are left out and counted).

The metrics of `jaxcxai.metrics.explanations` are called through `jax.jit`
here (one compiled program per metric and shape instead of one per eager
operation), and the randomisation re-draws weights with `host_reinit`, the
library's N(0, std^2) re-initialisation drawn with NumPy (a few milliseconds
where a threefry kernel per weight shape takes seconds to compile on CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from scipy import ndimage

from jaxcxai.metrics.explanations import (
    curve_auc,
    deletion_curve,
    insertion_curve,
    kendall_tau,
    parameter_randomization,
    pointing_game,
    relevance_mass,
    spearman_rho,
    ssim,
)

__all__ = [
    "blurred",
    "faithfulness",
    "host_reinit",
    "kendall",
    "localisation",
    "randomization",
    "seed_stability",
    "spearman",
    "ssim_maps",
    "summary",
]

kendall = jax.jit(kendall_tau)  # tau-b of |phi| ranks, (N,)
spearman = jax.jit(spearman_rho)  # rho of |phi| ranks, (N,)
ssim_maps = jax.jit(ssim)  # SSIM of min-max normalised maps, (N,)
_mass = jax.jit(relevance_mass)
_pointing = jax.jit(pointing_game, static_argnames="tolerance")


def host_reinit(key: jax.Array, leaf: Any) -> np.ndarray:
    """N(0, std(leaf)^2) of the leaf's shape drawn with NumPy (seeded by
    `key`); constant and non-float leaves unchanged (as `gaussian_reinit`)."""
    leaf = np.asarray(leaf)
    if not np.issubdtype(leaf.dtype, np.floating) or leaf.std() == 0:
        return leaf
    seed = np.asarray(jax.random.key_data(key)).astype(np.uint64)
    rng = np.random.default_rng(seed.tolist())
    return (leaf.std() * rng.standard_normal(leaf.shape)).astype(leaf.dtype)


def summary(values: Any) -> dict:
    """{"mean", "std", "n", "nan"} of per-item values (NaN left out)."""
    v = np.asarray(values, np.float64).reshape(-1)
    ok = v[np.isfinite(v)]
    return {
        "mean": float(ok.mean()) if ok.size else None,
        "std": float(ok.std()) if ok.size else None,
        "n": int(ok.size),
        "nan": int(v.size - ok.size),
    }


def localisation(maps: Any, mask: Any, tolerance: float) -> dict[str, np.ndarray]:
    """Relevance mass, pointing game and the mask's area share, (N,) each.

    Args:
      maps: (N, H, W) attribution maps.
      mask: (N, H, W) bool ground-truth masks.
      tolerance: pointing-game tolerance in pixels.
    """
    mask = np.asarray(mask, bool)
    return {
        "relevance_mass": np.asarray(_mass(maps, mask)),
        "pointing_game": np.asarray(_pointing(maps, mask, tolerance=float(tolerance))),
        "mask_fraction": mask.reshape(len(mask), -1).mean(1),
    }


def blurred(x: Any, sigma: float) -> np.ndarray:
    """Each image of (N, H, W, C) blurred by a Gaussian of `sigma` px per
    channel (the insertion start of Petsiuk et al.); sigma 0 gives zeros."""
    x = np.asarray(x, np.float32)
    if sigma <= 0:
        return np.zeros_like(x)
    return ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest")


def faithfulness(
    f: Callable, x: Any, maps: Any, target: Any, steps: int, blur: float
) -> dict[str, np.ndarray]:
    """Deletion and insertion curves of sigmoid(target logit) and their AUC.

    Args:
      f: the model, `f(x) -> (logits, acts)`.
      x: (N, H, W, C) float images.
      maps: (N, H, W) maps: pixels are deleted / inserted by decreasing value.
      target: (N,) output indices.
      steps: increments (after step s the top (s H W) // steps pixels).
      blur: Gaussian sigma of the insertion start (0: black).

    Returns:
      {"deletion_curve", "insertion_curve" (N, steps + 1),
        "deletion_auc", "insertion_auc" (N,)}.
    """
    t = np.asarray(target)
    sig = lambda c: 1.0 / (1.0 + np.exp(-np.asarray(c, np.float64)))  # noqa: E731
    dc = sig(deletion_curve(f, x, maps, t, steps=steps, output="logit"))
    ic = sig(
        insertion_curve(
            f, x, maps, t, baseline=blurred(x, blur), steps=steps, output="logit"
        )
    )
    return {
        "deletion_curve": dc.astype(np.float32),
        "insertion_curve": ic.astype(np.float32),
        "deletion_auc": np.asarray(curve_auc(dc)),
        "insertion_auc": np.asarray(curve_auc(ic)),
    }


def randomization(
    explain: Callable[[Any], np.ndarray],
    params: Any,
    original: np.ndarray,
    layers: tuple[str, ...],
    key: jax.Array,
) -> dict[str, np.ndarray]:
    """Cascading model-parameter randomisation of one method.

    Args:
      explain: `explain(params) -> (N, H, W)` maps of the fixed items.
      params: the trained parameters.
      original: (N, H, W) maps of the trained model (not recomputed).
      layers: parameter names from the output down (`randomize_layers`).
      key: PRNG key of the re-draws (the same for every method, so every
        method sees the same randomised networks).

    Returns:
      {"maps" (L, N, H, W) after each step, "spearman", "ssim" (L, N)}.
    """
    shown = []

    def run(p, _):
        if p is params:  # the trained model: its maps are known already
            return original
        out = explain(p)
        shown.append(out)
        return out

    res = parameter_randomization(
        run, params, list(layers), original, key, similarity=spearman,
        randomizer=host_reinit,
    )  # fmt: skip
    maps = np.stack(shown)
    sim = np.stack([np.asarray(ssim_maps(original, m)) for m in maps])
    return {"maps": maps, "spearman": np.asarray(res["scores"]), "ssim": sim}


def seed_stability(a: Any, b: Any) -> dict[str, np.ndarray]:
    """Kendall tau-b of |phi| ranks and SSIM between two keys' maps, (N,)."""
    return {"kendall": np.asarray(kendall(a, b)), "ssim": np.asarray(ssim_maps(a, b))}
