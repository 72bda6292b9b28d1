"""Repeated CAV fits: the bulk fit equals single fits on the same subsets."""

import jax
import numpy as np
import pytest

from jaxcxai.checks import NonFiniteError
from jaxcxai.concepts.probes import cavs
from jaxcxai.concepts.stability import runs as runs_lib
from jaxcxai.parallel import make_mesh


def _sets(seed=0, n=40, h=3, w=3, c=8):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=c)
    pos = rng.normal(size=(n, h, w, c)) + 0.8 * u
    neg = rng.normal(size=(n + 5, h, w, c))
    return pos.astype(np.float32), neg.astype(np.float32)


def test_subsets_are_without_replacement_and_differ():
    pi, ni = runs_lib.draw_subsets(jax.random.key(3), 30, 40, runs=6, samples=12)
    pi, ni = np.asarray(pi), np.asarray(ni)
    assert pi.shape == (6, 12) and ni.shape == (6, 12)
    assert all(len(set(r)) == 12 for r in pi) and all(len(set(r)) == 12 for r in ni)
    assert pi.max() < 30 and ni.max() < 40 and pi.min() >= 0
    assert len({tuple(sorted(r)) for r in pi}) == 6  # runs draw different rows


@pytest.mark.multidevice
def test_bulk_fit_equals_loop_of_single_fits_and_mesh():
    pos, neg = _sets()
    got = runs_lib.fit_runs(pos, neg, jax.random.key(0), runs=5, samples=16, dim="1d")
    assert got.direction.shape == (5, 8) and got.pos_index.shape == (5, 16)
    fp, fn = pos.mean(axis=(1, 2)), neg.mean(axis=(1, 2))  # 1D view by hand
    for r in range(5):
        p = fp[np.asarray(got.pos_index[r])][None]
        q = fn[np.asarray(got.neg_index[r])][None]
        one = cavs.fit_cavs(p, q)  # one (concept, random) pair, on its own
        np.testing.assert_allclose(got.direction[r], one.direction[0, 0], atol=2e-5)
        np.testing.assert_allclose(got.weight[r], one.weight[0, 0], rtol=1e-4,
                                   atol=1e-5)  # fmt: skip
        np.testing.assert_allclose(got.bias[r], one.bias[0, 0], rtol=1e-4, atol=1e-5)
    # The runs split over 8 devices (padded from 5) give the same CAVs.
    sharded = runs_lib.fit_runs(pos, neg, jax.random.key(0), runs=5, samples=16,
                                dim="1d", mesh=make_mesh())  # fmt: skip
    np.testing.assert_array_equal(sharded.pos_index, got.pos_index)
    np.testing.assert_allclose(sharded.direction, got.direction, atol=2e-5)
    # Precomputed features (dim=None) are the same fit.
    feats = runs_lib.fit_runs(fp, fn, jax.random.key(0), runs=5, samples=16, dim=None)
    np.testing.assert_allclose(feats.direction, got.direction, atol=2e-5)


def test_bad_inputs_name_the_argument():
    pos, neg = _sets()
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="samples must be an integer in \\[1, 40\\]"):
        runs_lib.fit_runs(pos, neg, key, samples=41)
    with pytest.raises(ValueError, match="runs must be a positive integer"):
        runs_lib.fit_runs(pos, neg, key, runs=0)
    with pytest.raises(ValueError, match="neg_acts has 1 features per sample"):
        runs_lib.fit_runs(pos, neg[..., :1], key)
    with pytest.raises(ValueError, match="neg_acts must be \\(N, H, W, C\\)"):
        runs_lib.fit_runs(pos, neg[0], key)
    with pytest.raises(ValueError, match="pos_acts must be \\(N, D\\) features"):
        runs_lib.fit_runs(pos, neg, key, dim=None)
    with pytest.raises(ValueError, match="method must be one of"):
        runs_lib.fit_runs(pos, neg, key, samples=10, method="svm")
    bad = pos.copy()
    bad[2, 0, 0, 0] = np.inf
    with pytest.raises(NonFiniteError, match="pos_acts has 1 non-finite"):
        runs_lib.fit_runs(bad, neg, key)
    # Row indices out of range (jax would clamp them to the last row) or of
    # the wrong shape are named, for every method.
    feats = pos.reshape(len(pos), -1), neg.reshape(len(neg), -1)
    pi, ni = np.zeros((3, 5), int), np.zeros((3, 5), int)
    for method in ("sgd", "logistic"):
        with pytest.raises(ValueError, match=r"pos_index must hold row numbers in "
                           r"\[0, 40\), got int64 in \[0, 40\]"):  # fmt: skip
            runs_lib.fit_subsets(*feats, pi + np.eye(3, 5, dtype=int) * 40, ni,
                                 method=method)  # fmt: skip
        with pytest.raises(ValueError, match=r"neg_index must hold row numbers"):
            runs_lib.fit_subsets(*feats, pi, ni - 1, method=method)
        with pytest.raises(ValueError, match=r"must be \(R, n\) with the same R"):
            runs_lib.fit_subsets(*feats, pi, ni[:, 0], method=method)
