"""AP@K and mAP@K of Hamming ranking, in the reference or standard semantics.

See the `retrieval` module docstring for the two semantics and the tie rules.
"""

import numpy as np

from jaxcxai.metrics.retrieval.evaluation import retrieval_metrics
from jaxcxai.metrics.retrieval.ranking import (
    _check_ks,
    _chunk_stats,
    _histograms,
    _k_name,
)
from jaxcxai.metrics.retrieval.ties import _check_ties, _expected_stats


def mean_average_precision(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    k: int | None = None,
    *,
    semantics: str = "reference",
    normalize: str = "min_k_r",
    query_chunk: int | None = None,
    ties: str = "expected",
    no_relevant: str | None = None,
) -> float:
    """mAP@K in the "reference" or "standard" semantics (see `retrieval`).

    K = None means the whole database. `ties` ("expected", "index",
    "reference") and `no_relevant` ("zero", "exclude", None) are those of
    `retrieval_metrics`.
    """
    if semantics not in ("reference", "standard"):
        raise ValueError(
            f"semantics must be 'reference' or 'standard'; got {semantics!r}."
        )
    out = retrieval_metrics(
        query_codes,
        db_codes,
        query_labels,
        db_labels,
        map_ks=(k,),
        pk_ks=(),
        radii=(),
        normalize=normalize,
        pr_curve=False,
        query_chunk=query_chunk,
        ties=ties,
        no_relevant=no_relevant,
    )
    return out[("map@" if semantics == "reference" else "map_trunc@") + _k_name(k)]


def average_precision(
    dist,
    rel,
    k: int | None = None,
    *,
    semantics: str = "reference",
    normalize: str = "min_k_r",
    ties: str = "expected",
) -> np.ndarray:
    """Per-query AP@K from a distance matrix and a relevance matrix.

    Args:
      dist: (Q, N) non-negative integer distances; equal values are tied.
      rel: (Q, N) bool relevance.
      k: K, or None for all N.
      semantics: "reference" (0 for a query without relevant items) or
        "standard" (NaN for such a query).
      normalize: denominator of the standard semantics, "min_k_r" or "hits".
      ties: "expected" (mean over all orders of each tie group) or "index" /
        "reference" (ties ranked by index).

    Returns:
      (Q,) float64 AP values.
    """
    dist, rel = np.asarray(dist), np.asarray(rel, dtype=bool)
    if dist.shape != rel.shape or dist.ndim != 2:
        raise ValueError(f"dist {dist.shape} and rel {rel.shape} must be equal (Q, N).")
    if semantics not in ("reference", "standard"):
        raise ValueError(
            f"semantics must be 'reference' or 'standard'; got {semantics!r}."
        )
    _check_ks((k,), (), normalize)
    _check_ties(ties, None)
    if dist.size and (not np.issubdtype(dist.dtype, np.integer) or dist.min() < 0):
        raise ValueError("dist must hold non-negative integers.")
    key_dtype = np.uint8 if dist.max(initial=0) < 256 else np.uint16
    if dist.max(initial=0) >= 65536:
        raise ValueError("dist values must be < 65536 (Hamming distances).")
    if ties == "expected":
        n, r = _histograms(dist, rel, int(dist.max(initial=0)) + 1)
        stats = _expected_stats(n, r, (k,), (), normalize)
    else:
        stats = _chunk_stats(dist.astype(key_dtype), rel, (k,), (), normalize, 0)
    return stats[("ref@" if semantics == "reference" else "std@") + str(k)]
