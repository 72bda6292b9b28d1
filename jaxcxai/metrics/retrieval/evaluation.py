"""Chunked retrieval evaluation: all metrics of one or four directions at once.

`retrieval_metrics` (one query/database direction) and `cross_modal_metrics`
(I->T, T->I, I->I, T->T and their average) pack codes and labels, walk the
queries in chunks, collect per chunk `ranking._chunk_stats` (ties ranked by
database index) or `ties._chunk_stats` (tie-aware expected values) and reduce
them to mAP@K, P@K, precision within radius and the PR curve.
"""

import numpy as np

from jaxcxai.metrics.retrieval.hamming import (
    _pack_labels,
    _packed_hamming,
    _packed_relevance,
    pack_codes,
)
from jaxcxai.metrics.retrieval.ranking import _check_ks, _chunk_stats, _k_name
from jaxcxai.metrics.retrieval.reference import REFERENCE_PK_KS, REFERENCE_RADII
from jaxcxai.metrics.retrieval.ties import _check_ties
from jaxcxai.metrics.retrieval.ties import _chunk_stats as _expected_chunk_stats

DIRECTIONS = ("i2t", "t2i", "i2i", "t2t")
_WORKSPACE_BYTES = 1 << 25  # per query chunk; ~26 bytes per (query, item) pair


def _evaluate(
    directions,
    query_labels,
    db_labels,
    *,
    map_ks,
    pk_ks,
    radii,
    normalize,
    pr,
    query_chunk,
    ties,
    no_relevant,
) -> dict:
    """Runs every direction over query chunks; relevance is shared by all."""
    _check_ks(map_ks, pk_ks, normalize, radii)
    _check_ties(ties, no_relevant)
    qlab = _pack_labels(query_labels, "query_labels")
    dlab = _pack_labels(db_labels, "db_labels")
    packed = {}
    for name, (qc, dc) in directions.items():
        qc, dc = np.asarray(qc), np.asarray(dc)
        if qc.ndim != 2 or dc.ndim != 2 or qc.shape[1] != dc.shape[1]:
            raise ValueError(
                f"{name}: codes must be (Q, b) and (N, b); got {qc.shape}, {dc.shape}."
            )
        if qc.shape[0] != qlab.shape[0] or dc.shape[0] != dlab.shape[0]:
            raise ValueError(
                f"{name}: {qc.shape[0]} query codes / {qlab.shape[0]} query labels, "
                f"{dc.shape[0]} db codes / {dlab.shape[0]} db labels."
            )
        if qc.shape[0] == 0 or dc.shape[0] == 0:
            raise ValueError(f"{name}: empty query or database set.")
        packed[name] = (
            pack_codes(qc, f"{name} queries"),
            pack_codes(dc, f"{name} db"),
            qc.shape[1],
        )
    nq, n = qlab.shape[0], dlab.shape[0]
    chunk = query_chunk or max(1, min(nq, _WORKSPACE_BYTES // (26 * n)))
    want_hist = pr or bool(radii)
    parts = {name: [] for name in packed}
    for s in range(0, nq, chunk):
        rel = _packed_relevance(qlab[s : s + chunk], dlab)
        for name, (qc, dc, nbits) in packed.items():
            dist = _packed_hamming(qc[s : s + chunk], dc, nbits)
            if ties == "expected":
                stats = _expected_chunk_stats(
                    dist, rel, map_ks, pk_ks, normalize, nbits + 1, want_hist
                )
            else:
                stats = _chunk_stats(
                    dist, rel, map_ks, pk_ks, normalize, nbits + 1 if want_hist else 0
                )
            parts[name].append(stats)
    out = {}
    for name, chunks in parts.items():
        stats = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
        out[name] = _finalize(stats, n, map_ks, pk_ks, radii, pr, no_relevant)
    return out


def _sequential_sum(x: np.ndarray):
    """Left-to-right sum along axis 0, as the per-query loop accumulates."""
    return np.add.accumulate(x, axis=0)[-1] if x.shape[0] else np.zeros(x.shape[1:])


def _query_mean(values: np.ndarray, has_rel: np.ndarray, mode: str):
    """Mean over queries (axis 0) under a no-relevant-item convention.

    "zero": such a query adds 0 and counts; "exclude": it is left out (NaN
    when no query has a relevant item).
    """
    if mode == "exclude":
        values = values[has_rel]
        if not values.shape[0]:
            return np.full(values.shape[1:], np.nan)
        return _sequential_sum(values) / values.shape[0]
    mask = has_rel.reshape(has_rel.shape + (1,) * (values.ndim - 1))
    return _sequential_sum(np.where(mask, values, 0.0)) / has_rel.shape[0]


def _finalize(stats, n, map_ks, pk_ks, radii, pr, no_relevant) -> dict:
    has_rel = stats["num_rel"] > 0
    # Default conventions: the reference AP, P@K and PR count a query without
    # relevant items as 0; the standard AP is undefined for it and excludes it.
    zero, exclude = no_relevant or "zero", no_relevant or "exclude"
    out = {}
    for k in map_ks:
        name = _k_name(k)
        out[f"map@{name}"] = float(_query_mean(stats[f"ref@{k}"], has_rel, zero))
        out[f"map_trunc@{name}"] = float(
            _query_mean(stats[f"std@{k}"], has_rel, exclude)
        )
    if pk_ks:
        k_eff = np.array([min(k, n) for k in pk_ks], dtype=np.float64)
        p = _query_mean(stats["pk_hits"] / k_eff, has_rel, zero)
        out.update({f"p@{k}": float(v) for k, v in zip(pk_ks, p)})
    if "n_cum" in stats:
        total = stats["n_cum"].astype(np.float64)
        total += (total == 0) * 0.0001
        count = stats["r_cum"].astype(np.float64)
        num_rel = stats["num_rel"]
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = np.where(has_rel[:, None], count / total, 0.0)
            rec = np.where(has_rel[:, None], count / num_rel[:, None], 0.0)
        if zero == "exclude":
            prec, rec = prec[has_rel], rec[has_rel]
        if prec.shape[0]:
            prec, rec = prec.mean(axis=0), rec.mean(axis=0)
        else:
            prec = rec = np.full(prec.shape[1], np.nan)
        # A radius beyond b holds the whole database, as radius b does.
        top = prec.shape[0] - 1
        out.update({f"prec_radius@{r}": float(prec[min(r, top)]) for r in radii})
        if pr:
            out["pr_precision"], out["pr_recall"] = prec, rec
    return out


def retrieval_metrics(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    *,
    map_ks=(20,),
    pk_ks=REFERENCE_PK_KS,
    radii=REFERENCE_RADII,
    normalize: str = "min_k_r",
    pr_curve: bool = True,
    query_chunk: int | None = None,
    ties: str = "expected",
    no_relevant: str | None = None,
) -> dict:
    """All metrics of one retrieval direction in one pass over the queries.

    Items are ranked by Hamming distance. With `ties="expected"` (default)
    every rank-based metric is its mean over all orders of each group of
    tied items (McSherry & Najork 2008, see `ties`), computed from
    per-distance histograms; with "index" or "reference" ties are ranked by
    database index (one counting sort per query). The PR curve and precision
    within radius depend only on the histograms and are the same for all.

    Args:
      query_codes: (Q, b) +-1 query codes.
      db_codes: (N, b) +-1 database codes.
      query_labels: (Q, C) multi-hot labels (non-negative).
      db_labels: (N, C) multi-hot labels.
      map_ks: K values (None = all) for mAP@K in both semantics.
      pk_ks: K values for P@K (k = min(K, N)); default the reference list.
      radii: Hamming radii for the precision within radius ("mAP HR").
      normalize: denominator of the standard AP@K, "min_k_r" or "hits".
      pr_curve: also return the PR curve over radius 0..b.
      query_chunk: queries per chunk (default: ~32 MiB of workspace).
      ties: "expected" (tie-aware expected value), "index" (ties ranked by
        database index, a stable sort) or "reference" (the reference code's
        protocol as ported in `reference`: index order, queries without a
        relevant item counted as 0; `no_relevant="exclude"` is refused).
      no_relevant: how a query with no relevant item enters the means:
        "zero" (it adds 0 and counts, as the reference code and
        DeepHash-pytorch do), "exclude" (means over the other queries; NaN
        if there are none) or None (default): "zero" for "map@K", "p@K" and
        the PR curve, "exclude" for "map_trunc@K" (whose AP is undefined
        for such a query).

    Returns:
      A flat dict: "map@K" (reference AP), "map_trunc@K" (standard AP),
      "p@K", "prec_radius@r" (floats) and, with `pr_curve`, "pr_precision"
      and "pr_recall" ((b + 1,) arrays indexed by radius).
    """
    return _evaluate(
        {"q2d": (query_codes, db_codes)},
        query_labels,
        db_labels,
        map_ks=tuple(map_ks),
        pk_ks=tuple(pk_ks),
        radii=tuple(radii),
        normalize=normalize,
        pr=pr_curve,
        query_chunk=query_chunk,
        ties=ties,
        no_relevant=no_relevant,
    )["q2d"]


def cross_modal_metrics(
    query_image_codes,
    query_text_codes,
    db_image_codes,
    db_text_codes,
    query_labels,
    db_labels,
    **kwargs,
) -> dict:
    """The four directions I->T, T->I, I->I, T->T and their average.

    Image and text codes of an item share its labels, so relevance is computed
    once per query chunk. Keyword arguments are those of `retrieval_metrics`.

    Returns:
      {"i2t": {...}, "t2i": {...}, "i2i": {...}, "t2t": {...}, "avg": {...}};
      "avg" is the mean of the four directions, key by key.
    """
    directions = {
        "i2t": (query_image_codes, db_text_codes),
        "t2i": (query_text_codes, db_image_codes),
        "i2i": (query_image_codes, db_image_codes),
        "t2t": (query_text_codes, db_text_codes),
    }
    kw = dict(
        map_ks=(20,),
        pk_ks=REFERENCE_PK_KS,
        radii=REFERENCE_RADII,
        normalize="min_k_r",
        pr_curve=True,
        query_chunk=None,
        ties="expected",
        no_relevant=None,
    )
    unknown = set(kwargs) - set(kw)
    if unknown:
        raise TypeError(f"Unknown arguments {sorted(unknown)}; valid: {sorted(kw)}.")
    kw.update(kwargs)
    out = _evaluate(
        directions,
        query_labels,
        db_labels,
        map_ks=tuple(kw["map_ks"]),
        pk_ks=tuple(kw["pk_ks"]),
        radii=tuple(kw["radii"]),
        normalize=kw["normalize"],
        pr=kw["pr_curve"],
        query_chunk=kw["query_chunk"],
        ties=kw["ties"],
        no_relevant=kw["no_relevant"],
    )
    out["avg"] = {
        key: (sum(np.asarray(out[d][key]) for d in DIRECTIONS) / 4)
        for key in out["i2t"]
    }
    out["avg"] = {
        k: (float(v) if np.ndim(v) == 0 else v) for k, v in out["avg"].items()
    }
    return out
