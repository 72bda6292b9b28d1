"""Linear decomposition of latent perturbations (F2).

Reconstruction (xai.md 2.2, step 4) of "The Anatomy of Adversarial Attacks:
Concept-based XAI Dissection" (Mikriukov et al., xAI 2024), finding F2: the
latent perturbations delta_l(x_i) of many samples, sources and attacks are
stacked into D (N, C) and decomposed into a global set of components
u_1..u_k (`fit_components`); `ablation` measures which of them make the
attack work.

P_J is the orthogonal projector onto span{u_j : j in J} (Sum_j <delta, u_j>
u_j for orthonormal PCA components; the least-squares projection for
non-orthogonal NMF/ICA directions). Spatial deltas (N, h, w, C) are
projected pixel by pixel.
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.concepts.discovery import fastica, fit_nmf, fit_pca
from jaxcxai.concepts.discovery.common import as_rows, check_rank

__all__ = [
    "METHODS",
    "Components",
    "energy_ratio",
    "fit_components",
    "project",
    "project_masked",
    "unit_rows",
]

METHODS = ("pca", "nmf_pm", "ica")


class Components(NamedTuple):
    """A global set of perturbation components.

    Attributes:
      vectors: (k, C) unit-norm directions, sorted by explained ratio.
      explained_variance_ratio: (k,) ||(D - mean) u_j||^2 / ||D - mean||^2
        (mean = 0 unless the method centers; exact explained-variance ratios
        for PCA, the energy along each direction for NMF and ICA, whose
        directions are not orthogonal, so these need not sum to <= 1).
      method: "pca", "nmf_pm" or "ica".
    """

    vectors: jax.Array
    explained_variance_ratio: jax.Array
    method: str


def energy_ratio(d: jax.Array, vectors: jax.Array, mean=None) -> jax.Array:
    """(k,) share of ||D - mean||_F^2 along each unit vector (rows of D)."""
    dc = d if mean is None else d - mean[None]
    total = jnp.maximum(jnp.sum(dc * dc), jnp.finfo(dc.dtype).tiny)
    return jnp.sum((dc @ vectors.T) ** 2, axis=0) / total


def unit_rows(v: jax.Array) -> jax.Array:
    norm = jnp.linalg.norm(v, axis=1, keepdims=True)
    return v / jnp.where(norm > 0, norm, 1.0)


def fit_components(
    d, k: int, method: str = "pca", key=None, *, center: bool = False, iters: int = 200
) -> Components:
    """Decomposes stacked perturbations into k components.

    Reconstruction (xai.md 2.2, step 4). "pca": SVD of D (Pearson 1901),
    uncentered by default, because the mean perturbation direction is part of
    what the attack adds and a centered PCA would drop it; "nmf_pm": NMF
    (Lee & Seung 2001) of the positive and negative parts
    [max(D, 0) | max(-D, 0)], each component u = h_+ - h_-; "ica": FastICA
    (Hyvarinen 1999) mixing directions of the centered D.

    Args:
      d: (N, C) perturbations, or (N, h, w, C) (pixel vectors become rows).
      k: number of components, 1 <= k <= min(rows, C).
      method: one of `METHODS`.
      key: PRNG key (needed by "nmf_pm" and "ica").
      center: PCA on D - mean(D) (method "pca" only).
      iters: NMF / FastICA iterations.

    Returns:
      `Components` (unit vectors (k, C) sorted by explained ratio).
    """
    x = as_rows(d, "d")
    k = check_rank(k, *x.shape)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method != "pca" and key is None:
        raise ValueError(f"method={method!r} needs a PRNG key")
    mean = None
    if method == "pca":
        fac = fit_pca(x, k, center=center)
        vectors, mean = fac.components, (fac.mean if center else None)
    elif method == "nmf_pm":
        pm = jnp.concatenate([jnp.maximum(x, 0.0), jnp.maximum(-x, 0.0)], axis=1)
        h = fit_nmf(pm, k, key, iters=iters, init="nndsvda").components
        vectors = unit_rows(h[:, : x.shape[1]] - h[:, x.shape[1] :])
    else:
        fac = fastica(x, k, key, iters=iters)
        vectors, mean = unit_rows(fac.components), fac.mean
    ratio = energy_ratio(x, vectors, mean)
    order = jnp.argsort(-ratio, stable=True)
    return Components(vectors[order], ratio[order], method)


def project_masked(delta: jax.Array, vectors: jax.Array, mask: jax.Array) -> jax.Array:
    """Part of delta (..., C) in span{vectors[j] : mask[j] = 1} (traceable).

    The projector pinv(V_m) V_m of the masked rows V_m (unselected rows zero)
    has a fixed shape, so every subset J runs in one compiled program.
    """
    vm = vectors * mask[:, None].astype(vectors.dtype)
    proj = jnp.linalg.pinv(vm) @ vm  # (C, C)
    return jnp.matmul(delta, proj, precision=jax.lax.Precision.HIGHEST)


def project(delta, vectors, indices: Sequence[int]) -> jax.Array:
    """Part of delta along components J = `indices`.

    Args:
      delta: (N, C) or (N, h, w, C) perturbations (per-pixel vectors).
      vectors: (k, C) components.
      indices: component indices J (empty: zeros).

    Returns:
      P_J delta, same shape as delta.
    """
    delta, vectors = jnp.asarray(delta), jnp.asarray(vectors)
    if vectors.ndim != 2 or delta.shape[-1] != vectors.shape[1]:
        raise ValueError(
            f"vectors must be (k, {delta.shape[-1]}) to match delta {delta.shape}, "
            f"got {vectors.shape}"
        )
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= vectors.shape[0]):
        raise ValueError(f"indices {idx.tolist()} out of range [0, {vectors.shape[0]})")
    mask = np.zeros(vectors.shape[0], np.float32)
    mask[idx] = 1.0
    return project_masked(delta, vectors, jnp.asarray(mask))
