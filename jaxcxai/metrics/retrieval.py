"""Hamming-ranking retrieval metrics: mAP@K (two semantics), P@K, PR curves.

Ranking and tie rule. Every metric ranks the database by Hamming distance and
breaks ties by database index (the order a stable sort gives). b-bit
distances take only b + 1 values, so the ranking is a counting sort: NumPy's
stable argsort of uint8/uint16 keys is an LSD radix sort (one counting pass
per key byte), O(N) per query, with no comparisons. Metrics that depend only
on how many items lie within a radius (PR curve, precision within radius)
come from per-query histograms of all and of relevant items per distance.

Relevance: item j is relevant to query q when their multi-hot labels share at
least one class (L_q . L_j > 0).

Two mAP@K semantics (hashing spec §4.1):
  * "reference" (DUCH/CHNR `calc_map_k`): T = min(K, R_q), where R_q is the
    number of relevant items; AP = (1/T) sum_{m<=T} m / p_m, with p_m the rank
    of the m-th relevant item in the full ranked list (not truncated at K).
    A query with R_q = 0 has AP = 0 and still counts in the mean.
  * "standard" (truncated AP@K): AP = (1/Z) sum_{i<=K, rel_i} P@i, with
    Z = min(K, R_q) (`normalize="min_k_r"`) or Z = relevant items in the top
    K (`normalize="hits"`, 0 when there are none). AP is undefined for a
    query with R_q = 0: it is NaN per query and excluded from the mean.
K = None means K = N (the whole database).

Per-query values are computed in the same floating-point order as the
per-query loop in `retrieval_reference` (pairwise sums per query, sequential
sums over queries), so the reference semantics agree with it bit for bit.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.metrics.retrieval_reference import REFERENCE_PK_KS, REFERENCE_RADII

DIRECTIONS = ("i2t", "t2i", "i2i", "t2t")
_WORKSPACE_BYTES = 1 << 25  # per query chunk; ~26 bytes per (query, item) pair


def hamming_distance(query_codes: jax.Array, db_codes: jax.Array) -> jax.Array:
    """Hamming distances of +-1 codes via one matrix product: (b - Q D^T) / 2.

    Exact: the products are integers <= b, accumulated in float32 (exact up to
    2**24). Works under `jax.jit` and on sharded inputs.

    Args:
      query_codes: (Q, b) +-1 codes, any real dtype.
      db_codes: (N, b) +-1 codes.

    Returns:
      (Q, N) int32 distances in [0, b].
    """
    if query_codes.shape[-1] != db_codes.shape[-1]:
        raise ValueError(
            f"Code lengths differ: queries {query_codes.shape}, db {db_codes.shape}."
        )
    nbits = query_codes.shape[-1]
    dots = jnp.matmul(
        jnp.asarray(query_codes, jnp.float32),
        jnp.asarray(db_codes, jnp.float32).T,
        preferred_element_type=jnp.float32,
    )
    return ((nbits - dots) * 0.5).astype(jnp.int32)


def pack_codes(codes, name: str = "codes") -> np.ndarray:
    """Packs +-1 codes (N, b) into (N, ceil(b/64)) uint64 words (bit = code > 0)."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"{name} must be (num_items, nbits); got {codes.shape}.")
    if not np.all(np.abs(codes) == 1):
        raise ValueError(
            f"{name} must contain only -1 and +1 (binarise with "
            "np.where(x >= 0, 1, -1)); got other values."
        )
    return _pack_bool(codes > 0)


def _pack_bool(bits: np.ndarray) -> np.ndarray:
    packed = np.packbits(bits, axis=1, bitorder="little")
    pad = (-packed.shape[1]) % 8
    packed = np.pad(packed, ((0, 0), (0, pad)))
    return np.ascontiguousarray(packed).view(np.uint64)


def _pack_labels(labels, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(
            f"{name} must be multi-hot (num_items, num_classes); got {labels.shape}."
        )
    if np.any(labels < 0):
        raise ValueError(f"{name} must be non-negative (multi-hot).")
    return _pack_bool(labels != 0)


def _packed_hamming(q: np.ndarray, d: np.ndarray, nbits: int) -> np.ndarray:
    """(Qc, N) distances of packed codes by XOR + popcount, uint8 or uint16."""
    out = np.bitwise_count(q[:, None, 0] ^ d[None, :, 0])
    if nbits > 255:
        out = out.astype(np.uint16)
    for w in range(1, q.shape[1]):
        out += np.bitwise_count(q[:, None, w] ^ d[None, :, w])
    return out


def _packed_relevance(q: np.ndarray, d: np.ndarray) -> np.ndarray:
    rel = (q[:, None, 0] & d[None, :, 0]) != 0
    for w in range(1, q.shape[1]):
        rel |= (q[:, None, w] & d[None, :, w]) != 0
    return rel


def relevance(query_labels, db_labels) -> np.ndarray:
    """(Q, N) bool: query and item share at least one label (L_q . L_j > 0)."""
    return _packed_relevance(
        _pack_labels(query_labels, "query_labels"), _pack_labels(db_labels, "db_labels")
    )


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
    """Per-query statistics of one chunk of queries (see `_evaluate`)."""
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


def _cumulative_histograms(dist: np.ndarray, rel: np.ndarray, nbins: int):
    """#items and #relevant items with distance <= r, (Qc, nbins) each."""
    nq = dist.shape[0]
    key = dist.astype(np.int32)
    key <<= 1
    key |= rel
    key += (np.arange(nq, dtype=np.int32) * (2 * nbins))[:, None]
    h = np.bincount(key.reshape(-1), minlength=nq * 2 * nbins).reshape(nq, nbins, 2)
    return np.cumsum(h.sum(axis=2), axis=1), np.cumsum(h[:, :, 1], axis=1)


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
) -> dict:
    """Runs every direction over query chunks; relevance is shared by all."""
    _check_ks(map_ks, pk_ks, normalize, radii)
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
            parts[name].append(
                _chunk_stats(
                    dist, rel, map_ks, pk_ks, normalize, nbits + 1 if want_hist else 0
                )
            )
    out = {}
    for name, chunks in parts.items():
        stats = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
        out[name] = _finalize(stats, n, map_ks, pk_ks, radii, pr)
    return out


def _sequential_sum(x: np.ndarray):
    """Left-to-right sum along axis 0, as the per-query loop accumulates."""
    return np.add.accumulate(x, axis=0)[-1] if x.shape[0] else np.zeros(x.shape[1:])


def _finalize(stats, n, map_ks, pk_ks, radii, pr) -> dict:
    num_rel = stats["num_rel"]
    nq = num_rel.shape[0]
    out = {}
    for k in map_ks:
        out[f"map@{_k_name(k)}"] = float(_sequential_sum(stats[f"ref@{k}"]) / nq)
        ap = stats[f"std@{k}"]
        valid = ap[num_rel > 0]
        mean = _sequential_sum(valid) / valid.size if valid.size else np.nan
        out[f"map_trunc@{_k_name(k)}"] = float(mean)
    if pk_ks:
        k_eff = np.array([min(k, n) for k in pk_ks], dtype=np.float64)
        p = _sequential_sum(stats["pk_hits"] / k_eff) / nq
        out.update({f"p@{k}": float(v) for k, v in zip(pk_ks, p)})
    if "n_cum" in stats:
        total = stats["n_cum"].astype(np.float64)
        total += (total == 0) * 0.0001
        count = stats["r_cum"].astype(np.float64)
        skip = num_rel == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = np.where(skip[:, None], 0.0, count / total)
            rec = np.where(skip[:, None], 0.0, count / num_rel[:, None])
        prec, rec = prec.mean(axis=0), rec.mean(axis=0)
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
) -> dict:
    """All metrics of one retrieval direction in one pass over the queries.

    Items are ranked by Hamming distance with ties broken by database index;
    each query is ranked once (counting sort) and every metric derived from
    that ranking or from its per-distance histograms.

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

    Returns:
      A flat dict: "map@K" (reference semantics), "map_trunc@K" (standard),
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
    )
    out["avg"] = {
        key: (sum(np.asarray(out[d][key]) for d in DIRECTIONS) / 4)
        for key in out["i2t"]
    }
    out["avg"] = {
        k: (float(v) if np.ndim(v) == 0 else v) for k, v in out["avg"].items()
    }
    return out


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
) -> float:
    """mAP@K in the "reference" or "standard" semantics (see module docstring).

    Ties are ranked by database index. K = None means the whole database.
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
    )
    return out[("map@" if semantics == "reference" else "map_trunc@") + _k_name(k)]


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


def average_precision(
    dist,
    rel,
    k: int | None = None,
    *,
    semantics: str = "reference",
    normalize: str = "min_k_r",
) -> np.ndarray:
    """Per-query AP@K from a distance matrix and a relevance matrix.

    Args:
      dist: (Q, N) non-negative integer distances (ties ranked by index).
      rel: (Q, N) bool relevance.
      k: K, or None for all N.
      semantics: "reference" (0 for a query without relevant items) or
        "standard" (NaN for such a query).
      normalize: denominator of the standard semantics, "min_k_r" or "hits".

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
    if dist.size and (not np.issubdtype(dist.dtype, np.integer) or dist.min() < 0):
        raise ValueError("dist must hold non-negative integers.")
    key_dtype = np.uint8 if dist.max(initial=0) < 256 else np.uint16
    if dist.max(initial=0) >= 65536:
        raise ValueError("dist values must be < 65536 (Hamming distances).")
    stats = _chunk_stats(dist.astype(key_dtype), rel, (k,), (), normalize, 0)
    return stats[("ref@" if semantics == "reference" else "std@") + str(k)]
