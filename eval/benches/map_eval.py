"""`map_eval`: cross-modal Hamming-ranking evaluation, ours vs the per-query loop.

Setting: 2,000 queries x 20,000 database items, 64-bit codes, 24 classes
(random multi-hot labels), four directions (I->T, T->I, I->I, T->T). Metrics:
mAP@20 in the reference (DUCH `calc_map_k`) and the standard truncated
semantics, P@K for the reference K list, the PR curve over radius 0..64 and
precision within radius 0..5.

Ours: `jaxcxai.metrics.retrieval.cross_modal_metrics` (counting-sort ranking,
histograms, all metrics from one ranking per query). Baseline: the literal
per-query loops of `metrics.retrieval.reference` (full sort per query, P@K re-sorting
per K) plus a per-query loop for the standard AP@20, all with a stable sort.
Agreement: every value identical (ours runs with `ties="reference"`: the
same tie rule, database index). Extra: the time of the same evaluation with
the tie-aware expected values (`ties="expected"`, the library default) and
how far its mAP@20 lies from the index-order one.
Quick mode uses 120 queries (the loops take ~40 ms per query and direction).
"""

import time

import numpy as np

from jaxcxai.metrics import retrieval
from jaxcxai.metrics.retrieval import reference as retrieval_reference

NBITS, CLASSES, K = 64, 24, 20


def make_data(num_query: int, num_db: int, seed: int = 0) -> dict:
    """Image codes, text codes (image codes with 20 % bits flipped), labels."""
    rng = np.random.default_rng(seed)

    def codes(n):
        return np.where(rng.random((n, NBITS)) < 0.5, 1, -1).astype(np.int8)

    def noisy(c):
        return np.where(rng.random(c.shape) < 0.2, -c, c).astype(np.int8)

    qi, di = codes(num_query), codes(num_db)
    return {
        "query_image": qi,
        "query_text": noisy(qi),
        "db_image": di,
        "db_text": noisy(di),
        "query_labels": (rng.random((num_query, CLASSES)) < 0.1).astype(np.float32),
        "db_labels": (rng.random((num_db, CLASSES)) < 0.1).astype(np.float32),
    }


def standard_map_loop(qb, rb, query_label, retrieval_label, k):
    """Per-query loop of the truncated AP@K, normalised by min(K, R_q).

    Queries without a relevant item are skipped (AP undefined), as
    `retrieval.mean_average_precision(..., semantics="standard")` does.
    """
    total, count = 0.0, 0
    for i in range(query_label.shape[0]):
        gnd = (query_label[i] @ retrieval_label.T > 0).astype(np.float64)
        tsum = gnd.sum()
        if tsum == 0:
            continue
        hamm = retrieval_reference.calc_hamming_dist(qb[i], rb)[0]
        gnd = gnd[np.argsort(hamm, kind="stable")][:k]
        hits = np.nonzero(gnd)[0] + 1.0
        prec = np.arange(1, hits.size + 1, dtype=np.float64) / hits
        total += np.sum(prec) / min(k, tsum) if hits.size else 0.0
        count += 1
    return total / count


def _baseline(data) -> dict:
    ql, dl = data["query_labels"], data["db_labels"]
    pairs = {
        "i2t": (data["query_image"], data["db_text"]),
        "t2i": (data["query_text"], data["db_image"]),
        "i2i": (data["query_image"], data["db_image"]),
        "t2t": (data["query_text"], data["db_text"]),
    }
    out = {}
    for name, (q, d) in pairs.items():
        q, d = q.astype(np.float64), d.astype(np.float64)
        prec, rec = retrieval_reference.pr_curve(q, d, ql, dl)
        out[name] = {
            f"map@{K}": retrieval_reference.calc_map_k(q, d, ql, dl, K),
            f"map_trunc@{K}": standard_map_loop(q, d, ql, dl, K),
            "p@k": retrieval_reference.p_top_k(q, d, ql, dl),
            "pr_precision": prec,
            "pr_recall": rec,
        }
    return out


def _ours(data, ties: str = "reference") -> dict:
    return retrieval.cross_modal_metrics(
        data["query_image"],
        data["query_text"],
        data["db_image"],
        data["db_text"],
        data["query_labels"],
        data["db_labels"],
        map_ks=(K,),
        ties=ties,
    )


def _compare(ours, base) -> dict:
    worst = 0.0
    identical = True
    for name, b in base.items():
        o = ours[name]
        pk = np.array([o[f"p@{k}"] for k in retrieval_reference.REFERENCE_PK_KS])
        pairs = [
            (o[f"map@{K}"], b[f"map@{K}"]),
            (o[f"map_trunc@{K}"], b[f"map_trunc@{K}"]),
            (pk, b["p@k"]),
            (o["pr_precision"], b["pr_precision"]),
            (o["pr_recall"], b["pr_recall"]),
            (
                np.array([o[f"prec_radius@{r}"] for r in range(6)]),
                b["pr_precision"][:6],
            ),
        ]
        for a, c in pairs:
            identical &= bool(np.array_equal(a, c))
            worst = max(worst, float(np.max(np.abs(np.asarray(a) - np.asarray(c)))))
    return {"identical": identical, "max_abs_diff": worst}


def run(quick: bool) -> dict:
    num_query, num_db = (120 if quick else 2000), 20000
    data = make_data(num_query, num_db)
    _ours(make_data(16, 256, seed=1))  # warm-up of code paths
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        ours = _ours(data)
        times.append(time.perf_counter() - t0)
    expected_times = []
    for _ in range(3):
        t0 = time.perf_counter()
        expected = _ours(data, ties="expected")
        expected_times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    base = _baseline(data)
    baseline_s = time.perf_counter() - t0
    agreement = _compare(ours, base)
    return {
        "ours_s": min(times),
        "baseline": "per-query NumPy loops of the reference calc_map_k, p_top_k, "
        "pr_curve + standard AP@20 loop (stable sort), 4 directions",
        "baseline_s": baseline_s,
        "agreement": agreement,
        "agreement_ok": agreement["identical"],
        "params": {
            "num_query": num_query,
            "num_db": num_db,
            "nbits": NBITS,
            "classes": CLASSES,
            "map_k": K,
            "pk_ks": list(retrieval_reference.REFERENCE_PK_KS),
            "directions": 4,
            "ours_queries_per_s": 4 * num_query / min(times),
            "baseline_queries_per_s": 4 * num_query / baseline_s,
            "map@20_avg": ours["avg"][f"map@{K}"],
        },
        "extra": {
            "expected_ties_s": min(expected_times),
            "expected_map@20_avg": expected["avg"][f"map@{K}"],
            "expected_minus_index_map@20_avg": expected["avg"][f"map@{K}"]
            - ours["avg"][f"map@{K}"],
        },
    }
