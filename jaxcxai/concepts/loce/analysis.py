"""Downstream analyses of LoCEs (as in the LoCE reference code): centroids, projection
segmentation, nearest-centroid / kNN prediction, retrieval and outlier
scores; separation and overlap (with the pairwise distances they share)
live in `distances` and are re-exported here.

Distance matrices and retrieval run in JAX (one matmul and masked segment
reductions, O(N^2) memory, fine for N up to ~10^4 per call); LOF and
Isolation Forest use sklearn, as the reference.

Conventions: `labels` are any hashable values; results indexed by class use
the order of `np.unique(labels)`, returned alongside. Distances are those
of `distances.pairwise_distances`: "euclidean" or "cosine".
"""

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.concepts.loce.distances import _HI, _encode
from jaxcxai.concepts.loce.distances import overlap_ratio as overlap_ratio
from jaxcxai.concepts.loce.distances import pairwise_distances as pairwise_distances
from jaxcxai.concepts.loce.distances import (
    pairwise_separation as pairwise_separation,
)
from jaxcxai.concepts.loce.distances import separation_index as separation_index
from jaxcxai.data.resample import interpolation_matrix

__all__ = [
    "average_precision",
    "centroids",
    "cosine_outlier_scores",
    "iforest_scores",
    "knn_predict_proba",
    "lof_scores",
    "mean_precision_at_k",
    "nearest_centroid_proba",
    "overlap_ratio",
    "pairwise_distances",
    "pairwise_separation",
    "project_segmentation",
    "separation_index",
]


def centroids(loces, labels, *, normalized: bool = True, cumulative: bool = False):
    """Per-class centroids: mean (or sum) of L2-normalized LoCEs (reference).

    Returns:
      (classes (K,), (K, C) centroids). `normalized=False` gives GloCE means.
    """
    classes, inv = _encode(labels)
    x = jnp.asarray(loces, jnp.float32)
    if normalized:
        x = x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sums = jax.ops.segment_sum(x, inv, len(classes))
    if cumulative:
        return classes, sums
    counts = jax.ops.segment_sum(jnp.ones_like(inv, jnp.float32), inv, len(classes))
    return classes, sums / counts[:, None]


def project_segmentation(
    vectors: Mapping[str, jax.Array],
    acts: Mapping[str, jax.Array],
    image_size: Sequence[int],
    threshold: float = 0.5,
):
    """Weak localization with a (multi-layer) global vector.

    Per layer uint8(255 sigmoid(clip(u.a, +-10))) at native resolution; maps
    are resized (bilinear; the reference uses PIL) to the largest layer's
    grid, averaged, min-max normalized, resized to the image and binarized.

    Args:
      vectors: {layer: (C_l,)}; acts: {layer: (C_l, h_l, w_l)} of one image.
      image_size: (H, W).
      threshold: binarization threshold bt on the normalized map.

    Returns:
      (mask (H, W) bool, soft map (H, W) in [0, 1]).
    """
    maps = {}
    for name, u in vectors.items():
        z = jnp.einsum("c,chw->hw", jnp.asarray(u), jnp.asarray(acts[name]))
        maps[name] = (255.0 * jax.nn.sigmoid(jnp.clip(z, -10, 10))).astype(jnp.uint8)
    big = max((m.shape for m in maps.values()), key=lambda s: s[0] * s[1])

    def resize(m, size):
        a_h = interpolation_matrix(m.shape[0], size[0], "bilinear")
        a_w = interpolation_matrix(m.shape[1], size[1], "bilinear")
        return jnp.einsum(
            "Hh,hw,Ww->HW", a_h, m.astype(jnp.float32), a_w, precision=_HI
        )

    mean = jnp.mean(jnp.stack([resize(m, big) for m in maps.values()]), axis=0)
    lo, hi = jnp.min(mean), jnp.max(mean)
    soft = resize((mean - lo) / jnp.where(hi > lo, hi - lo, 1.0), tuple(image_size))
    return soft > threshold, soft


def nearest_centroid_proba(x, cluster_centroids, cluster_probs, metric="euclidean"):
    """Category distribution of each row's nearest cluster centroid.

    Args:
      x: (N, C) queries; cluster_centroids: (M, C); cluster_probs: (M, K)
        per-cluster category probabilities.

    Returns:
      (N, K) probabilities.
    """
    d = pairwise_distances(x, cluster_centroids, metric=metric)
    return jnp.asarray(cluster_probs)[jnp.argmin(d, axis=1)]


def knn_predict_proba(train_x, train_labels, x, k: int = 5, metric="euclidean"):
    """Uniform-vote kNN class probabilities, (N, K) over `np.unique(train_labels)`."""
    classes, inv = _encode(train_labels)
    d = pairwise_distances(x, train_x, metric=metric)
    _, nb = jax.lax.top_k(-d, k)
    votes = jax.nn.one_hot(inv[nb], len(classes), dtype=jnp.float32)
    return classes, jnp.sum(votes, axis=1) / k


def _ranked_relevance(loces, labels, metric, k=None):
    classes, inv = _encode(labels)
    d = pairwise_distances(loces, metric=metric)
    d = jnp.where(jnp.eye(d.shape[0], dtype=bool), jnp.inf, d)  # the query itself
    k = d.shape[0] - 1 if k is None else k
    if not 1 <= k <= d.shape[0] - 1:
        raise ValueError(f"k={k} must be in [1, N - 1 = {d.shape[0] - 1}]")
    # top_k breaks distance ties by the lower index (stable).
    _, nb = jax.lax.top_k(-d, k)
    return classes, inv, (inv[nb] == inv[:, None]).astype(jnp.float32)


def _average(per_query, inv, n_classes, average):
    if average == "query":
        return jnp.mean(per_query, axis=0)
    if average != "category":
        raise ValueError(f"average must be 'category' or 'query', got {average!r}")
    sums = jax.ops.segment_sum(per_query, inv, n_classes)
    counts = jax.ops.segment_sum(jnp.ones_like(inv, jnp.float32), inv, n_classes)
    per_class = sums / counts.reshape((-1,) + (1,) * (per_query.ndim - 1))
    return jnp.mean(per_class, axis=0)


def mean_precision_at_k(
    loces, labels, ks=(1, 5, 10, 20, 30, 40), metric="cosine", average="category"
) -> dict[int, float]:
    """The reference's "mAP@k": mean precision@k, NOT average precision.

    Each LoCE queries all others (itself excluded); P_i@k = fraction of the k
    nearest with the query's label. "category": mean per category, then over
    categories (reference figure); "query": mean over all queries.
    """
    classes, inv, rel = _ranked_relevance(loces, labels, metric, max(ks))
    prec = jnp.cumsum(rel, axis=1) / jnp.arange(1, rel.shape[1] + 1)[None, :]
    avg = _average(prec, inv, len(classes), average)
    return {int(k): float(avg[k - 1]) for k in ks}


def average_precision(
    loces, labels, k: int | None = None, metric="cosine", average="category"
):
    """True average precision of LoCE retrieval (beside the reference's metric).

    AP_i@k = sum_{j<=k} P_i@j rel_j / min(k, R_i), R_i = other members of the
    query's class (k=None: the full ranking). Queries with R_i = 0 are left out.

    Returns:
      (mean AP, per-query AP (N,) with NaN where undefined).
    """
    classes, inv, rel = _ranked_relevance(loces, labels, metric, k)
    prec = jnp.cumsum(rel, axis=1) / jnp.arange(1, rel.shape[1] + 1)[None, :]
    counts = jax.ops.segment_sum(jnp.ones_like(inv, jnp.float32), inv, len(classes))
    r = jnp.minimum(counts[inv] - 1.0, rel.shape[1])
    ap = jnp.where(r > 0, jnp.sum(prec * rel, axis=1) / jnp.maximum(r, 1.0), jnp.nan)
    valid = ~jnp.isnan(ap)
    inv_valid, ap_valid = (
        np.asarray(inv)[np.asarray(valid)],
        np.asarray(ap)[np.asarray(valid)],
    )
    if average == "query":
        return float(np.mean(ap_valid)), ap
    means = [ap_valid[inv_valid == c].mean() for c in np.unique(inv_valid)]
    return float(np.mean(means)), ap


def cosine_outlier_scores(loces) -> jax.Array:
    """Reference default: s_i = sum_j cosine distance(v_i, v_j); larger = odder."""
    return jnp.sum(pairwise_distances(loces, metric="cosine"), axis=1)


def lof_scores(
    loces, n_neighbors=20, contamination=0.05, metric="cosine"
) -> np.ndarray:
    """Local outlier factor (sklearn), as -negative_outlier_factor_."""
    from sklearn.neighbors import LocalOutlierFactor

    lof = LocalOutlierFactor(
        n_neighbors=n_neighbors, contamination=contamination, metric=metric
    )
    lof.fit(np.asarray(loces, np.float64))
    return -lof.negative_outlier_factor_


def iforest_scores(loces, contamination=0.05, random_state=0) -> np.ndarray:
    """Isolation Forest (sklearn), as -decision_function; larger = odder."""
    from sklearn.ensemble import IsolationForest

    x = np.asarray(loces, np.float64)
    forest = IsolationForest(
        contamination=contamination, random_state=random_state
    ).fit(x)
    return -forest.decision_function(x)
