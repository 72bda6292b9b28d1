"""Exact top-k Hamming search against a brute-force stable sort."""

import jax
import numpy as np
import pytest

from jaxcxai.hashing.search import topk as search
from jaxcxai.hashing.search.topk import hamming_topk, pack_words, plan_chunks
from jaxcxai.parallel import make_mesh


def _codes(rng, n, nbits):
    return np.where(rng.random((n, nbits)) < 0.5, 1, -1).astype(np.int8)


def _brute_force(q, db, k):
    """Distances by counting differing bits; first k of a stable sort."""
    dist = (q[:, None, :] != db[None, :, :]).sum(axis=2)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, axis=1), order


def test_pack_words_bits():
    rng = np.random.default_rng(0)
    codes = _codes(rng, 5, 40)
    words = pack_words(codes)
    assert words.shape == (5, 2) and words.dtype == np.uint32
    for i in range(5):
        for j in range(40):
            assert (int(words[i, j // 32]) >> (j % 32)) & 1 == (codes[i, j] > 0)
    np.testing.assert_array_equal(pack_words(codes > 0), words)
    np.testing.assert_array_equal(pack_words(words), words)
    with pytest.raises(ValueError, match="codes must be"):
        pack_words(np.zeros((2, 8)))


@pytest.mark.parametrize(
    "nq,n,nbits,k,group",
    [
        (6, 700, 16, 37, 32),  # 16 bits: heavy ties
        (5, 500, 64, 1, 8),
        (4, 300, 40, 300, 5),  # k = N, group not a power of two
        (3, 90, 8, 20, 32),  # fewer groups than k: radius sentinel path
    ],
)
@pytest.mark.parametrize("select", ["host", "device"])
def test_topk_matches_brute_force(nq, n, nbits, k, group, select):
    rng = np.random.default_rng(nbits + k)
    q, db = _codes(rng, nq, nbits), _codes(rng, n, nbits)
    db[n // 2 :: 7] = q[0]  # exact duplicates of a query, spread over groups
    dist, idx = hamming_topk(q, db, k, group_size=group, select=select)
    ref_dist, ref_idx = _brute_force(q, db, k)
    np.testing.assert_array_equal(dist, ref_dist)
    np.testing.assert_array_equal(idx, ref_idx)


@pytest.mark.parametrize("select", ["host", "device"])
def test_all_ties_and_clusters(select, monkeypatch):
    """Every distance tied; and a clustered database (many groups below r)."""
    rng = np.random.default_rng(1)
    q = _codes(rng, 3, 32)
    db = np.repeat(_codes(rng, 1, 32), 400, axis=0)
    dist, idx = hamming_topk(q, db, 50, select=select)
    np.testing.assert_array_equal(idx, np.tile(np.arange(50), (3, 1)))
    np.testing.assert_array_equal(dist, _brute_force(q, db, 50)[0])
    # Near-duplicates of the query packed into two blocks of 32 groups: the
    # block-level radius is loose and many groups (> k) lie below it.
    db = _codes(rng, 8192, 32)
    near = np.repeat(q[:1], 256, axis=0)
    db[1000:1256] = np.where(rng.random(near.shape) < 0.2, -near, near)
    host_calls = []
    monkeypatch.setattr(
        search, "_select", lambda *a: host_calls.append(1) or select_host(*a)
    )
    monkeypatch.setattr(search, "_DEVICE_GROUPS_PER_K", 1)
    dist, idx = hamming_topk(q[:1], db, 30, group_size=4, select=select)
    ref_dist, ref_idx = _brute_force(q[:1], db, 30)
    np.testing.assert_array_equal(dist, ref_dist)
    np.testing.assert_array_equal(idx, ref_idx)
    assert len(set(ref_dist[0])) > 2
    # The device path gathers at most k candidate groups here (patched):
    # more lie below the loose radius, so it falls back to the host path.
    assert host_calls == [1]


select_host = search._select


def test_device_selection_matches_host_on_many_queries():
    rng = np.random.default_rng(4)
    q, db = _codes(rng, 40, 64), _codes(rng, 20000, 64)
    db[::997] = q[0]
    host = hamming_topk(q, db, 16, select="host")
    device = hamming_topk(q, db, 16, select="device")
    np.testing.assert_array_equal(device[0], host[0])
    np.testing.assert_array_equal(device[1], host[1])
    np.testing.assert_array_equal(host[0], _brute_force(q, db, 16)[0])
    with pytest.raises(ValueError, match="select must be"):
        hamming_topk(q, db, 16, select="gpu")


@pytest.mark.multidevice
def test_chunked_and_sharded_agree(monkeypatch):
    rng = np.random.default_rng(2)
    q, db = _codes(rng, 24, 32), _codes(rng, 3000, 32)
    ref_dist, ref_idx = _brute_force(q, db, 25)
    bounds = dict(max_chunk_bytes=4 * 8 * 512, max_workspace_bytes=1 << 18)
    qc, c = plan_chunks(24, 3000, 25, **bounds)
    assert qc < 24 and c < 3000  # several query and database chunks
    blocks = []
    kernel = search._group_minima

    def recording_kernel(q_words, db_words, valid, group):
        blocks.append(4 * q_words.shape[0] * db_words.shape[0])
        return kernel(q_words, db_words, valid, group=group)

    monkeypatch.setattr(search, "_group_minima", recording_kernel)
    runs = [hamming_topk(q, db, 25, **bounds)]
    assert len(blocks) > 6 and max(blocks) <= bounds["max_chunk_bytes"]
    assert len(jax.devices()) == 8
    mesh = make_mesh()
    runs.append(hamming_topk(q, db, 25, mesh=mesh, shard="db", **bounds))
    runs.append(hamming_topk(q, db, 25, mesh=mesh, shard="queries"))
    for dist, idx in runs:
        np.testing.assert_array_equal(dist, ref_dist)
        np.testing.assert_array_equal(idx, ref_idx)


@pytest.mark.parametrize("nq,n,k,group", [(1000, 10**6, 100, 32), (50, 3000, 7, 4)])
@pytest.mark.parametrize("chunk_bytes", [1 << 16, 1 << 22])
@pytest.mark.parametrize("shards", [1, 8])
def test_plan_chunks_respects_bounds(nq, n, k, group, chunk_bytes, shards):
    workspace = 1 << 24
    qc, c = plan_chunks(
        nq,
        n,
        k,
        group_size=group,
        max_chunk_bytes=chunk_bytes,
        max_workspace_bytes=workspace,
        num_shards=shards,
    )
    assert 4 * qc * c <= chunk_bytes
    assert c % (group * shards) == 0 and 1 <= qc <= nq
    groups = -(-n // group)
    assert qc * (groups + 32 * k * group) <= workspace
    with pytest.raises(ValueError, match="max_workspace_bytes"):
        plan_chunks(nq, n, k, group_size=group, max_workspace_bytes=groups)
    with pytest.raises(ValueError, match="max_chunk_bytes"):
        plan_chunks(nq, n, k, group_size=group, max_chunk_bytes=4 * group - 1)


def test_argument_errors():
    rng = np.random.default_rng(3)
    q, db = _codes(rng, 2, 32), _codes(rng, 10, 32)
    with pytest.raises(ValueError, match="k must be"):
        hamming_topk(q, db, 11)
    with pytest.raises(ValueError, match="differ in width"):
        hamming_topk(_codes(rng, 2, 64), db, 3)
    with pytest.raises(ValueError, match="224 bits"):
        hamming_topk(_codes(rng, 2, 256), _codes(rng, 10, 256), 3)
