"""Retrieval metrics against the per-query loop port and brute force."""

import jax
import numpy as np
import pytest

from jaxcxai.metrics import retrieval as rt
from jaxcxai.metrics.retrieval import hamming as rt_hamming
from jaxcxai.metrics.retrieval import ranking as rt_ranking
from jaxcxai.metrics.retrieval import reference as ref


def _data(seed, nq=40, n=300, nbits=8, classes=6, p=0.15):
    """Random +-1 codes (few bits: many ties) and multi-hot labels.

    Some query label rows are all zero, so those queries have no relevant item.
    """
    rng = np.random.default_rng(seed)
    qb = np.where(rng.random((nq, nbits)) < 0.5, 1.0, -1.0)
    db = np.where(rng.random((n, nbits)) < 0.5, 1.0, -1.0)
    ql = (rng.random((nq, classes)) < p).astype(np.float64)
    dl = (rng.random((n, classes)) < p).astype(np.float64)
    ql[:3] = 0.0
    return qb, db, ql, dl


def _ranked(qb, db, ql, dl):
    """Brute force: bit-count distances, relevance, stable ranking per query."""
    dist = (qb[:, None, :] != db[None, :, :]).sum(axis=2)
    rel = (ql[:, None, :] * dl[None, :, :]).sum(axis=2) > 0
    order = np.argsort(dist, axis=1, kind="stable")
    return dist, rel, np.take_along_axis(rel, order, axis=1)


def test_hamming_distance_matches_bit_count():
    qb, db, _, _ = _data(0, nbits=48)
    dist, _, _ = _ranked(qb, db, np.ones((40, 1)), np.ones((300, 1)))
    np.testing.assert_array_equal(rt.hamming_distance(qb, db), dist)
    np.testing.assert_array_equal(jax.jit(rt.hamming_distance)(qb, db), dist)
    bits = rt.pack_codes(qb)
    np.testing.assert_array_equal(
        rt_hamming._packed_hamming(bits, rt.pack_codes(db), 48), dist
    )


def test_relevance_is_shared_label():
    _, _, ql, dl = _data(1, classes=70)  # two 64-bit label words
    expected = np.array([[np.any((a > 0) & (b > 0)) for b in dl] for a in ql])
    np.testing.assert_array_equal(rt.relevance(ql, dl), expected)


@pytest.mark.parametrize("seed,nbits,p", [(2, 8, 0.15), (3, 16, 0.05), (4, 4, 0.4)])
def test_reference_map_equals_loop_port_exactly(seed, nbits, p):
    qb, db, ql, dl = _data(seed, nbits=nbits, p=p)
    ks = (1, 5, 20, 300, 307, None)
    out = rt.retrieval_metrics(
        qb, db, ql, dl, map_ks=ks, query_chunk=7, ties="reference"
    )
    for k in ks:
        expected = ref.calc_map_k(qb, db, ql, dl, k)
        assert out[f"map@{rt_ranking._k_name(k)}"] == expected, k
    assert rt.mean_average_precision(
        qb, db, ql, dl, 20, ties="reference"
    ) == ref.calc_map_k(qb, db, ql, dl, 20)


def test_reference_map_rare_relevance_deep_prefix():
    """The 20th relevant item lies beyond the first ranked block (prefix grows)."""
    qb, db, ql, dl = _data(10, nq=8, n=8000, nbits=12, classes=20, p=0.02)
    out = rt.retrieval_metrics(
        qb, db, ql, dl, map_ks=(20,), pk_ks=(), radii=(), ties="reference"
    )
    assert out["map@20"] == ref.calc_map_k(qb, db, ql, dl, 20)
    _, _, ranked = _ranked(qb, db, ql, dl)
    twentieth = [np.flatnonzero(r)[19] for r in ranked if r.sum() >= 20]
    assert max(twentieth) > 1024


def _standard_ap(rs, k, normalize):
    """Truncated AP@K of one ranked relevance vector, written out directly."""
    total = rs.sum()
    if total == 0:
        return np.nan
    k = len(rs) if k is None else min(k, len(rs))
    hits, acc = 0, 0.0
    for i in range(k):
        if rs[i]:
            hits += 1
            acc += hits / (i + 1)
    z = min(k, total) if normalize == "min_k_r" else hits
    return acc / z if z else 0.0


@pytest.mark.parametrize("normalize", ["min_k_r", "hits"])
def test_standard_map_matches_brute_force(normalize):
    qb, db, ql, dl = _data(5, p=0.08)
    _, _, ranked = _ranked(qb, db, ql, dl)
    for k in (1, 10, 50, None):
        ap = np.array([_standard_ap(r, k, normalize) for r in ranked])
        assert np.isnan(ap[:3]).all()  # queries without relevant items
        got = rt.mean_average_precision(
            qb, db, ql, dl, k, semantics="standard", normalize=normalize, ties="index"
        )
        np.testing.assert_allclose(got, np.nanmean(ap), rtol=1e-12)


def test_precision_at_k_and_pr_curve():
    qb, db, ql, dl = _data(6)
    dist, rel, ranked = _ranked(qb, db, ql, dl)
    ks = (1, 5, 17, 300, 1000)
    expected = [ranked[:, : min(k, 300)].sum(1).mean() / min(k, 300) for k in ks]
    got = rt.precision_at_k(qb, db, ql, dl, ks, ties="reference")
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_array_equal(got, ref.p_top_k(qb, db, ql, dl, ks))
    prec, rec = rt.pr_curve(qb, db, ql, dl)
    has_rel = rel.sum(1) > 0
    for r in range(9):
        within = dist <= r
        tp = (within & rel).sum(1)
        p_r = np.where(has_rel, tp / np.maximum(within.sum(1), 1), 0.0)
        r_r = np.where(has_rel, tp / np.maximum(rel.sum(1), 1), 0.0)
        np.testing.assert_allclose([prec[r], rec[r]], [p_r.mean(), r_r.mean()])
    ref_p, ref_r = ref.pr_curve(qb, db, ql, dl)
    np.testing.assert_array_equal(prec, ref_p)
    np.testing.assert_array_equal(rec, ref_r)
    np.testing.assert_array_equal(
        rt.precision_within_radius(qb, db, ql, dl, (0, 2, 5)), ref_p[[0, 2, 5]]
    )


def test_average_precision_hand_examples():
    # The reference `calc_map_k` example: K=2, relevance by rank [1, 0, 0, 0, 1].
    dist = np.array([[0, 1, 2, 3, 4]])
    rel = np.array([[1, 0, 0, 0, 1]], bool)
    assert rt.average_precision(dist, rel, 2)[0] == pytest.approx(0.7)
    std = rt.average_precision(dist, rel, 2, semantics="standard")
    hits = rt.average_precision(dist, rel, 2, semantics="standard", normalize="hits")
    assert (std[0], hits[0]) == (0.5, 1.0)
    # Ties are ranked by database index: item 1 (relevant) is second.
    tied = rt.average_precision(
        np.array([[1, 1, 1]]), np.array([[0, 1, 0]], bool), ties="index"
    )
    assert tied[0] == 0.5
    none = np.zeros((1, 3), bool)
    assert rt.average_precision(np.zeros((1, 3), int), none)[0] == 0.0
    std_none = rt.average_precision(np.zeros((1, 3), int), none, semantics="standard")
    assert np.isnan(std_none[0])


def test_cross_modal_directions_and_average():
    qi, di, ql, dl = _data(7, nbits=16)
    qt, dt, _, _ = _data(8, nbits=16)
    kw = dict(map_ks=(5, None), pk_ks=(1, 10), radii=(0, 3))
    out = rt.cross_modal_metrics(qi, qt, di, dt, ql, dl, **kw)
    pairs = {"i2t": (qi, dt), "t2i": (qt, di), "i2i": (qi, di), "t2t": (qt, dt)}
    for name, (q, d) in pairs.items():
        single = rt.retrieval_metrics(q, d, ql, dl, **kw)
        assert single.keys() == out[name].keys()
        for key, value in single.items():
            np.testing.assert_array_equal(out[name][key], value)
    for key in out["avg"]:
        mean = np.mean([out[name][key] for name in pairs], axis=0)
        np.testing.assert_allclose(out["avg"][key], mean, rtol=1e-12)


def test_input_errors():
    qb, db, ql, dl = _data(9)
    with pytest.raises(ValueError, match="-1 and \\+1"):
        rt.retrieval_metrics(qb * 0.5, db, ql, dl)
    with pytest.raises(ValueError, match="non-negative"):
        rt.retrieval_metrics(qb, db, -ql, dl)
    with pytest.raises(ValueError, match="query labels"):
        rt.retrieval_metrics(qb, db, ql[:-1], dl)
    with pytest.raises(ValueError, match="positive integers"):
        rt.retrieval_metrics(qb, db, ql, dl, map_ks=(0,))
    with pytest.raises(ValueError, match="semantics"):
        rt.mean_average_precision(qb, db, ql, dl, semantics="trec")


def test_eval_script_writes_tables_and_plot(tmp_path):
    from eval import retrieval as script

    qi, di, ql, dl = _data(11, nbits=16)
    qt, dt, _, _ = _data(12, nbits=16)
    path = tmp_path / "codes.npz"
    np.savez(
        path,
        query_image=qi * 0.3,
        query_text=qt,
        db_image=di,
        db_text=dt,
        query_labels=ql,
        db_labels=dl,
    )
    out = tmp_path / "out"
    results = script.main(
        ["--codes", str(path), "--out", str(out), "--map-k", "20", "all", "--binarize"]
    )
    import json

    saved = json.loads((out / "retrieval_metrics.json").read_text())
    assert set(saved) == {"i2t", "t2i", "i2i", "t2t", "avg"}
    expected = rt.cross_modal_metrics(qi, qt, di, dt, ql, dl, map_ks=(20, None))
    for d in saved:
        assert saved[d]["map@20"] == expected[d]["map@20"] == results[d]["map@20"]
        assert saved[d]["map@all"] == expected[d]["map@all"]
        assert len(saved[d]["pr_precision"]) == 17
    assert "| map_trunc@20 |" in (out / "retrieval_metrics.md").read_text()
    assert (out / "pr_curve.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(KeyError, match="lacks"):
        np.savez(tmp_path / "bad.npz", query_codes=qi)
        script.main(
            ["--codes", str(tmp_path / "bad.npz"), "--out", str(out), "--debug"]
        )
