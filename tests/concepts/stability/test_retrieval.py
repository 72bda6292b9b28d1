"""Retrieval stability (a reconstruction of arXiv 2304.14864, spec section 5.2)
against NumPy and hand-computed values, and on planted-direction data."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.checks import NonFiniteError
from jaxcxai.concepts.stability import retrieval as ret
from jaxcxai.concepts.stability.runs import Runs


def _runs(direction, bias=None):
    d = jnp.asarray(direction, jnp.float32)
    b = jnp.zeros(d.shape[0]) if bias is None else jnp.asarray(bias, jnp.float32)
    idx = jnp.zeros((d.shape[0], 1), jnp.int32)
    return Runs(d, d, b, idx, idx)


def test_consistency_identical_random_and_numpy():
    v = np.random.default_rng(0).normal(size=(1, 50))
    np.testing.assert_allclose(ret.consistency(np.repeat(v, 6, axis=0)), 1.0, atol=1e-6)
    # Unrelated directions in d = 4096: K ~ N(0, 1/(d * pairs)), |K| < 3/sqrt(d).
    d = 4096
    rand = np.random.default_rng(1).normal(size=(8, d))
    assert abs(float(ret.consistency(rand))) < 3 / np.sqrt(d)
    # Independent reference: mean over r < s of normalised dot products,
    # on vectors of different norms (a missing normalisation shows).
    x = np.random.default_rng(2).normal(size=(5, 7)) * np.arange(1, 6)[:, None]
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    pairs = [u[r] @ u[s] for r, s in itertools.combinations(range(5), 2)]
    np.testing.assert_allclose(ret.consistency(x), np.mean(pairs), rtol=1e-5)
    per_run = [np.mean([u[r] @ u[s] for s in range(5) if s != r]) for r in range(5)]
    np.testing.assert_allclose(ret.run_consistency(x), per_run, rtol=1e-5, atol=1e-6)


def test_separation_perfect_numpy_and_auc():
    rng = np.random.default_rng(3)
    pos = rng.normal(size=(30, 4)) + [5.0, 0, 0, 0]
    neg = rng.normal(size=(40, 4)) - [5.0, 0, 0, 0]
    sep = _runs(np.eye(4)[:1].repeat(3, axis=0))  # w = e_0, b = 0: perfect
    for metric in ("accuracy", "auc"):
        assert float(ret.separation(sep, pos, neg, metric=metric)) == 1.0
    # Random classifiers: accuracy and AUC against NumPy by hand.
    w, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    pos, neg = rng.normal(size=(30, 4)), rng.normal(size=(40, 4)) + 0.5
    zp, zn = pos @ w.T + b, neg @ w.T + b
    acc = ((zp > 0).sum(0) + (zn <= 0).sum(0)) / 70
    auc = ((zp[:, None, :] > zn[None, :, :]).mean((0, 1))
           + 0.5 * (zp[:, None, :] == zn[None, :, :]).mean((0, 1)))  # fmt: skip
    got = ret.run_separation(_runs(w, b), pos, neg)
    np.testing.assert_allclose(got, acc, atol=1e-6)
    np.testing.assert_allclose(ret.run_separation(_runs(w, b), pos, neg, metric="auc"),
                               auc, atol=1e-6)  # fmt: skip


def test_stability_by_hand():
    # Two CAVs 60 degrees apart: consistency cos 60 = 1/2.
    c, s = np.cos(np.pi / 3), np.sin(np.pi / 3)
    runs = _runs([[1.0, 0.0], [c, s]])
    pos = np.array([[1.0, 0.1], [2.0, -3.0]])  # run 0: 2/2, run 1: 1/2
    neg = np.array([[-1.0, -0.1], [-1.0, 1.0]])  # run 0: 2/2, run 1: 1/2
    np.testing.assert_allclose(ret.run_separation(runs, pos, neg), [1.0, 0.5])
    sep, con = ret.separation(runs, pos, neg), ret.consistency(runs.direction)
    np.testing.assert_allclose([sep, con, ret.combine(sep, con)], [0.75, 0.5, 0.375],
                               rtol=1e-6)  # fmt: skip
    # Through the pipeline: every training row is identical, so every run
    # fits the same CAV e_0 (b = 0 by symmetry): K = 1 and S = 3/4.
    train_p, train_n = np.tile([1.0, 0.0], (12, 1)), np.tile([-1.0, 0.0], (12, 1))
    held_p = np.array([[1.0, 0], [2, 1], [-1, 0], [3, 0]])  # 3 of 4 right
    held_n = np.array([[-1.0, 0], [-2, 0], [-1, 5], [0.5, 0]])  # 3 of 4 right
    res = ret.retrieval_stability(train_p, train_n, held_p, held_n, jax.random.key(0),
                                  runs=3, samples=4, dim=None)  # fmt: skip
    np.testing.assert_allclose([res.stability, res.separation, res.consistency],
                               [0.75, 0.75, 1.0], atol=1e-5)  # fmt: skip
    assert res.run_separation.shape == (3,) and res.run_consistency.shape == (3,)


def test_ice_consistency_against_brute_force():
    rng = np.random.default_rng(5)
    base = np.abs(rng.normal(size=(4, 10)))
    comps = [base]
    for _ in range(3):  # permuted, noisy copies of run 0
        comps.append(np.abs(base[rng.permutation(4)] + 0.3 * rng.normal(size=(4, 10))))
    comps = np.stack(comps)
    value, per_run, cols = ret.ice_consistency(comps)

    def cos(a, b):
        return a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    best = [max(np.mean([cos(comps[0][j], comps[r][p[j]]) for j in range(4)])
                for p in itertools.permutations(range(4))) for r in (1, 2, 3)]  # fmt: skip
    np.testing.assert_allclose(per_run, best, rtol=1e-10)
    np.testing.assert_allclose(value, np.mean(best), rtol=1e-10)
    for r in (1, 2, 3):
        matched = np.mean(
            [cos(comps[0][j], comps[r][cols[r - 1][j]]) for j in range(4)]
        )
        np.testing.assert_allclose(matched, best[r - 1], rtol=1e-10)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="cavs must be \\(R, D\\) with R >= 2"):
        ret.consistency(np.ones((1, 4)))
    with pytest.raises(NonFiniteError, match="cavs has 1 non-finite"):
        ret.consistency(np.array([[1.0, np.nan], [1.0, 0.0]]))
    runs = _runs(np.eye(3)[:2])
    with pytest.raises(ValueError, match="neg_heldout has 4 features, the CAVs 3"):
        ret.separation(runs, np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(NonFiniteError, match="pos_heldout has 1 non-finite"):
        ret.separation(runs, np.array([[np.inf, 0, 0]]), np.ones((2, 3)))
    with pytest.raises(ValueError, match="metric must be 'accuracy' or 'auc'"):
        ret.separation(runs, np.ones((2, 3)), np.ones((2, 3)), metric="f1")
    with pytest.raises(ValueError, match="components must be \\(R, k, C\\)"):
        ret.ice_consistency(np.ones((4, 3)))
