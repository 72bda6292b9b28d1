"""Precision of Hamming ranking: P@K, PR curve and precision within radius."""

import numpy as np

from jaxcxai.metrics.retrieval.evaluation import retrieval_metrics
from jaxcxai.metrics.retrieval.reference import REFERENCE_PK_KS, REFERENCE_RADII


def precision_at_k(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    ks=REFERENCE_PK_KS,
    *,
    query_chunk: int | None = None,
) -> np.ndarray:
    """(len(ks),) mean P@K with k = min(K, N); ties ranked by database index.

    Queries with no relevant item add 0 and count in the mean (reference).
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
    )
    return np.array([out[f"p@{k}"] for k in ks])


def pr_curve(
    query_codes, db_codes, query_labels, db_labels, *, query_chunk: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall within Hamming radius r = 0..b, averaged over queries.

    P_r = TP(d <= r) / #(d <= r) (0 when nothing lies within r), R_r =
    TP(d <= r) / R_q; queries with no relevant item add 0 to both means
    (reference `pr_curve`). Tie-free: depends only on per-distance counts.

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
) -> np.ndarray:
    """(len(radii),) mean precision within Hamming radius r ("mAP HR")."""
    precision, _ = pr_curve(
        query_codes, db_codes, query_labels, db_labels, query_chunk=query_chunk
    )
    return precision[np.minimum(np.asarray(radii, dtype=np.int64), precision.size - 1)]
