"""Dictionary matching: Hungarian vs brute force, stability, supervised matching."""

import itertools

import numpy as np
import pytest

from jaxcxai.concepts.discovery import matching


def _brute_force(sim):
    """Best one-to-one assignment of min(k1, k2) pairs by enumeration."""
    k1, k2 = sim.shape
    best = -np.inf
    if k1 <= k2:
        for cols in itertools.permutations(range(k2), k1):
            best = max(best, sum(sim[i, c] for i, c in enumerate(cols)))
    else:
        for rows in itertools.permutations(range(k1), k2):
            best = max(best, sum(sim[r, j] for j, r in enumerate(rows)))
    return best


@pytest.mark.parametrize("k1,k2", [(1, 1), (3, 3), (4, 6), (6, 6), (6, 4), (5, 5)])
@pytest.mark.parametrize("absolute", [False, True])
def test_hungarian_equals_brute_force(k1, k2, absolute):
    rng = np.random.default_rng(k1 * 10 + k2)
    a, b = rng.standard_normal((k1, 7)), rng.standard_normal((k2, 7))
    m = matching.match(a, b, absolute=absolute)
    cos = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (
        b / np.linalg.norm(b, axis=1, keepdims=True)
    ).T
    sim = np.abs(cos) if absolute else cos
    assert len(m.rows) == min(k1, k2)
    assert len(set(m.rows)) == len(set(m.cols)) == len(m.rows)
    np.testing.assert_allclose(m.cosine, sim[m.rows, m.cols], atol=1e-12)
    np.testing.assert_allclose(m.cosine.sum(), _brute_force(sim), rtol=0, atol=1e-12)


def test_stability_of_permuted_noisy_copies():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, 20))
    dicts = [base[rng.permutation(5)] * rng.uniform(0.5, 2, (5, 1)) for _ in range(3)]
    pair, stats = matching.stability(dicts)
    np.testing.assert_allclose(pair, 1.0, atol=1e-12)
    assert stats["pairs"] == 3 and stats["min"] > 1 - 1e-12
    noisy = [base + 0.5 * rng.standard_normal(base.shape) for _ in range(4)]
    pair, stats = matching.stability(np.stack(noisy))
    ref = np.mean(
        [
            np.mean([_brute_force(matching.cosine_matrix(noisy[i], noisy[j])) / 5])
            for i, j in itertools.combinations(range(4), 2)
        ]
    )
    np.testing.assert_allclose(stats["mean_of_pairs"], ref, atol=1e-12)
    assert 0.5 < stats["mean"] < 1.0
    # Sign flips only matter without `absolute`.
    flipped = [base, -base]
    assert matching.stability(flipped)[1]["mean"] < 0.5
    assert matching.stability(flipped, absolute=True)[1]["mean"] == pytest.approx(1.0)


def test_match_to_reference_vectors():
    rng = np.random.default_rng(1)
    comps = rng.standard_normal((4, 10))
    cavs = np.stack([comps[2] + 0.1 * rng.standard_normal(10), comps[0], -comps[3]])
    out = matching.match_to_reference(comps, cavs, ["stripes", "red", "wheel"])
    assert out["stripes"]["hungarian"] == 2 and out["stripes"]["best"] == 2
    assert out["red"]["hungarian"] == 0 and out["red"]["best_cos"] == pytest.approx(1.0)
    assert out["wheel"]["best_cos"] < 0.9  # opposite sign: not a match ...
    out = matching.match_to_reference(comps, cavs, ["s", "r", "w"], absolute=True)
    assert out["w"]["hungarian"] == 3  # ... unless signs are ignored


def test_subsets_and_bad_input():
    subs = matching.subsets(0, 100, 3, 0.3)
    assert [len(s) for s in subs] == [30, 30, 30]
    assert all(len(np.unique(s)) == 30 and s.max() < 100 for s in subs)
    bad = np.ones((3, 4))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="a has 1 non-finite"):
        matching.match(bad, np.ones((3, 4)))
    with pytest.raises(ValueError, match="share d"):
        matching.match(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="at least 2"):
        matching.stability([np.ones((2, 2))])
