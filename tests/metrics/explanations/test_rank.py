"""Rank agreement against scipy (ties included) and Python sets."""

import numpy as np
import pytest
from scipy import stats

from jaxcxai.metrics import explanations as ex


def _pairs(n=5, d=40, seed=0):
    rng = np.random.default_rng(seed)
    a = np.round(rng.normal(size=(n, d)), 1)  # many ties in |a|
    b = np.round(a + rng.normal(size=(n, d)) * 0.8, 1)
    b[0] = -a[0]  # same |phi|: tau = rho = 1
    return a, b


def test_average_ranks_equal_scipy():
    a, _ = _pairs()
    np.testing.assert_allclose(ex.average_ranks(a), stats.rankdata(a, axis=1))


def test_kendall_and_spearman_equal_scipy_with_ties():
    a, b = _pairs()
    tau = [stats.kendalltau(np.abs(x), np.abs(y)).statistic for x, y in zip(a, b)]
    rho = [stats.spearmanr(np.abs(x), np.abs(y)).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(ex.kendall_tau(a, b, block=7), tau, atol=1e-6)
    np.testing.assert_allclose(ex.spearman_rho(a, b), rho, atol=1e-6)
    assert abs(float(ex.kendall_tau(a[0], b[0])) - 1) < 1e-6  # a single pair
    signed = [stats.kendalltau(x, y).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(ex.kendall_tau(a, b, use_abs=False), signed, atol=1e-6)
    # (N, H, W) maps are flattened per sample.
    np.testing.assert_allclose(ex.spearman_rho(a.reshape(5, 5, 8), b.reshape(5, 5, 8)),
                               rho, atol=1e-6)  # fmt: skip


def test_ordering_variant_equals_scipy_on_argsort_sequences():
    a, b = _pairs(seed=1)
    oa = np.argsort(-np.abs(a), axis=1, kind="stable")
    ob = np.argsort(-np.abs(b), axis=1, kind="stable")
    rho = [stats.spearmanr(x, y).statistic for x, y in zip(oa, ob)]
    tau = [stats.kendalltau(x, y).statistic for x, y in zip(oa, ob)]
    np.testing.assert_allclose(ex.spearman_rho(a, b, order="argsort"), rho, atol=1e-6)
    np.testing.assert_allclose(ex.kendall_tau(a, b, order="argsort"), tau, atol=1e-6)
    # ... and it is not the rank correlation.
    assert np.abs(np.asarray(ex.spearman_rho(a, b)) - rho).max() > 1e-3


def test_constant_input_nan_or_zero():
    a = np.ones((2, 6))
    b = np.random.default_rng(0).normal(size=(2, 6))
    assert (
        np.isnan(ex.kendall_tau(a, b)).all() and np.isnan(ex.spearman_rho(a, b)).all()
    )
    np.testing.assert_array_equal(ex.spearman_rho(a, b, nan_to_zero=True), [0, 0])
    with pytest.raises(ValueError, match="same shape"):
        ex.kendall_tau(a, b[:, :5])


@pytest.mark.parametrize("k", [1, 5, 12])
def test_top_k_overlap_equals_sets(k):
    a, b = _pairs(seed=2)
    inter, jac = [], []
    for x, y in zip(a, b):
        sa = set(np.argsort(-np.abs(x), kind="stable")[:k])
        sb = set(np.argsort(-np.abs(y), kind="stable")[:k])
        inter.append(len(sa & sb) / k)
        jac.append(len(sa & sb) / len(sa | sb))
    np.testing.assert_allclose(ex.top_k_intersection(a, b, k), inter, atol=1e-7)
    np.testing.assert_allclose(ex.top_k_jaccard(a, b, k), jac, atol=1e-7)
    with pytest.raises(ValueError, match="k must be"):
        ex.top_k_jaccard(a, b, 41)
