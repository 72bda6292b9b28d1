"""Exact top-k Hamming search over millions of binary codes.

Result and tie rule: for each query, the k database items with the smallest
Hamming distance, in ascending (distance, database index) order -- ties are
broken by the smaller index, i.e. the first k items of a stable sort.

Algorithm (b-bit distances take only b + 1 values, so the database is never
sorted and no per-query heap is kept):
  1. Device pass over database chunks: XOR + popcount of packed uint32 words,
     reduced to the minimum distance m_g of each group of `group_size`
     consecutive items (uint8). Each call's (C, Q) distance block is
     transient and bounded by `max_chunk_bytes`.
  2. Device: the radius r = the k-th smallest minimum over blocks of 32
     groups (bisection on counts). At least k groups, hence k items, lie
     within r, so the k-th smallest distance is <= r.
  3. Device: bitmaps of the groups with m_g < r ("lt", fewer than 32 k) and
     m_g == r ("eq"). The answer lies in the lt groups plus the first
     k - #lt eq groups in index order: every eq group holds an item at
     distance r, so a later eq group can only hold items ranked after k.
  4. Host: exact distances of the candidate groups' items (typically <= k
     groups), the items within r, and a stable counting (radix) sort by
     (query, distance). On accelerators this step runs on the device
     instead (`device`), with the host path as the exact fallback.
Everything runs on whatever devices the inputs live on; with a `mesh`, the
database chunks (shard="db") or the queries (shard="queries") are split over
its `data` axis and jit inserts the cross-device reductions.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxcxai.checks import check_finite

# Steps 1-3 and the device step 4 (`device`), the host step 4 (`host`);
# imported here, where the search looks them up.
from jaxcxai.hashing.search.device import (
    _COUNT_BLOCK,
    _bitmaps,
    _group_minima,
    _radius,
    select_on_device,
)
from jaxcxai.hashing.search.host import _select
from jaxcxai.parallel import DATA_AXIS, to_host

_CHUNK_BYTES = 1 << 26  # transient (C, Q) uint32 distance block per call
_WORKSPACE_BYTES = 1 << 28  # group minima + candidates per query chunk
# Candidate groups gathered per query by the device selection (typically
# about k are needed; more fall back to the host path).
_DEVICE_GROUPS_PER_K = 4


def pack_words(codes) -> np.ndarray:
    """Packs +-1 (or boolean) codes (N, b) into (N, ceil(b / 32)) uint32 words.

    Bit i of a code is 1 where the code is positive (True). uint32 input is
    returned unchanged (already packed).
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be (num_items, nbits); got shape {codes.shape}.")
    if codes.dtype == np.uint32:
        return codes
    if codes.dtype != np.bool_:
        if not np.all(np.abs(codes) == 1):
            raise ValueError("codes must be +-1, boolean, or packed uint32 words.")
        codes = codes > 0
    packed = np.packbits(codes, axis=1, bitorder="little")
    packed = np.pad(packed, ((0, 0), (0, (-packed.shape[1]) % 4)))
    return np.ascontiguousarray(packed).view(np.uint32)


def plan_chunks(
    num_queries,
    num_db,
    k,
    *,
    group_size=32,
    max_chunk_bytes=_CHUNK_BYTES,
    max_workspace_bytes=_WORKSPACE_BYTES,
    num_shards=1,
):
    """Query chunk and database chunk sizes under the two memory bounds.

    A query chunk of Qc queries holds the group minima (one byte per group of
    the padded database), two group bitmaps and up to k * group_size host
    candidates (32 bytes each) per query: at most `max_workspace_bytes`. One
    device call computes a C x Qc uint32 distance block: at most
    `max_chunk_bytes`, with C a multiple of group_size * num_shards.

    Returns:
      (query_chunk, db_chunk).

    Raises:
      ValueError: if one query does not fit in `max_workspace_bytes` or one
        aligned database block of one query does not fit in
        `max_chunk_bytes`.
    """
    padded_groups = _padded_groups(num_db, group_size)
    per_query = padded_groups + padded_groups // 4 + 32 * k * group_size
    align = group_size * num_shards
    if max_workspace_bytes < per_query:
        raise ValueError(
            f"max_workspace_bytes={max_workspace_bytes} is below one query's "
            f"workspace ({per_query} bytes for N={num_db}, k={k})."
        )
    if max_chunk_bytes < 4 * align:
        raise ValueError(
            f"max_chunk_bytes={max_chunk_bytes} cannot hold one {align}-item "
            f"database block (4 bytes per distance)."
        )
    qc = min(num_queries, max_workspace_bytes // per_query)
    qc = min(qc, max_chunk_bytes // (4 * align))
    c = (max_chunk_bytes // (4 * qc)) // align * align
    return qc, min(c, -(-num_db // align) * align)


def _padded_groups(num_db, group_size):
    """Groups after padding to a multiple of 32 * 64 (coarse level counts)."""
    block = 32 * _COUNT_BLOCK
    return -(-(-(-num_db // group_size)) // block) * block


def hamming_topk(
    query_codes,
    db_codes,
    k: int,
    *,
    group_size: int | None = None,
    max_chunk_bytes: int = _CHUNK_BYTES,
    max_workspace_bytes: int = _WORKSPACE_BYTES,
    mesh: Mesh | None = None,
    shard: str = "db",
    select: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest database codes of each query in Hamming distance.

    Args:
      query_codes: (Q, b) +-1 or boolean codes, or (Q, W) packed uint32 words
        (see `pack_words`).
      db_codes: (N, b) codes in the same form; b <= 224 bits.
      k: neighbours per query, 1 <= k <= N.
      group_size: database items per group minimum, <= 32 (default: the
        largest power of two in [8, 32] with k * group_size <= 4096; below 8
        the XLA CPU group reduction is slow). Smaller groups mean fewer host
        candidates and more device memory.
      max_chunk_bytes: bound on one device call's C x Qc uint32 distances.
      max_workspace_bytes: bound on the per-query-chunk workspace.
      mesh: optional mesh whose `data` axis splits the work.
      shard: "db" (split each database chunk) or "queries".
      select: where step 4 (exact candidate selection) runs: "host"
        (NumPy), "device" (`search.device`; without a mesh only) or "auto"
        (the device on accelerators, the host on CPUs). Both are exact.

    Returns:
      distances: (Q, k) int32, ascending per row.
      indices: (Q, k) int64 database indices; ties in distance are ordered by
        index (the first k items of a stable sort by distance).

    Raises:
      NonFiniteError: float codes hold NaN or inf (names the argument and
        the count).
    """
    check_finite({"query_codes": query_codes, "db_codes": db_codes})
    q_words, db_words = pack_words(query_codes), pack_words(db_codes)
    nq, n = q_words.shape[0], db_words.shape[0]
    if q_words.shape[1] != db_words.shape[1]:
        raise ValueError(
            f"Query and database codes differ in width: {q_words.shape[1]} vs "
            f"{db_words.shape[1]} uint32 words."
        )
    if q_words.shape[1] > 7:
        raise ValueError(
            f"Codes of {32 * q_words.shape[1]} bits are not supported; at most 224 "
            "bits (the group minima are uint8 with 255 as padding)."
        )
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, N={n}]; got {k}.")
    if group_size is None:
        group_size = 1 << max(3, min(5, (4096 // k).bit_length() - 1))
    if not 1 <= group_size <= 32:
        raise ValueError(f"group_size must be in [1, 32]; got {group_size}.")
    if shard not in ("db", "queries"):
        raise ValueError(f"shard must be 'db' or 'queries'; got {shard!r}.")
    if select not in ("auto", "host", "device"):
        raise ValueError(f"select must be 'auto', 'host' or 'device'; got {select!r}.")
    if select == "device" and mesh is not None:
        raise ValueError("select='device' works without a mesh only.")
    on_device = select == "device" or (
        select == "auto" and mesh is None and jax.default_backend() != "cpu"
    )
    shards = 1 if mesh is None else mesh.shape[DATA_AXIS]
    qc, c = plan_chunks(
        nq,
        n,
        k,
        group_size=group_size,
        max_chunk_bytes=max_chunk_bytes,
        max_workspace_bytes=max_workspace_bytes,
        num_shards=shards if shard == "db" else 1,
    )
    if mesh is not None and shard == "queries":  # whole queries per device
        qc = max(shards, qc // shards * shards)
    put_q, put_db = _placers(mesh, shard)
    db_chunks = []
    for s in range(0, n, c):
        block = db_words[s : s + c]
        valid = np.arange(c) < block.shape[0]
        block = np.pad(block, ((0, c - block.shape[0]), (0, 0)))
        db_chunks.append((put_db(block), put_db(valid)))
    ng = _padded_groups(n, group_size)
    db_groups = np.pad(db_words, ((0, (-n) % group_size), (0, 0)))
    db_groups = db_groups.reshape(-1, group_size, db_words.shape[1])
    out_d = np.empty((nq, k), np.int32)
    out_i = np.empty((nq, k), np.int64)
    db_groups_dev = jnp.asarray(db_groups) if on_device else None
    for s in range(0, nq, qc):
        q_block = q_words[s : s + qc]
        q_dev = put_q(np.pad(q_block, ((0, qc - q_block.shape[0]), (0, 0))))
        minima = [_group_minima(q_dev, b, v, group=group_size) for b, v in db_chunks]
        minima = jnp.concatenate(minima, axis=0)[:ng]  # surplus rows: padding
        minima = jnp.pad(
            minima, ((0, ng - minima.shape[0]), (0, 0)), constant_values=255
        )
        radius = _radius(minima, k=k)
        m = q_block.shape[0]
        if on_device:
            d, i, overflow = select_on_device(
                radius, minima, q_dev, db_groups_dev, k=k,
                max_groups=min(_DEVICE_GROUPS_PER_K * k, db_groups.shape[0]), n=n,
            )  # fmt: skip
            if not np.any(np.asarray(overflow)[:m]):
                out_d[s : s + m], out_i[s : s + m] = (
                    np.asarray(d)[:m],
                    np.asarray(i)[:m],
                )
                continue
        # On a mesh over several hosts the bitmaps are split across them:
        # every host gathers the whole and selects the same top-k.
        lt_bits, eq_bits = _bitmaps(minima, radius)
        out_d[s : s + m], out_i[s : s + m] = _select(
            to_host(radius)[:m],
            to_host(lt_bits)[:m],
            to_host(eq_bits)[:m],
            q_block,
            db_groups,
            n,
            k,
        )
    return out_d, out_i


def _placers(mesh, shard):
    """Functions that put query and database blocks on the mesh (or device)."""
    if mesh is None:
        return jnp.asarray, jnp.asarray
    split = NamedSharding(mesh, P(DATA_AXIS))
    whole = NamedSharding(mesh, P())
    if shard == "db":
        return (lambda x: jax.device_put(x, whole)), (
            lambda x: jax.device_put(x, split)
        )
    return (lambda x: jax.device_put(x, split)), (lambda x: jax.device_put(x, whole))
