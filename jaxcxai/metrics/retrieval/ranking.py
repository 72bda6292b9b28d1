"""Per-query ranking statistics of one query chunk: AP@K, P@K hits, histograms.

The database is ranked per query by a stable (counting) sort of Hamming
distances, ties broken by database index. `_chunk_stats` derives from that
ranking the reference and standard AP@K (see the `retrieval` module docstring
for the two semantics) and the P@K hit counts, and from per-distance
histograms the cumulative counts behind PR curves and precision within radius.
"""

import numpy as np


def _sum_first(cols: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per row q: sum_{m=1}^{counts[q]} m / (cols[starts[q] + m - 1] + 1).

    Rows are grouped by count so that each row's terms are summed by one
    contiguous `np.add.reduce`, the same pairwise order as `np.mean` of that
    row's terms in the per-query loop.
    """
    out = np.zeros(counts.shape[0])
    for t in np.unique(counts[counts > 0]):
        sel = np.flatnonzero(counts == t)
        pos = cols[starts[sel, None] + np.arange(t)] + 1.0
        out[sel] = np.add.reduce(np.arange(1, t + 1, dtype=np.float64) / pos, axis=1)
    return out


def _chunk_stats(dist, rel, map_ks, pk_ks, normalize, nbins) -> dict:
    """Per-query statistics of one chunk of queries (`evaluation._evaluate`)."""
    nq, n = dist.shape
    num_rel = np.count_nonzero(rel, axis=1)
    stats = {"num_rel": num_rel}
    if nbins:
        stats["n_cum"], stats["r_cum"] = _cumulative_histograms(dist, rel, nbins)
    if not map_ks and not pk_ks:
        return stats
    order = np.argsort(dist, axis=1, kind="stable")  # radix (counting) sort
    rel_flat = rel.reshape(-1)
    row_offset = (np.arange(nq) * n)[:, None]
    # Only a prefix of the ranking is needed for finite K: the top max(K) items,
    # and for the reference semantics everything up to the T-th relevant item.
    ks = [n if k is None else min(k, n) for k in map_ks]
    need_rel = np.minimum(max(ks, default=0), num_rel)
    prefix = min(n, max(ks + [min(k, n) for k in pk_ks] + [1024]))
    while True:
        ranked = rel_flat.take(order[:, :prefix] + row_offset)
        hits = np.count_nonzero(ranked, axis=1)
        if prefix == n or np.all(hits >= need_rel):
            break
        prefix = min(n, 4 * prefix)
    _, cols = np.nonzero(ranked)  # row-major: ranks ascend within each row
    starts = np.cumsum(hits) - hits
    for k, kk in zip(map_ks, ks):
        t = np.minimum(kk, num_rel)
        stats[f"ref@{k}"] = _sum_first(cols, starts, t) / np.maximum(t, 1)
        top_hits = np.count_nonzero(ranked[:, :kk], axis=1)
        z = np.minimum(kk, num_rel) if normalize == "min_k_r" else top_hits
        with np.errstate(invalid="ignore", divide="ignore"):
            ap = _sum_first(cols, starts, top_hits) / z
        ap[z == 0] = 0.0
        ap[num_rel == 0] = np.nan
        stats[f"std@{k}"] = ap
    if pk_ks:
        csum = np.cumsum(ranked[:, : min(max(pk_ks), n)], axis=1, dtype=np.int64)
        stats["pk_hits"] = csum[:, [min(k, n) - 1 for k in pk_ks]]
    return stats


def _histograms(dist: np.ndarray, rel: np.ndarray, nbins: int):
    """#items and #relevant items at each distance 0..nbins-1, (Qc, nbins) each."""
    nq = dist.shape[0]
    wide = nq * 2 * nbins >= 2**31
    key = dist.astype(np.int64 if wide else np.int32)
    key <<= 1
    key |= rel
    key += (np.arange(nq, dtype=key.dtype) * (2 * nbins))[:, None]
    h = np.bincount(key.reshape(-1), minlength=nq * 2 * nbins).reshape(nq, nbins, 2)
    return h.sum(axis=2), h[:, :, 1]


def _cumulative_histograms(dist: np.ndarray, rel: np.ndarray, nbins: int):
    """#items and #relevant items with distance <= r, (Qc, nbins) each."""
    n, r = _histograms(dist, rel, nbins)
    return np.cumsum(n, axis=1), np.cumsum(r, axis=1)


def _k_name(k) -> str:
    return "all" if k is None else str(k)


def _check_ks(map_ks, pk_ks, normalize, radii=()) -> None:
    if any(int(r) != r or r < 0 for r in radii):
        raise ValueError(f"radii must be non-negative integers; got {radii}.")
    for k in list(map_ks) + list(pk_ks):
        if k is not None and (int(k) != k or k < 1):
            raise ValueError(f"K values must be positive integers or None; got {k}.")
    if None in pk_ks:
        raise ValueError("pk_ks must be integers (P@K needs a finite K).")
    if normalize not in ("min_k_r", "hits"):
        raise ValueError(f"normalize must be 'min_k_r' or 'hits'; got {normalize!r}.")
