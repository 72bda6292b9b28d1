"""Literal per-query NumPy port of the DUCH/CHNR retrieval metrics.

This is the test oracle and the benchmark baseline for `metrics.retrieval`,
not the code to call for evaluation. It follows the reference `utils.py`
(comrados/duch and comrados/noisy_captions, identical in both) step by step:
one Python iteration per query, a full sort of the query's Hamming
distances, and `p_top_k` re-sorting inside its K loop. The only deliberate
change is the sort: the reference's `torch.sort` is not stable, so its order
inside tied distances is arbitrary; here every sort is `kind="stable"`,
i.e. ties are ranked by database index.

Codes are +-1 (the reference applies `sign` first); labels are multi-hot and
an item is relevant to a query when they share at least one label.
"""

import numpy as np

# The K list of the reference `p_top_k` (1, 5, 10, 20, 50, 100, 200, ..., 1000).
REFERENCE_PK_KS = (1, 5, 10, 20, 50) + tuple(range(100, 1001, 100))
# Radii at which the reference logs "mAP HR" (`calc_map_rad`).
REFERENCE_RADII = (0, 1, 2, 3, 4, 5)


def calc_hamming_dist(b1: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """Hamming distances 0.5 * (nbits - B1 @ B2.T) of +-1 codes.

    Args:
      b1: (nbits,) or (Q, nbits) +-1 codes.
      b2: (N, nbits) +-1 codes.

    Returns:
      (1, N) or (Q, N) float64 distances.
    """
    nbits = b2.shape[1]
    b1 = np.atleast_2d(np.asarray(b1, np.float64))
    return 0.5 * (nbits - b1 @ np.asarray(b2, np.float64).T)


def _ground_truth(query_label: np.ndarray, retrieval_label: np.ndarray) -> np.ndarray:
    """(N,) float64 relevance of one query: shares at least one label."""
    return (query_label @ retrieval_label.T > 0).astype(np.float64)


def calc_map_k(
    qb: np.ndarray,
    rb: np.ndarray,
    query_label: np.ndarray,
    retrieval_label: np.ndarray,
    k: int | None = None,
) -> float:
    """Reference mAP@K (`calc_map_k`): not truncated at K, normalised by min(K, R).

    For each query: sort all database items by distance (stable), take the
    1-based ranks p_1 < p_2 < ... of the relevant items in the full list, keep
    the first T = min(K, R_q), and average m / p_m over m = 1..T. Queries with
    no relevant item add 0 but still count in the denominator.

    Args:
      qb: (Q, nbits) +-1 query codes.
      rb: (N, nbits) +-1 database codes.
      query_label: (Q, C) multi-hot query labels.
      retrieval_label: (N, C) multi-hot database labels.
      k: K, or None for all database items.

    Returns:
      The mean over all Q queries.
    """
    num_query = query_label.shape[0]
    if k is None:
        k = retrieval_label.shape[0]
    total_ap = 0.0
    for it in range(num_query):
        gnd = _ground_truth(query_label[it], retrieval_label)
        tsum = np.sum(gnd)
        if tsum == 0:
            continue
        hamm = calc_hamming_dist(qb[it, :], rb)[0]
        ind = np.argsort(hamm, kind="stable")
        gnd = gnd[ind]
        total = min(k, int(tsum))
        count = np.arange(1, total + 1, dtype=np.float64)
        tindex = np.nonzero(gnd)[0][:total] + 1.0
        total_ap += np.mean(count / tindex)
    return total_ap / num_query


def p_top_k(
    qb: np.ndarray,
    rb: np.ndarray,
    query_label: np.ndarray,
    retrieval_label: np.ndarray,
    ks=REFERENCE_PK_KS,
) -> np.ndarray:
    """Reference P@K (`p_top_k`): k = min(K, N); re-sorts for every K.

    Returns:
      (len(ks),) mean precision over all queries; queries with no relevant
      item add 0.
    """
    num_query = query_label.shape[0]
    p = np.zeros(len(ks))
    for it in range(num_query):
        gnd = _ground_truth(query_label[it], retrieval_label)
        tsum = np.sum(gnd)
        if tsum == 0:
            continue
        hamm = calc_hamming_dist(qb[it, :], rb)[0]
        for i, k in enumerate(ks):
            total = min(k, retrieval_label.shape[0])
            ind = np.argsort(hamm, kind="stable")[:total]
            p[i] += gnd[ind].sum() / total
    return p / num_query


def pr_curve(
    qb: np.ndarray,
    rb: np.ndarray,
    query_label: np.ndarray,
    retrieval_label: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference precision-recall over Hamming radius r = 0..nbits (`pr_curve`).

    P_r = TP(d <= r) / #(d <= r) with a zero count replaced by 1e-4, and
    R_r = TP(d <= r) / R_q; both averaged over all queries, queries with no
    relevant item adding 0.

    Returns:
      precision, recall: (nbits + 1,) arrays.
    """
    num_query, num_bit = qb.shape
    radii = np.arange(num_bit + 1, dtype=np.float64).reshape(-1, 1)
    prec = np.zeros((num_query, num_bit + 1))
    rec = np.zeros((num_query, num_bit + 1))
    for i in range(num_query):
        gnd = _ground_truth(query_label[i], retrieval_label)
        tsum = np.sum(gnd)
        if tsum == 0:
            continue
        hamm = calc_hamming_dist(qb[i, :], rb)
        tmp = (hamm <= radii).astype(np.float64)
        total = tmp.sum(axis=-1)
        total = total + (total == 0) * 0.0001
        count = (gnd * tmp).sum(axis=-1)
        prec[i] = count / total
        rec[i] = count / tsum
    return prec.mean(axis=0), rec.mean(axis=0)


def calc_map_rad(
    qb: np.ndarray,
    rb: np.ndarray,
    query_label: np.ndarray,
    retrieval_label: np.ndarray,
    radii=REFERENCE_RADII,
) -> np.ndarray:
    """Reference "mAP HR": mean precision within Hamming radius r (`calc_map_rad`).

    Returns:
      (len(radii),) the P_r of `pr_curve` at each radius.
    """
    prec, _ = pr_curve(qb, rb, query_label, retrieval_label)
    return prec[np.asarray(radii)]
