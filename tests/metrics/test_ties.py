"""Tie-aware expected AP@K and P@K. Oracles: every order of every tie group
enumerated, the metrics written out on each ranked list (float64); exact
rational expectations (negative-hypergeometric law of the j-th relevant
item's place) for large groups; the reference loop under permuted databases.
"""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from jaxcxai.metrics import retrieval as rt
from jaxcxai.metrics.retrieval import reference as ref
from jaxcxai.metrics.retrieval.precision import query_precision

# (semantics, normalize) of the library, and the oracle's name of that metric.
VARIANTS = [("reference", "min_k_r", "reference"), ("standard", "min_k_r", "min_k_r")]
VARIANTS += [("standard", "hits", "hits")]


def _tie_orders(d):
    """Every ranking of one query: groups by distance, all orders within each."""
    groups = [np.flatnonzero(d == v) for v in np.unique(d)]
    perms = [np.array(list(itertools.permutations(g))) for g in groups]
    pick = np.array(list(itertools.product(*[range(len(p)) for p in perms])))
    return np.concatenate([p[pick[:, i]] for i, p in enumerate(perms)], axis=1)


def _metrics(rs, k, kind):
    """A metric of each ranked relevance row rs (M, N), straight from its text."""
    n = rs.shape[1]
    kk = n if k is None else min(k, n)
    hits = np.cumsum(rs, axis=1)
    terms = rs * hits / np.arange(1, n + 1)  # rel_i * P@i
    total = rs.sum(axis=1)
    if kind == "p":
        return hits[:, kk - 1] / kk
    if kind == "reference":  # first min(K, R) relevant items, full list
        t = np.minimum(kk, total)
        return (terms * (hits <= t[:, None])).sum(1) / np.maximum(t, 1)
    num = terms[:, :kk].sum(axis=1)
    z = np.minimum(kk, total) if kind == "min_k_r" else hits[:, kk - 1]
    ap = np.where(z > 0, num / np.maximum(z, 1), 0.0)
    return np.where(total > 0, ap, np.nan)


def _all_rankings(dist, rel):
    """Per query, (M, N) ranked relevance of each of its M tie orders."""
    return [r[_tie_orders(d)] for d, r in zip(dist, rel)]


def _brute(dist, rel, k, kind, rankings=None):
    """(Q,) mean of the metric over all tie orders of each query."""
    rankings = rankings or _all_rankings(dist, rel)
    return np.array([_metrics(rs, k, kind).mean() for rs in rankings])


def _small_case(seed, n=7, values=2, nq=6):
    """n items, few distance values (large tie groups), an empty query."""
    rng = np.random.default_rng(seed)
    dist = rng.integers(0, values, size=(nq, n))
    rel = rng.random((nq, n)) < rng.uniform(0.2, 0.7, size=(nq, 1))
    rel[0] = False
    rel[1] = True
    return dist, rel


def test_oracle_matches_reference_loops_on_index_order():
    # The brute-force metric text agrees with the reference port and the
    # library's index semantics on the stable order, so it is a fair oracle.
    dist, rel = _small_case(0)
    ranked = np.take_along_axis(rel, np.argsort(dist, 1, kind="stable"), 1)
    for semantics, normalize, kind in VARIANTS:
        for k in (1, 3, None):
            got = _metrics(ranked, k, kind)
            lib = rt.average_precision(
                dist, rel, k, semantics=semantics, normalize=normalize, ties="index"
            )
            np.testing.assert_allclose(got, lib, rtol=1e-14, equal_nan=True)


@pytest.mark.parametrize("seed,n,values", [(1, 7, 2), (2, 8, 3), (3, 8, 1), (4, 6, 2)])
def test_expected_ap_and_pk_equal_average_over_all_tie_orders(seed, n, values):
    dist, rel = _small_case(seed, n, values)
    rankings = _all_rankings(dist, rel)
    assert max(len(rs) for rs in rankings) >= 24  # a tie group of 4 or more
    for k in (1, 3, None):
        for semantics, normalize, kind in VARIANTS:
            got = rt.average_precision(
                dist, rel, k, semantics=semantics, normalize=normalize, ties="expected"
            )
            want = _brute(dist, rel, k, kind, rankings)
            np.testing.assert_allclose(
                got, want, rtol=1e-12, atol=1e-15, equal_nan=True
            )
        kp = dist.shape[1] if k is None else k
        got = query_precision(dist, rel, (kp,))[:, 0]
        np.testing.assert_allclose(got, _brute(dist, rel, kp, "p", rankings))


def _codes_case(seed, nq=7, n=8, nbits=3):
    """+-1 codes with 3 bits (distances 0..3: ties everywhere) and labels."""
    rng = np.random.default_rng(seed)
    qb = np.where(rng.random((nq, nbits)) < 0.5, 1.0, -1.0)
    db = np.where(rng.random((n, nbits)) < 0.5, 1.0, -1.0)
    ql = (rng.random((nq, 3)) < 0.4).astype(np.float64)
    dl = (rng.random((n, 3)) < 0.4).astype(np.float64)
    ql[0] = 0.0  # a query with no relevant item
    ql[1] = 1.0
    dist = (qb[:, None] != db[None]).sum(2)
    rel = (ql @ dl.T) > 0
    return (qb, db, ql, dl), dist, rel


@pytest.mark.parametrize("no_relevant", [None, "zero", "exclude"])
def test_retrieval_metrics_expected_means_and_no_relevant_convention(no_relevant):
    args, dist, rel = _codes_case(5)
    has_rel = rel.any(axis=1)
    assert not has_rel.all() and has_rel.any()
    out = rt.retrieval_metrics(
        *args, map_ks=(1, 3, None), pk_ks=(1, 3, 8), radii=(0, 1), query_chunk=3,
        no_relevant=no_relevant,
    )  # fmt: skip

    def mean(per_query, default):
        mode = no_relevant or default
        if mode == "exclude":
            return np.mean(per_query[has_rel])
        return np.mean(np.where(has_rel, per_query, 0.0))

    for k in (1, 3, None):
        name = "all" if k is None else str(k)
        ref_ap = _brute(dist, rel, k, "reference")
        std_ap = _brute(dist, rel, k, "min_k_r")
        assert out[f"map@{name}"] == pytest.approx(mean(ref_ap, "zero"), rel=1e-12)
        assert out[f"map_trunc@{name}"] == pytest.approx(
            mean(std_ap, "exclude"), rel=1e-12
        )
    for k in (1, 3, 8):
        assert out[f"p@{k}"] == pytest.approx(mean(_brute(dist, rel, k, "p"), "zero"))
    within = dist <= 1
    prec = (within & rel).sum(1) / np.maximum(within.sum(1), 1)
    assert out["prec_radius@1"] == pytest.approx(mean(prec, "zero"), rel=1e-12)
    # The two conventions really differ on this case.
    if no_relevant == "exclude":
        zero = rt.retrieval_metrics(*args, map_ks=(3,), no_relevant="zero")
        assert zero["map@3"] < out["map@3"] and zero["p@1"] < out["p@1"]


def test_mean_functions_and_cross_modal_pass_ties_through():
    args, dist, rel = _codes_case(6, nq=9)
    exp = np.where(rel.any(1), _brute(dist, rel, 3, "reference"), 0.0).mean()
    assert rt.mean_average_precision(*args, 3) == pytest.approx(exp, rel=1e-12)
    std = rt.mean_average_precision(*args, 3, semantics="standard", ties="expected")
    assert std == pytest.approx(np.nanmean(_brute(dist, rel, 3, "min_k_r")))
    p = rt.precision_at_k(*args, (2,), no_relevant="exclude")[0]
    assert p == pytest.approx(np.mean(_brute(dist, rel, 2, "p")[rel.any(1)]))
    qb, db, ql, dl = args
    kw = dict(map_ks=(3,), pr_curve=False)
    for ties in ("expected", "index"):
        cm = rt.cross_modal_metrics(qb, qb, db, db, ql, dl, ties=ties, **kw)
        assert cm["i2t"] == rt.retrieval_metrics(qb, db, ql, dl, ties=ties, **kw)
    assert cm["i2t"]["map@3"] != rt.retrieval_metrics(qb, db, ql, dl, **kw)["map@3"]


def test_expected_equals_index_without_ties():
    rng = np.random.default_rng(7)
    dist = np.array([rng.permutation(300) for _ in range(9)])  # all distinct
    rel = rng.random((9, 300)) < 0.3
    rel[0] = False
    for semantics, normalize, _ in VARIANTS:
        for k in (1, 5, 170, None):
            kw = dict(semantics=semantics, normalize=normalize)
            np.testing.assert_allclose(
                rt.average_precision(dist, rel, k, ties="expected", **kw),
                rt.average_precision(dist, rel, k, ties="index", **kw),
                rtol=1e-13,
                equal_nan=True,
            )
    ks = (1, 5, 170)
    np.testing.assert_allclose(
        query_precision(dist, rel, ks), query_precision(dist, rel, ks, ties="index")
    )


def _exact_group(s, c, n, r, j_max, m):
    """E[sum_{j <= j_max, p_j <= m} (c + j) / (s + p_j)] for a random order of
    a group of n items, r relevant: the j-th relevant item is at place i with
    probability C(i-1, j-1) C(n-i, r-j) / C(n, r)."""
    total = Fraction(0)
    for j in range(1, j_max + 1):
        for i in range(j, min(m, n - r + j) + 1):
            w = math.comb(i - 1, j - 1) * math.comb(n - i, r - j)
            total += Fraction((c + j) * w, math.comb(n, r) * (s + i))
    return total


def test_large_tie_groups_exact_rational_expectation():
    # Distances 0, 1, 2 with 120, 300, 10 items (3, 100, 1 relevant): too many
    # orders to enumerate. K = 20 cuts the 300-group at its 17th relevant item
    # (reference AP); K = 150 cuts it after 30 places (standard AP, P@K).
    rng = np.random.default_rng(8)
    dist = np.repeat([[0, 1, 2]], [120, 300, 10], axis=1)
    rel = np.zeros((1, 430), bool)
    rel[0, rng.permutation(120)[:3]] = True
    rel[0, 120 + rng.permutation(300)[:100]] = True
    rel[0, 425] = True
    head = _exact_group(0, 0, 120, 3, 3, 120)
    full = head + _exact_group(120, 3, 300, 100, 100, 300)
    full += _exact_group(420, 103, 10, 1, 1, 10)
    ref_cut = head + _exact_group(120, 3, 300, 100, 17, 300)
    std_cut = head + _exact_group(120, 3, 300, 100, 100, 30)
    want = {
        ("reference", "min_k_r", 20): ref_cut / 20,
        ("reference", "min_k_r", None): full / 104,
        ("standard", "min_k_r", 150): std_cut / 104,
    }
    # Z = hits in the top 150: condition on x relevant among the 30 places.
    want["standard", "hits", 150] = sum(
        Fraction(math.comb(100, x) * math.comb(200, 30 - x), math.comb(300, 30))
        * (head + _exact_group(120, 3, 30, x, x, 30))
        / (3 + x)
        for x in range(31)
    )
    for (semantics, normalize, k), value in want.items():
        got = rt.average_precision(
            dist, rel, k, semantics=semantics, normalize=normalize
        )
        np.testing.assert_allclose(got[0], float(value), rtol=2e-13)
    p150 = query_precision(dist, rel, (150,))[0, 0]
    assert p150 == pytest.approx((3 + 30 * 100 / 300) / 150, rel=1e-13)


def test_16_bit_codes_tie_order_changes_index_not_expected():
    """Random 16-bit codes: the tie order moves mAP@5 (the reference code's
    unstable sort picks an arbitrary one); the expected value is order-free."""
    rng = np.random.default_rng(0)
    qb = np.where(rng.random((60, 16)) < 0.5, 1.0, -1.0)
    db = np.where(rng.random((600, 16)) < 0.5, 1.0, -1.0)
    ql = (rng.random((60, 6)) < 0.2).astype(np.float64)
    dl = (rng.random((600, 6)) < 0.2).astype(np.float64)
    kw = dict(map_ks=(5,), pk_ks=(5,), radii=(), pr_curve=False)
    base = rt.retrieval_metrics(qb, db, ql, dl, ties="index", **kw)
    expected = rt.retrieval_metrics(qb, db, ql, dl, **kw)
    index_runs, ref_runs = [], []
    for _ in range(30):
        perm = rng.permutation(600)
        d, dlp = db[perm], dl[perm]
        index_runs.append(rt.retrieval_metrics(qb, d, ql, dlp, ties="index", **kw))
        ref_runs.append(ref.calc_map_k(qb, d, ql, dlp, 5))
        moved = rt.retrieval_metrics(qb, d, ql, dlp, **kw)
        for key in expected:
            assert moved[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-15)
    maps = np.array([r["map@5"] for r in index_runs])
    # The reference loop under another tie order differs from ours (index).
    np.testing.assert_array_equal(ref_runs, maps)
    assert np.max(np.abs(maps - base["map@5"])) > 2.5e-3
    # The expected value is the mean over uniformly random tie orders.
    assert maps.min() < expected["map@5"] < maps.max()
    se = maps.std(ddof=1) / np.sqrt(maps.size)
    assert abs(maps.mean() - expected["map@5"]) < 4 * se
    for key in ("map_trunc@5", "p@5"):
        vals = np.array([r[key] for r in index_runs])
        assert vals.min() < expected[key] < vals.max()


def test_tie_options_are_validated():
    args, dist, rel = _codes_case(9)
    with pytest.raises(ValueError, match="ties"):
        rt.retrieval_metrics(*args, ties="random")
    with pytest.raises(ValueError, match="no_relevant"):
        rt.retrieval_metrics(*args, no_relevant="skip")
    with pytest.raises(ValueError, match="reference"):
        rt.mean_average_precision(*args, ties="reference", no_relevant="exclude")
    with pytest.raises(ValueError, match="ties"):
        rt.average_precision(dist, rel, ties="stable")
    no_rel = np.zeros_like(args[3])
    empty = rt.retrieval_metrics(*args[:3], no_rel, map_ks=(2,), no_relevant="exclude")
    assert np.isnan(empty["map@2"]) and np.isnan(empty["p@1"])


def test_eval_script_ties_option(tmp_path):
    from eval import retrieval as script

    (qb, db, ql, dl), _, _ = _codes_case(10, nq=12, n=40, nbits=4)
    path = str(tmp_path / "c.npz")
    np.savez(path, query_codes=qb, db_codes=db, query_labels=ql, db_labels=dl)

    def run(*extra):
        argv = ["--codes", path, "--out", str(tmp_path / "o"), *extra]
        return script.main(argv)["q2d"]["map@20"]

    def lib(ties):
        return rt.retrieval_metrics(qb, db, ql, dl, map_ks=(20,), ties=ties)["map@20"]

    default, index = run(), run("--ties", "index")
    assert default == lib("expected") and index == lib("index") != default
