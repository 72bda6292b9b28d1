"""Target specificity against brute-force matching and loop permutations."""

import itertools

import jax
import numpy as np
import pytest

from jaxcxai.adversarial.specificity import (
    component_similarity,
    mean_direction,
    pair_means,
    permuted_labels,
    specificity_gap,
)


def _brute_similarity(a, b):
    """Best mean |cos| over all one-to-one assignments (k! of them)."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cos = np.abs(a @ b.T)
    k = len(a)
    return max(cos[range(k), p].mean() for p in itertools.permutations(range(k)))


def _loop_gap(m, labels):
    same = [
        m[r, s]
        for r in range(len(m))
        for s in range(len(m))
        if r != s and labels[r] == labels[s]
    ]
    diff = [
        m[r, s] for r in range(len(m)) for s in range(len(m)) if labels[r] != labels[s]
    ]
    return np.mean(same) - np.mean(diff)


def _runs(shared, seed=0, targets=3, per_target=4, k=3, c=16):
    """Components of targets x per_target runs: shared per target (plus
    noise, shuffled rows, flipped signs) or all random."""
    rng = np.random.default_rng(seed)
    bases = [np.linalg.qr(rng.normal(size=(c, k)))[0].T for _ in range(targets)]
    vectors, labels = [], []
    for t in range(targets):
        for _ in range(per_target):
            v = (
                bases[t] + 0.15 * rng.normal(size=(k, c))
                if shared
                else rng.normal(size=(k, c))
            )
            v = v[rng.permutation(k)] * rng.choice([-1.0, 1.0], (k, 1))
            vectors.append(v.astype(np.float32))
            labels.append(t)
    return vectors, np.array(labels)


def test_similarity_matches_brute_force():
    vectors, _ = _runs(shared=True)
    m = component_similarity(vectors)
    for r, s in [(0, 1), (0, 5), (3, 11), (7, 7)]:
        np.testing.assert_allclose(
            m[r, s], _brute_similarity(vectors[r], vectors[s]), atol=1e-6
        )
    np.testing.assert_allclose(m, m.T)
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-6)
    m1 = component_similarity(vectors, k=1)
    ref = abs(_brute_similarity(vectors[0][:1], vectors[4][:1]))
    np.testing.assert_allclose(m1[0, 4], ref, atol=1e-6)


def test_gap_of_shared_components_is_significant():
    vectors, labels = _runs(shared=True)
    m = component_similarity(vectors)
    key = jax.random.key(0)
    out = specificity_gap(m, labels, key, permutations=200)
    same, diff = pair_means(m, labels)
    np.testing.assert_allclose(out["gap"], _loop_gap(m, labels), atol=1e-12)
    assert (out["same"], out["different"]) == (same, diff)
    assert out["gap"] > 0.3 and out["p_value"] < 0.05
    # the p-value from a loop over the same permutations
    perms = permuted_labels(labels, key, 200)
    assert all(sorted(p) == sorted(labels) for p in perms)
    hits = sum(_loop_gap(m, p) >= out["gap"] - 1e-12 for p in perms)
    assert out["p_value"] == (1 + hits) / 201


def test_gap_of_random_components_is_about_zero():
    vectors, labels = _runs(shared=False, seed=1)
    out = specificity_gap(component_similarity(vectors), labels, jax.random.key(1), 200)
    assert abs(out["gap"]) < 0.05
    assert out["p_value"] > 0.05


def test_p_value_of_two_pairs():
    # 4 runs in two target pairs; only 2 of the 6 label arrangements give the
    # observed pairing, which has the largest gap: p -> 1/3
    m = np.array(
        [
            [1, 0.9, 0.1, 0.2],
            [0.9, 1, 0.15, 0.1],
            [0.1, 0.15, 1, 0.8],
            [0.2, 0.1, 0.8, 1],
        ]
    )
    out = specificity_gap(m, [0, 0, 1, 1], jax.random.key(2), permutations=3000)
    assert abs(out["p_value"] - 1 / 3) < 0.03
    np.testing.assert_allclose(out["gap"], 0.85 - 0.1375)


def test_mean_direction():
    d = np.array([[1.0, 2.0, 0.0], [3.0, 0.0, 4.0]])
    np.testing.assert_allclose(mean_direction(d), [[2.0, 1.0, 2.0]] / np.float64(3.0))
    with pytest.raises(ValueError, match="zero"):
        mean_direction(np.zeros((2, 3)))


def test_errors():
    m = np.eye(4)
    with pytest.raises(ValueError, match="square"):
        specificity_gap(np.ones((3, 4)), [0, 0, 1], jax.random.key(0))
    with pytest.raises(ValueError, match="target_labels must have shape"):
        specificity_gap(m, [0, 1], jax.random.key(0))
    with pytest.raises(ValueError, match="same target and two with"):
        specificity_gap(m, [0, 1, 2, 3], jax.random.key(0))
    bad = m.copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="M has 1 non-finite"):
        specificity_gap(bad, [0, 0, 1, 1], jax.random.key(0))
    with pytest.raises(ValueError, match="vectors_list\\[1\\] must be"):
        component_similarity([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match="k must be in"):
        component_similarity([np.ones((2, 3)), np.ones((3, 3))], k=3)
