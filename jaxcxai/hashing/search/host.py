"""Step 4 of `search.hamming_topk` on the host (NumPy): exact distances of
the candidate groups' items and a stable radix sort by (query, distance).
The default on CPUs, and the exact fallback of the device selection.
"""

import numpy as np

__all__ = []


def _set_bits(words: np.ndarray):
    """(row, bit position) of every set bit of (R, W) uint32, row-major order."""
    octets = words.view(np.uint8)  # little-endian: byte j holds bits 8j..8j+7
    rows, cols = np.nonzero(octets)
    bits = np.unpackbits(octets[rows, cols][:, None], axis=1, bitorder="little")
    idx, bit = np.nonzero(bits)
    return rows[idx], cols[idx] * 8 + bit


def _select(radius, lt_bits, eq_bits, q_words, db_groups, n, k):
    """Exact top-k among the candidate groups, on the host (see module doc).

    Args:
      radius: (Q,) the device radius r; at least k candidates lie within it.
      lt_bits, eq_bits: (Q, G / 32) uint32 group bitmaps.
      q_words: (Q, W) packed queries.
      db_groups: (G, group, W) packed database, zero-padded to whole groups.
      n: number of real database items.
      k: neighbours per query.
    """
    nq, group = q_words.shape[0], db_groups.shape[1]
    rows, groups = _set_bits(lt_bits | eq_bits)
    is_eq = ((eq_bits[rows, groups // 32] >> (groups % 32).astype(np.uint32)) & 1) == 1
    n_lt = np.bincount(rows[~is_eq], minlength=nq)
    eq_rows = rows[is_eq]
    eq_count = np.bincount(eq_rows, minlength=nq)
    eq_rank = np.arange(eq_rows.size) - (np.cumsum(eq_count) - eq_count)[eq_rows]
    keep = np.ones(rows.shape, bool)
    keep[is_eq] = eq_rank < (k - n_lt)[eq_rows]
    keep &= groups < db_groups.shape[0]  # padding groups (radius 255) come last
    rows, groups = rows[keep], groups[keep]  # (query, group) order
    if q_words.shape[1] % 2 == 0:  # 64-bit words: half the XOR/popcount work
        q_words, db_groups = q_words.view(np.uint64), db_groups.view(np.uint64)
    counts = np.bitwise_count(db_groups[groups] ^ q_words[rows][:, None, :])
    dist = counts[:, :, 0]
    for w in range(1, counts.shape[2]):
        dist += counts[:, :, w]  # uint8: at most 224 bits
    # Only items within the radius can rank in the top k (>= k of them do).
    member, offset = np.nonzero(dist <= np.asarray(radius, np.uint8)[rows][:, None])
    items = groups[member] * group + offset  # still (query, index) order
    rows, dist = rows[member], dist[member, offset]
    real = items < n  # zero padding of the last group
    rows, dist, items = rows[real], dist[real], items[real]
    # A stable radix sort on the uint16 key (query, distance) then gives
    # (query, distance, index) order.
    nvals = 32 * q_words.shape[1] * q_words.dtype.itemsize // 4 + 1
    per_batch = max(1, 65535 // nvals)
    counts = np.bincount(rows, minlength=nq)
    starts = np.cumsum(counts) - counts
    out_d = np.empty((nq, k), np.int32)
    out_i = np.empty((nq, k), np.int64)
    for s in range(0, nq, per_batch):
        e = min(nq, s + per_batch)
        lo, hi = starts[s], starts[e - 1] + counts[e - 1]
        key = (rows[lo:hi] - s).astype(np.uint16) * np.uint16(nvals) + dist[lo:hi]
        take = (starts[s:e] - lo)[:, None] + np.arange(k)
        order = np.argsort(key, kind="stable")[take]
        out_d[s:e] = dist[lo:hi][order]
        out_i[s:e] = items[lo:hi][order]
    return out_d, out_i
