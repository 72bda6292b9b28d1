"""Class centroids per modality: normalised image means, prompt averages.

Reconstruction (xai.md 3.2, step 1): the image centroid of class c is
normalize(mean_{x in c} E_I(x)), the text centroid normalize(mean over
prompt templates of E_T(prompt(c))), with every embedding L2-normalised
first (CLIP practice; Radford et al. 2021, prompt ensembling). The hierarchy
is extracted per modality from these centroids (Schwalbe et al. 2026,
arXiv:2603.26798).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import checks

__all__ = ["class_centroids", "l2_normalize", "text_centroids"]


def l2_normalize(x, axis: int = -1, eps: float = 1e-12) -> jax.Array:
    """x / ||x|| along `axis`; zero vectors stay zero."""
    x = jnp.asarray(x)
    norm = jnp.linalg.norm(x, axis=axis, keepdims=True)
    return x / jnp.maximum(norm, eps)


@functools.partial(jax.jit, static_argnames=("n", "normalize_inputs"))
def _centroids(emb, labels, n, normalize_inputs):
    emb = l2_normalize(emb) if normalize_inputs else emb
    sums = jax.ops.segment_sum(emb, labels, num_segments=n)
    counts = jax.ops.segment_sum(jnp.ones_like(labels), labels, num_segments=n)
    return l2_normalize(sums), counts


def class_centroids(emb, labels, n: int, *, normalize_inputs: bool = True):
    """(n, D) normalised class means of sample embeddings.

    Args:
      emb: (N, D) float sample embeddings (e.g. image-encoder outputs).
      labels: (N,) int class of each sample, in [0, n).
      n: number of classes; every class needs at least one sample.
      normalize_inputs: L2-normalise each embedding before averaging.

    Returns:
      (n, D) float32 jax.Array, rows of unit norm.
    """
    # Host inputs are checked on the host (no per-shape device programs).
    xp = jnp if isinstance(emb, jax.Array) else np
    emb = emb if xp is jnp else np.asarray(emb)
    labels = labels if isinstance(labels, jax.Array) else np.asarray(labels)
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise ValueError(f"emb must be a non-empty (N, D) array, got {emb.shape}")
    if labels.shape != emb.shape[:1]:
        raise ValueError(f"labels must be ({emb.shape[0]},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    checks.check_finite({"emb": emb})
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= n:
        raise ValueError(f"labels must lie in [0, {n}), got range [{lo}, {hi}]")
    means, counts = _centroids(emb.astype(xp.float32), labels, int(n), normalize_inputs)
    empty = np.flatnonzero(np.asarray(counts) == 0)
    if empty.size:
        raise ValueError(
            f"{empty.size} classes have no sample, e.g. class {int(empty[0])}"
        )
    return means


@functools.partial(jax.jit, static_argnames=("normalize_inputs",))
def _text(emb, normalize_inputs):
    emb = l2_normalize(emb) if normalize_inputs else emb
    return l2_normalize(emb.mean(axis=1))


def text_centroids(emb, *, normalize_inputs: bool = True) -> jax.Array:
    """(n, D) normalised mean over prompt templates.

    Args:
      emb: (n, T, D) float text embeddings of T prompt templates per class
        ("a photo of a {c}", ...).
      normalize_inputs: L2-normalise each prompt embedding first.

    Returns:
      (n, D) float32 jax.Array, rows of unit norm.
    """
    emb = emb if isinstance(emb, jax.Array) else np.asarray(emb)
    if emb.ndim != 3 or 0 in emb.shape:
        raise ValueError(f"emb must be a non-empty (n, T, D) array, got {emb.shape}")
    checks.check_finite({"emb": emb})
    return _text(emb.astype(np.float32), normalize_inputs)
