"""Relevance mass, rank accuracy and pointing game against NumPy loops."""

import numpy as np
import pytest

from jaxcxai.metrics import explanations as ex


def _data(seed=0, n=5, h=9, w=8):
    rng = np.random.default_rng(seed)
    phi = rng.normal(size=(n, h, w))
    mask = np.zeros((n, h, w), bool)
    for i in range(n):
        r, c = rng.integers(0, h - 3), rng.integers(0, w - 3)
        mask[i, r : r + 3, c : c + 2] = True
    return phi, mask


def test_relevance_mass_and_rank_accuracy():
    phi, mask = _data()
    pos = np.maximum(phi, 0)
    want = [(pos[i] * mask[i]).sum() / pos[i].sum() for i in range(5)]
    np.testing.assert_allclose(ex.relevance_mass(phi, mask), want, rtol=1e-5)
    want_abs = [
        (np.abs(phi[i]) * mask[i]).sum() / np.abs(phi[i]).sum() for i in range(5)
    ]
    np.testing.assert_allclose(ex.relevance_mass(phi, mask, mode="abs"), want_abs,
                               rtol=1e-5)  # fmt: skip
    acc = []
    for i in range(5):
        k = mask[i].sum()
        top = np.argsort(-phi[i].reshape(-1), kind="stable")[:k]
        acc.append(mask[i].reshape(-1)[top].mean())
    np.testing.assert_allclose(ex.relevance_rank_accuracy(phi, mask), acc, rtol=1e-6)


@pytest.mark.parametrize("tol", [0.0, 1.0, 2.5])
def test_pointing_game_equals_brute_force(tol):
    phi, mask = _data(seed=1, n=12)
    hits = []
    for i in range(12):
        pi, pj = np.unravel_index(np.argmax(phi[i]), phi[i].shape)
        ii, jj = np.nonzero(mask[i])
        hits.append(float(np.min((ii - pi) ** 2 + (jj - pj) ** 2) <= tol**2))
    np.testing.assert_array_equal(ex.pointing_game(phi, mask, tolerance=tol), hits)
    if tol == 2.5:
        assert 0 < np.mean(hits) < 1  # the test sees hits and misses


def test_shape_errors():
    phi, mask = _data()
    with pytest.raises(ValueError, match="phi and mask"):
        ex.relevance_mass(phi, mask[:, :4])
