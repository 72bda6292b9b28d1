"""TCAV's SGD: scikit-learn's `SGDClassifier` reproduced, shuffles included.

References: scikit-learn itself (float64 fits agree to rounding, float32
bulk fits to float32 rounding) and its own shuffle (`ArrayDataset64`).
"""

import warnings

import jax
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.utils._seq_dataset import ArrayDataset64

from jaxcxai.checks import NonFiniteError
from jaxcxai.concepts.probes import cavs as cav_lib
from jaxcxai.concepts.probes import sgd
from jaxcxai.concepts.stability import runs as runs_lib
from jaxcxai.concepts.stability import sgd_runs


def _problem(seed, n, d, shift=0.3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) + shift
    y = (x[:, 0] + 0.5 * rng.standard_normal(n) > shift).astype(int)
    return x, y


def _sklearn(x, y, random_state, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        kw = {"alpha": 0.01, "max_iter": 1000, "tol": 1e-3} | kw
        return SGDClassifier(random_state=random_state, **kw).fit(x, y)


def test_shuffles_are_sklearns_own_epoch_after_epoch():
    n = 13
    data = ArrayDataset64(np.zeros((n, 1)), np.arange(n, dtype=float), np.ones(n), 1)
    perm = np.asarray(sgd.shuffle_permutation(987654321, n))
    order = np.arange(n)
    for _ in range(3):  # every epoch replays the same swaps on the last order
        data._shuffle_py(987654321)
        order = order[perm]
        np.testing.assert_array_equal([data._next_py()[3] for _ in range(n)], order)
    assert sgd.sklearn_seed(5) != sgd.sklearn_seed(6)


# (n, D, random_state, sklearn kwargs): D < n, D > n, a fixed epoch count,
# and alpha = 1, whose first step zeroes w (the Gram form's plain path).
CASES = [(60, 5, 0, {}), (41, 300, 7, {}), (50, 8, 3, {"tol": None, "max_iter": 7}),
         (30, 12, 1, {"alpha": 0.1, "n_iter_no_change": 3}),
         (40, 10, 2, {"alpha": 1.0})]  # fmt: skip


@pytest.mark.parametrize("n,d,rs,kw", CASES)
def test_float64_fit_equals_sklearn(n, d, rs, kw):
    x, y01 = _problem(rs, n, d)
    ref = _sklearn(x, y01, rs, **kw)
    y = np.where(y01 == 1, 1.0, -1.0)
    ours = dict(kw)
    with jax.enable_x64(True):
        primal = jax.jit(lambda x, y, s: sgd.fit_sgd(x, y, s, **ours))
        dual = jax.jit(lambda g, y, s: sgd.fit_sgd_gram(g, y, s, **ours))
        w, b, epochs = primal(x, y, sgd.sklearn_seed(rs))
        a, b2, epochs2 = dual(x @ x.T, y, sgd.sklearn_seed(rs))
        w, a = np.asarray(w), np.asarray(a)
        assert w.dtype == np.float64
    scale = np.abs(ref.coef_[0]).max()
    assert int(epochs) == int(epochs2) == ref.n_iter_
    np.testing.assert_allclose(w, ref.coef_[0], rtol=0, atol=1e-11 * scale)
    np.testing.assert_allclose(x.T @ a, ref.coef_[0], rtol=0, atol=1e-11 * scale)
    np.testing.assert_allclose([float(b), float(b2)], ref.intercept_[0], atol=1e-11)


# d <= n runs the primal steps, d > n the Gram form.
@pytest.mark.parametrize("d", [40, 90])
def test_bulk_cavs_equal_sklearn_per_pair_in_float32(d):
    rng = np.random.default_rng(1)
    pos = (rng.standard_normal((2, 20, d)) + 0.4).astype(np.float32)
    neg = rng.standard_normal((3, 25, d)).astype(np.float32)
    states = np.arange(6).reshape(2, 3) + 10
    cavs = cav_lib.fit_cavs(pos, neg, method="sgd", random_state=states)
    y = np.r_[np.ones(20), np.zeros(25)]
    for k in range(2):
        for r in range(3):
            ref = _sklearn(np.concatenate([pos[k], neg[r]]), y, int(states[k, r]))
            scale = np.abs(ref.coef_[0]).max()
            np.testing.assert_allclose(
                cavs.weight[k, r], ref.coef_[0], atol=2e-5 * scale
            )
            np.testing.assert_allclose(cavs.bias[k, r], ref.intercept_[0], atol=2e-5)
    # One int seeds every pair alike: pair (0, 0) as random_state=3.
    same = cav_lib.fit_cavs(pos, neg, method="sgd", random_state=3)
    ref = _sklearn(np.concatenate([pos[0], neg[0]]), y, 3)
    np.testing.assert_allclose(same.weight[0, 0], ref.coef_[0], atol=2e-5 * scale)


@pytest.mark.parametrize("d", [40, 90])  # primal steps, Gram form
def test_bulk_cavs_in_chunks_of_concepts_equal_one_vmap(monkeypatch, d):
    # 5 concepts in chunks of 2 (a remainder of 1) against 3 random sets.
    rng = np.random.default_rng(4)
    pos = (rng.standard_normal((5, 20, d)) + 0.4).astype(np.float32)
    neg = rng.standard_normal((3, 25, d)).astype(np.float32)
    states = np.arange(15).reshape(5, 3)
    one = cav_lib.fit_cavs(pos, neg, method="sgd", random_state=states)
    per_pair = 45 * (45 if d > 45 else d) * 4
    monkeypatch.setattr(sgd, "CACHE_BYTES", 2 * 3 * per_pair)
    assert sgd.fits_per_chunk(5, 3 * per_pair) == 2
    jax.clear_caches()  # the chunk is fixed when _fit_cavs is traced
    chunked = cav_lib.fit_cavs(pos, neg, method="sgd", random_state=states)
    np.testing.assert_array_equal(chunked.weight, one.weight)
    np.testing.assert_array_equal(chunked.bias, one.bias)
    y = np.r_[np.ones(20), np.zeros(25)]
    ref = _sklearn(np.concatenate([pos[4], neg[2]]), y, 14)  # the remainder chunk
    scale = np.abs(ref.coef_[0]).max()
    np.testing.assert_allclose(chunked.weight[4, 2], ref.coef_[0], atol=2e-5 * scale)


# Short rows run the primal steps; long ones the Gram form, from block Gram
# matrices (few pool rows, many runs) or per run.
@pytest.mark.parametrize("d,n_pool,runs,blocked", [(6, 40, 4, None),
                         (64, 40, 10, True), (64, 400, 4, False)])  # fmt: skip
def test_runs_equal_sklearn_per_run(d, n_pool, runs, blocked):
    rng = np.random.default_rng(d + n_pool)
    pos = (rng.standard_normal((n_pool, d)) + 0.5).astype(np.float32)
    neg = rng.standard_normal((n_pool + 3, d)).astype(np.float32)
    pi = np.stack([rng.choice(n_pool, 15, replace=False) for _ in range(runs)])
    ni = np.stack([rng.choice(n_pool + 3, 15, replace=False) for _ in range(runs)])
    if blocked is not None:  # d = 6 <= n: primal steps, no Gram matrices
        assert sgd_runs.Layout(pi, ni).blocked() == blocked  # both paths tested
    got = runs_lib.fit_subsets(pos, neg, pi, ni, method="sgd")
    _check_runs(got, pos, neg, pi, ni)


def _check_runs(got, pos, neg, pi, ni):
    y = np.r_[np.ones(pi.shape[1]), np.zeros(ni.shape[1])]
    for r in range(len(pi)):  # run r is seeded as random_state=r
        ref = _sklearn(np.concatenate([pos[pi[r]], neg[ni[r]]]), y, r)
        scale = np.abs(ref.coef_[0]).max()
        np.testing.assert_allclose(got.weight[r], ref.coef_[0], atol=3e-5 * scale)
        np.testing.assert_allclose(got.bias[r], ref.intercept_[0], atol=3e-5)
        np.testing.assert_allclose(
            got.direction[r], ref.coef_[0] / np.linalg.norm(ref.coef_[0]), atol=3e-5
        )


def test_runs_of_several_concepts_use_one_block_each():
    # Three concepts with their own pools folded into one call, negatives
    # shared: one Gram block per concept, and every run as scikit-learn's.
    rng = np.random.default_rng(5)
    d, pool, runs, n = 80, 20, 4, 12
    pos = (rng.standard_normal((3 * pool, d)) + 0.4).astype(np.float32)
    neg = rng.standard_normal((30, d)).astype(np.float32)
    pi = np.concatenate([np.stack([rng.choice(pool, n, replace=False) + k * pool
                                   for _ in range(runs)]) for k in range(3)])  # fmt: skip
    ni = np.stack([rng.choice(30, n, replace=False) for _ in range(3 * runs)])
    lay = sgd_runs.Layout(pi, ni)
    np.testing.assert_array_equal(lay.group, np.repeat([0, 1, 2], runs))
    assert lay.blocked() and lay.pos_rows.shape == (3 * lay.m,)
    np.testing.assert_array_equal(lay.pos_rows[lay.pos_at], pi)
    np.testing.assert_array_equal(lay.neg_rows[lay.neg_at], ni)
    # Each run's Gram matrix from the blocks equals float64 NumPy's, and the
    # per-run path's.
    xp, xn = pos[lay.pos_rows], neg[lay.neg_rows]
    args = (xp, xn, lay.group, lay.pos_at, lay.neg_at, lay.m)
    blocks = np.asarray(sgd_runs._grams(*args, True))
    per_run = np.asarray(sgd_runs._grams(*args, False))
    for r in range(len(pi)):
        rows = np.concatenate([pos[pi[r]], neg[ni[r]]]).astype(np.float64)
        np.testing.assert_allclose(blocks[r], rows @ rows.T, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(per_run[r], rows @ rows.T, rtol=1e-5, atol=1e-3)
    _check_runs(runs_lib.fit_subsets(pos, neg, pi, ni, method="sgd"), pos, neg, pi, ni)


def test_chunked_loops_equal_one_vmap(monkeypatch):
    # Runs split into chunks (padded with copies of the last run) give the
    # same fits as all runs in one vmap.
    rng = np.random.default_rng(9)
    pos = (rng.standard_normal((30, 50)) + 0.4).astype(np.float32)
    neg = rng.standard_normal((30, 50)).astype(np.float32)
    pi = np.stack([rng.choice(30, 10, replace=False) for _ in range(7)])
    ni = np.stack([rng.choice(30, 10, replace=False) for _ in range(7)])
    one = runs_lib.fit_subsets(pos, neg, pi, ni, method="sgd")
    monkeypatch.setattr(sgd, "CACHE_BYTES", 3 * 20 * 20 * 4)  # 3 runs a chunk
    assert sgd.fits_per_chunk(7, 20 * 20 * 4) == 3
    chunked = runs_lib.fit_subsets(pos, neg, pi, ni, method="sgd")
    np.testing.assert_array_equal(chunked.weight, one.weight)
    np.testing.assert_array_equal(chunked.bias, one.bias)


def test_uneven_groups_form_one_block():
    # One concept of 200 rows and two of 40: padding all three groups to 200
    # rows costs more than one block of all 280, which is taken instead.
    rng = np.random.default_rng(2)
    big = np.stack([rng.choice(200, 40, replace=False) for _ in range(10)])
    pi = np.concatenate([big, 200 + np.arange(80).reshape(2, 40)])
    lay = sgd_runs.Layout(pi, rng.integers(0, 50, (len(pi), 40)))
    assert len(np.unique(sgd_runs._groups(pi)[2])) == 3
    assert (lay.group == 0).all() and lay.pos_rows.shape == (lay.m,)
    np.testing.assert_array_equal(lay.pos_rows[lay.pos_at], pi)  # rows kept


def test_groups_join_runs_that_share_rows():
    # Runs 0 and 1 share row 1, so rows 0-2 form one group; run 2 its own.
    rows, row_group, run_group = sgd_runs._groups(np.array([[0, 1], [1, 2], [6, 5]]))
    np.testing.assert_array_equal(rows, [0, 1, 2, 5, 6])
    np.testing.assert_array_equal(row_group, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(run_group, [0, 0, 1])


@pytest.mark.multidevice
def test_sharded_sgd_equals_unsharded():
    from jaxcxai.parallel import make_mesh

    rng = np.random.default_rng(0)
    pos = (rng.standard_normal((2, 12, 30)) + 0.5).astype(np.float32)
    neg = rng.standard_normal((5, 12, 30)).astype(np.float32)
    plain = cav_lib.fit_cavs(
        pos, neg, method="sgd", random_state=np.arange(10).reshape(2, 5)
    )
    mesh = make_mesh()
    sharded = cav_lib.fit_cavs(pos, neg, method="sgd", mesh=mesh,
                               random_state=np.arange(10).reshape(2, 5))  # fmt: skip
    np.testing.assert_allclose(sharded.weight, plain.weight, rtol=1e-5, atol=1e-6)
    pi = np.stack([rng.choice(12, 8, replace=False) for _ in range(5)])
    ni = np.stack([rng.choice(60, 8, replace=False) for _ in range(5)])
    feats = pos.reshape(-1, 30), neg.reshape(-1, 30)
    one = runs_lib.fit_subsets(*feats, pi, ni, method="sgd")
    split = runs_lib.fit_subsets(*feats, pi, ni, method="sgd", mesh=mesh)
    np.testing.assert_allclose(split.weight, one.weight, rtol=1e-5, atol=1e-6)


@pytest.mark.multidevice
@pytest.mark.parametrize("form", ["primal", "gram"])
def test_fits_run_under_shard_map(form):
    # The loops' initial carries take the inputs' variance, so shard_map
    # accepts them (constant carries were a type error) and each device's
    # fits equal the unsharded ones.
    from jax.sharding import PartitionSpec as P

    from jaxcxai.parallel import make_mesh

    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 16, 24)).astype(np.float32)
    x[:, :8] += 0.4
    a = np.einsum("rid,rjd->rij", x, x) if form == "gram" else x
    fit = sgd.fit_sgd_gram if form == "gram" else sgd.fit_sgd
    y = jax.numpy.asarray(np.repeat([1.0, -1.0], 8), np.float32)
    f = jax.vmap(lambda v, s: fit(v, y, s)[:2])
    seeds = np.arange(8, dtype=np.uint32) + 3
    spec = P("data")
    sharded = jax.jit(jax.shard_map(f, mesh=make_mesh(), in_specs=(spec, spec),
                                    out_specs=spec))(a, seeds)  # fmt: skip
    for got, want in zip(sharded, jax.jit(f)(a, seeds)):
        np.testing.assert_array_equal(got, want)


def test_gram_blocks_are_bitwise_one_step_at_a_time(monkeypatch):
    # Blocks of B steps add the same terms in the same order as single
    # steps: B = 8 and 5 (n = 37 leaves a remainder block) equal B = 1.
    rng = np.random.default_rng(6)
    x = rng.standard_normal((37, 60)).astype(np.float32)
    x[:18] += 0.3
    gram, y = x @ x.T, np.r_[np.ones(18), -np.ones(19)].astype(np.float32)
    fits = {}
    for block in (1, 5, 8):
        monkeypatch.setattr(sgd, "_BLOCK", block)
        fits[block] = sgd.fit_sgd_gram(gram, y, 11)
    assert int(fits[1][2]) > 5  # several epochs
    for block in (5, 8):
        for got, want in zip(fits[block], fits[1]):
            np.testing.assert_array_equal(got, want)


def test_bad_seeds_and_overflow_are_named():
    pos = np.ones((1, 4, 3), np.float32)
    neg = np.zeros((2, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"random_state must be an int or integers of "
                       r"shape \(1, 2\), got int64 of shape \(3,\)"):  # fmt: skip
        cav_lib.fit_cavs(pos, neg, method="sgd", random_state=np.arange(3))
    with pytest.raises(ValueError, match="got float64"):
        cav_lib.fit_cavs(pos, neg, method="sgd", random_state=0.5)
    x = np.ones((5, 3), np.float32)
    with pytest.raises(
        ValueError, match=r"x must be an \(n, D\) features, got shape \(5,\)"
    ):
        sgd.fit_sgd(x[:, 0], np.ones(5), 1)
    with pytest.raises(ValueError, match=r"gram must be an \(n, n\) Gram matrix"):
        sgd.fit_sgd_gram(x, np.ones(5), 1)
    with pytest.raises(ValueError, match=r"y must be \(5,\) labels, got shape \(4,\)"):
        sgd.fit_sgd(x, np.ones(4), 1)
    x[2, 1] = np.nan
    with pytest.raises(NonFiniteError, match="x has 1 non-finite"):
        sgd.fit_sgd(x, np.ones(5), 1)
    # Finite inputs whose squares overflow float32: scikit-learn raises, so do we.
    huge = np.full((1, 4, 3), 3e19, np.float32)
    with pytest.raises(NonFiniteError, match="sgd CAV biases.*overflowed"):
        cav_lib.fit_cavs(huge, neg, method="sgd")


def test_gram_fit_traces_with_closed_over_labels():
    # y closed over (concrete) while the Gram matrix is traced, as in a
    # vmapped bulk fit: the entry check must skip, and the fit equal eager.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, 30)).astype(np.float32)
    x[:6] += 0.5
    gram = jax.numpy.asarray(x @ x.T)
    y = jax.numpy.asarray(np.repeat([1.0, -1.0], 6), np.float32)
    traced = jax.jit(lambda g: sgd.fit_sgd_gram(g, y, 7))(gram)
    eager = sgd.fit_sgd_gram(gram, y, 7)
    for a, b in zip(traced, eager):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
