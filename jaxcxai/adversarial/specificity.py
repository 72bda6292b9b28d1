"""Target specificity of perturbation components (F3).

Reconstruction (xai.md 2.2, step 5) of "The Anatomy of Adversarial Attacks:
Concept-based XAI Dissection" (Mikriukov et al., xAI 2024), finding F3: the
perturbation components are similar for one target class across attacks and
source classes. Each run r = (attack, source, target) has its own components
(k, C) (or its mean perturbation direction, k = 1). The similarity of two runs
is the mean |cos| of their leading components matched one to one by the
Hungarian method (`jaxcxai.concepts.discovery.match`, absolute). The
specificity gap is mean M over run pairs with the same target minus mean M
over pairs with different targets; its p-value comes from a permutation test
over the target labels, p = (1 + #{gap_perm >= gap}) / (1 + permutations).
"""

from collections.abc import Sequence

import jax
import numpy as np

from jaxcxai import checks
from jaxcxai.concepts.discovery import match
from jaxcxai.concepts.discovery.common import host_rng

__all__ = [
    "component_similarity",
    "mean_direction",
    "pair_means",
    "permuted_labels",
    "specificity_gap",
]


def mean_direction(d) -> np.ndarray:
    """mu = mean_i delta_i / ||.|| as a (1, C) dictionary.

    Args:
      d: (N, C) perturbations of one run (or (N, h, w, C): pixel vectors).

    Raises:
      ValueError: non-finite values, or a zero mean direction.
    """
    d = np.asarray(d, np.float64)
    if d.ndim < 2 or d.size == 0:
        raise ValueError(f"d must be a non-empty (N, C) array, got {d.shape}")
    checks.check_finite({"d": d})
    mu = d.reshape(-1, d.shape[-1]).mean(0)
    norm = np.linalg.norm(mu)
    if norm == 0:
        raise ValueError("the mean perturbation direction is zero")
    return (mu / norm)[None]


def component_similarity(vectors_list: Sequence, k: int | None = None) -> np.ndarray:
    """Similarity M (R, R) of R runs' components.

    Reconstruction (xai.md 2.2, step 5): M[r, s] = mean |cos| of the
    Hungarian-matched leading components of runs r and s.

    Args:
      vectors_list: R arrays (k_r, C), components ordered by importance.
      k: leading components used per run (default: the smallest k_r).

    Returns:
      (R, R) float64 symmetric matrix (ones on the diagonal for non-zero
      components).
    """
    dicts = [np.asarray(v, np.float64) for v in vectors_list]
    if len(dicts) < 2:
        raise ValueError(f"vectors_list needs at least 2 runs, got {len(dicts)}")
    for r, v in enumerate(dicts):
        if v.ndim != 2 or v.size == 0 or v.shape[1] != dicts[0].shape[1]:
            raise ValueError(
                f"vectors_list[{r}] must be (k, {dicts[0].shape[1]}), got {v.shape}"
            )
        checks.check_finite({f"vectors_list[{r}]": v})
    k_min = min(v.shape[0] for v in dicts)
    k = k_min if k is None else int(k)
    if not 1 <= k <= k_min:
        raise ValueError(f"k must be in [1, {k_min}] (fewest components), got {k}")
    r_count = len(dicts)
    m = np.zeros((r_count, r_count))
    for r in range(r_count):
        for s in range(r, r_count):
            cos = match(dicts[r][:k], dicts[s][:k], absolute=True).cosine
            m[r, s] = m[s, r] = cos.mean()
    return m


def _check_matrix(m, labels):
    m = np.asarray(m, np.float64)
    labels = np.asarray(labels)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"M must be a square (R, R) matrix, got {m.shape}")
    checks.check_finite({"M": m})
    if labels.shape != (m.shape[0],):
        raise ValueError(
            f"target_labels must have shape ({m.shape[0]},), got {labels.shape}"
        )
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(m.shape[0], dtype=bool)
    if not (same & off).any() or not (~same).any():
        raise ValueError(
            "target_labels need two runs with the same target and two with "
            "different targets"
        )
    return m, labels


def pair_means(m, labels) -> tuple[float, float]:
    """(mean M over pairs r != s with the same label, mean over different)."""
    m, labels = _check_matrix(m, labels)
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(m.shape[0], dtype=bool)
    return float(m[same & off].mean()), float(m[~same].mean())


def permuted_labels(labels, key: jax.Array, permutations: int) -> np.ndarray:
    """(permutations, R) random permutations of `labels` drawn from `key`.

    Drawn on the host by a NumPy generator seeded with the key's data
    (reproducible from the key, no per-shape compilation).
    """
    labels = np.asarray(labels)
    rng = host_rng(key)
    return rng.permuted(np.tile(labels, (int(permutations), 1)), axis=1)


def specificity_gap(
    m, target_labels, key: jax.Array, permutations: int = 1000, chunk: int = 256
) -> dict[str, float]:
    """Same-target minus different-target similarity, with a permutation test.

    Reconstruction (xai.md 2.2, step 5).

    Args:
      m: (R, R) run similarity (`component_similarity`).
      target_labels: (R,) target class of each run.
      key: PRNG key of the label permutations.
      permutations: number of permutations P.
      chunk: permutations evaluated at once (memory P x R^2 otherwise).

    Returns:
      {"gap", "same", "different", "p_value"}, p = (1 + #{gap_perm >= gap})
      / (1 + P).
    """
    m, labels = _check_matrix(m, target_labels)
    if int(permutations) != permutations or permutations < 1:
        raise ValueError(f"permutations must be a positive integer, got {permutations}")
    same, different = pair_means(m, labels)
    gap = same - different
    perms = permuted_labels(labels, key, int(permutations))
    off = ~np.eye(m.shape[0], dtype=bool)
    hits = 0
    for i in range(0, perms.shape[0], chunk):
        p = perms[i : i + chunk]
        eq = p[:, :, None] == p[:, None, :]  # (c, R, R)
        s_mask, d_mask = eq & off, ~eq
        g = (m * s_mask).sum((1, 2)) / s_mask.sum((1, 2)) - (m * d_mask).sum(
            (1, 2)
        ) / d_mask.sum((1, 2))
        # A relative tolerance: a permutation that reproduces the observed
        # grouping must count even when summation order changes the last bit.
        hits += int(np.sum(g >= gap - 1e-12 * max(1.0, abs(gap))))
    return {
        "gap": gap,
        "same": same,
        "different": different,
        "p_value": (1 + hits) / (1 + int(permutations)),
    }
