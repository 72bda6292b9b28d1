"""Precision of Hamming ranking: P@K, PR curve and precision within radius."""

import numpy as np

from jaxcxai.metrics.retrieval.evaluation import retrieval_metrics
from jaxcxai.metrics.retrieval.ranking import _check_ks, _histograms
from jaxcxai.metrics.retrieval.reference import REFERENCE_PK_KS, REFERENCE_RADII
from jaxcxai.metrics.retrieval.ties import _check_ties, _expected_stats


def precision_at_k(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    ks=REFERENCE_PK_KS,
    *,
    query_chunk: int | None = None,
    ties: str = "expected",
    no_relevant: str | None = None,
) -> np.ndarray:
    """(len(ks),) mean P@K with k = min(K, N).

    `ties` and `no_relevant` are those of `retrieval_metrics`: by default the
    expected P@K over all orders of tied items, and queries with no relevant
    item add 0 and count in the mean (reference).
    """
    out = retrieval_metrics(
        query_codes,
        db_codes,
        query_labels,
        db_labels,
        map_ks=(),
        pk_ks=tuple(ks),
        radii=(),
        pr_curve=False,
        query_chunk=query_chunk,
        ties=ties,
        no_relevant=no_relevant,
    )
    return np.array([out[f"p@{k}"] for k in ks])


def query_precision(dist, rel, ks, *, ties: str = "expected") -> np.ndarray:
    """Per-query P@K (k = min(K, N)) from a distance and a relevance matrix.

    Args:
      dist: (Q, N) non-negative integer distances; equal values are tied.
      rel: (Q, N) bool relevance.
      ks: K values (positive integers).
      ties: "expected" (mean over all orders of each tie group) or "index" /
        "reference" (ties ranked by index).

    Returns:
      (Q, len(ks)) float64 precisions.
    """
    dist, rel = np.asarray(dist), np.asarray(rel, dtype=bool)
    if dist.shape != rel.shape or dist.ndim != 2:
        raise ValueError(f"dist {dist.shape} and rel {rel.shape} must be equal (Q, N).")
    ks = tuple(ks)
    _check_ks((), ks, "min_k_r")
    _check_ties(ties, None)
    if dist.size and (not np.issubdtype(dist.dtype, np.integer) or dist.min() < 0):
        raise ValueError("dist must hold non-negative integers.")
    k_eff = np.array([min(k, dist.shape[1]) for k in ks], dtype=np.float64)
    if not ks or not dist.size:
        return np.zeros((dist.shape[0], len(ks)))
    if ties == "expected":
        n, r = _histograms(dist, rel, int(dist.max(initial=0)) + 1)
        hits = _expected_stats(n, r, (), ks, "min_k_r")["pk_hits"]
    else:
        ranked = np.take_along_axis(rel, np.argsort(dist, axis=1, kind="stable"), 1)
        hits = np.cumsum(ranked, axis=1)[:, k_eff.astype(np.int64) - 1]
    return hits / k_eff


def pr_curve(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    *,
    query_chunk: int | None = None,
    no_relevant: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall within Hamming radius r = 0..b, averaged over queries.

    P_r = TP(d <= r) / #(d <= r) (0 when nothing lies within r), R_r =
    TP(d <= r) / R_q; queries with no relevant item add 0 to both means
    (reference `pr_curve`; `no_relevant="exclude"` leaves them out). Tie-free:
    depends only on per-distance counts.

    Returns:
      precision, recall: (b + 1,) float64 arrays indexed by radius.
    """
    out = retrieval_metrics(
        query_codes,
        db_codes,
        query_labels,
        db_labels,
        map_ks=(),
        pk_ks=(),
        radii=(),
        pr_curve=True,
        query_chunk=query_chunk,
        no_relevant=no_relevant,
    )
    return out["pr_precision"], out["pr_recall"]


def precision_within_radius(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    radii=REFERENCE_RADII,
    *,
    query_chunk: int | None = None,
    no_relevant: str | None = None,
) -> np.ndarray:
    """(len(radii),) mean precision within Hamming radius r ("mAP HR")."""
    precision, _ = pr_curve(
        query_codes,
        db_codes,
        query_labels,
        db_labels,
        query_chunk=query_chunk,
        no_relevant=no_relevant,
    )
    return precision[np.minimum(np.asarray(radii, dtype=np.int64), precision.size - 1)]
