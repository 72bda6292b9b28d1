"""Smoothed concept attribution <gradient, CAV> for stability studies.

Mikriukov, Schwalbe, Hellert & Bade 2023 ("Evaluating the Stability of
Semantic Concept Representations in CNNs for Robust Explainability", arXiv
2304.14864) attribute a prediction to a concept by the TCAV sensitivity
<dS_t/dA_l, v>, S_t the target class logit and v a CAV of layer l, and find
that gradients are unstable, most in shallow layers, where they advise
gradient smoothing. As in the group's code (the LoCE reference code's
gradient propagators, `src/hooks/`):

- SmoothGrad: n = 50 noisy copies x + s eps, eps ~ N(0, I), plus the clean
  image, 51 layer gradients averaged element-wise (`smoothing`). The noise
  std is s = 0.1 (max x - min x) per image (SmoothGrad's intent); the
  reference multiplies the noise by s^2 instead, s = (0.1 (max - min))^2,
  behind `quirk_noise_scale=True`.
- `concept_attribution`: 3D CAVs are dotted with the full gradient tensor,
  1D CAVs with its spatial mean (or sum, `spatial="sum"`: a reconstruction,
  not verified against the paper, swappable by that argument), 2D CAVs with
  its channel mean. The layer gradients and the noisy copies come from
  `jaxcxai.attribution` (`layer_gradients`, `concept_attribution`), for any
  model `f(x) -> (logits, {layer: act})`.

How unstable the gradients are is measured in `instability`.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import attribution as attr

__all__ = [
    "REFERENCE_COPIES",
    "smoothing",
    "concept_attribution",
    "repeated_attribution",
]

REFERENCE_COPIES = 50  # noisy copies per image in the group's SmoothGrad


def smoothing(
    n: int = REFERENCE_COPIES, *, quirk_noise_scale: bool = False, sigma: float = 0.1
) -> dict[str, Any]:
    """Keyword arguments of `jaxcxai.attribution.layer_gradients` for SmoothGrad.

    Args:
      n: noisy copies per image; with the clean image n + 1 gradients are
        averaged (51 for the reference's 50).
      quirk_noise_scale: the reference's noise std (sigma (max - min))^2
        instead of sigma (max - min).
      sigma: the noise level relative to the image's value range.

    Returns:
      {"n", "sigma", "noise_scale", "keep_clean"} keyword arguments.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    scale = "range_squared" if quirk_noise_scale else "relative"
    return {"n": int(n), "sigma": float(sigma), "noise_scale": scale,
            "keep_clean": True}  # fmt: skip


def concept_attribution(
    f: Callable,
    x: jax.typing.ArrayLike,
    layer: str,
    cav: jax.typing.ArrayLike,
    target: Any = None,
    *,
    dim: str = "1d",
    spatial: str = "mean",
    smooth: bool = False,
    n: int = REFERENCE_COPIES,
    quirk_noise_scale: bool = False,
    sigma: float = 0.1,
    key: jax.Array | None = None,
    noise: jax.typing.ArrayLike | None = None,
    **kwargs,
) -> jax.Array:
    """Per-sample concept attribution <dS_t/dA_l, v>, optionally smoothed.

    Args:
      f: `f(x) -> (logits, {layer: act})` with channels-last activations.
      x: (N, ...) input images.
      layer: the activation's name.
      cav: (..., C) for dim "1d", (..., H, W) for "2d", (..., H, W, C) or
        (..., H*W*C) for "3d"; leading axes hold several CAVs.
      target: None (predicted class), an int or (N,) class indices.
      dim: the CAV's dimensionality, "1d", "2d" or "3d".
      spatial: "mean" or "sum" of the gradient over space for "1d".
      smooth: average the layer gradients over `n` noisy copies plus the
        clean image (`smoothing`).
      n, quirk_noise_scale, sigma: the smoothing (see `smoothing`).
      key: PRNG key of the noise (with `smooth`).
      noise: optional explicit (N, n, ...) standard normal draws instead of
        `key` (the copies are x + s noise[:, j]).
      **kwargs: `head`, `target_fn`, `chunk_size`, `mesh`, `clip` of
        `jaxcxai.attribution.concept_attribution`.

    Returns:
      (N,) sensitivities, or (N, *K) for several CAVs.

    Raises:
      ValueError: naming `cav` (shape for `dim`, NaN or inf), `x`, `target`,
        `key`, `noise` or `n`; `noise` without `smooth`.

    References:
      Kim et al. 2018 (TCAV); Smilkov et al. 2017 (SmoothGrad); Mikriukov
      et al. 2023, arXiv 2304.14864.
    """
    if smooth:
        copies = n if noise is None else int(np.shape(noise)[1])
        kwargs |= smoothing(copies, quirk_noise_scale=quirk_noise_scale, sigma=sigma)
    elif noise is not None:
        raise ValueError("noise is only used with smooth=True")
    return attr.concept_attribution(f, x, layer, cav, target, kind=dim,
                                    spatial=spatial, key=key, noise=noise,
                                    **kwargs)  # fmt: skip


def repeated_attribution(
    f: Callable,
    x: jax.typing.ArrayLike,
    layer: str,
    cav: jax.typing.ArrayLike,
    target: Any = None,
    *,
    key: jax.Array,
    repeats: int = 5,
    **kwargs,
) -> jax.Array:
    """T smoothed concept attributions of the same images with T noise keys.

    Run t uses `jax.random.fold_in(key, t)`; feed the result to
    `instability.variability` to see how much the attribution moves with the
    noise (more copies `n` should move it less).

    Args:
      f, x, layer, cav, target: as in `concept_attribution`.
      key: PRNG key of the runs.
      repeats: T, the number of runs (>= 2).
      **kwargs: the other arguments of `concept_attribution` (`dim`, `n`,
        `quirk_noise_scale`, ...); smoothing is always on.

    Returns:
      (T, N) attributions (or (T, N, *K) for several CAVs).
    """
    if isinstance(repeats, bool) or int(repeats) != repeats or repeats < 2:
        raise ValueError(f"repeats must be an integer >= 2, got {repeats!r}")
    kwargs["smooth"] = True
    return jnp.stack([concept_attribution(f, x, layer, cav, target,
                                          key=jax.random.fold_in(key, t), **kwargs)
                      for t in range(int(repeats))])  # fmt: skip
