"""Tabular LIME: the discretiser against NumPy (and the lime package), the
sampler's distribution against scipy's truncated normal (and each draw
against scipy's inverse CDF of its counter-hash uniform), `perturb.uniform`
against jax's threefry, the surrogate fit against scikit-learn, and a linear model's
signs and order."""

import functools

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special as spspecial
from scipy import stats as sps
from sklearn.linear_model import LinearRegression, Ridge

from jaxcxai.attribution.lime import _kernel_weights, lime_tabular
from jaxcxai.attribution.lime_fit import fit_surrogate
from jaxcxai.attribution.lime_sampling import (
    lime_neighbourhood,
    lime_stats,
    normal_quantile,
)
from jaxcxai.attribution.perturb import uniform
from jaxcxai.counter_hash import hash_uniform
from jaxcxai.parallel import make_mesh

D, S = 5, 500
W = np.array([3.0, -2.0, 1.0, -0.5, 0.25], np.float32)


@functools.cache
def _train(n=401, seed=0):  # (n - 1) * 0.25 is an integer: quartiles are data points
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)


@functools.cache
def _model():
    jax_fn = lambda z: jnp.stack([z @ jnp.asarray(W), -(z @ jnp.asarray(W))], axis=1)
    np_fn = lambda z: np.stack([z @ W, -(z @ W)], axis=1)
    return jax_fn, np_fn


def test_normal_quantile_matches_scipy_ndtri_in_both_tails_and_the_body():
    # float32 levels from 1e-30 to 1 - 2^-24, dense around the branch switch
    # (w = 5, p ~ 0.0017 and 0.9983); reference: float64 scipy ndtri.
    # Perturbing one Giles or Acklam coefficient in the 4th digit fails it.
    p = np.concatenate(
        [
            np.logspace(-30, -1, 4001),
            np.linspace(0.0015, 0.0019, 2001),
            np.linspace(0.01, 0.99, 4001),
            1.0 - np.linspace(0.0015, 0.0019, 2001),
            1.0 - np.logspace(-7.2, -1, 2001),
        ]
    ).astype(np.float32)
    want = spspecial.ndtri(p.astype(np.float64))
    got = np.asarray(jax.jit(normal_quantile)(jnp.asarray(p)), np.float64)
    rel = np.abs(got - want) / np.maximum(np.abs(want), 1e-3)
    assert rel.max() < 5e-7, (p[np.argmax(rel)], rel.max())


def test_discretiser_matches_numpy_quartiles():
    train = _train()
    with jax.enable_x64(True):
        st = jax.tree.map(np.asarray, lime_stats(train.astype(np.float64)))
    t = train.astype(np.float64)
    q = np.percentile(t, [25, 50, 75], axis=0).T
    np.testing.assert_allclose(st.quartiles, q, rtol=1e-12)
    for j in range(D):
        b = np.searchsorted(q[j], t[:, j], side="left")
        for k in range(4):
            sel = t[b == k, j]
            np.testing.assert_allclose(st.freqs[j, k], len(sel) / len(t))
            np.testing.assert_allclose(st.means[j, k], sel.mean(), rtol=1e-10)
            np.testing.assert_allclose(st.stds[j, k], sel.std() + 1e-11, rtol=1e-10)
        np.testing.assert_allclose(st.lows[j], [t[:, j].min(), *q[j]])
        np.testing.assert_allclose(st.highs[j], [*q[j], t[:, j].max()])


def test_discretiser_matches_lime_package():
    lime_tab = pytest.importorskip("lime.lime_tabular")
    train = _train().astype(np.float64)
    ref = lime_tab.LimeTabularExplainer(train, random_state=0)
    with jax.enable_x64(True):
        st = jax.tree.map(np.asarray, lime_stats(train))
    for j in range(D):
        np.testing.assert_allclose(st.means[j], ref.discretizer.means[j], rtol=1e-10)
        np.testing.assert_allclose(st.stds[j], ref.discretizer.stds[j], rtol=1e-10)
        np.testing.assert_allclose(st.lows[j], ref.discretizer.mins[j])
        np.testing.assert_allclose(st.highs[j], ref.discretizer.maxs[j])
        np.testing.assert_allclose(st.freqs[j], ref.feature_frequencies[j])


def test_neighbourhood_follows_bin_frequencies_and_truncated_normals():
    train = _train()
    st = lime_stats(train)
    x = train[7]
    n = 20000
    values, binary = jax.jit(lime_neighbourhood, static_argnums=3)(
        st, x, jax.random.key(0), n
    )
    values, binary = np.asarray(values, np.float64), np.asarray(binary)
    np.testing.assert_array_equal(values[0], x)
    assert binary[0].all()
    q, sn = np.asarray(st.quartiles, np.float64), jax.tree.map(np.asarray, st)
    for j in range(D):
        bins = np.searchsorted(q[j], values[1:, j], side="left")
        b0 = np.searchsorted(q[j], x[j], side="left")
        assert np.mean((bins == b0) == binary[1:, j]) > 0.999
        freq = np.bincount(bins, minlength=4) / (n - 1)
        np.testing.assert_allclose(freq, sn.freqs[j], atol=0.015)  # ~5 SE
        for k in range(4):
            v = values[1:, j][bins == k]
            lo, hi, m, s = sn.lows[j, k], sn.highs[j, k], sn.means[j, k], sn.stds[j, k]
            tn = sps.truncnorm((lo - m) / s, (hi - m) / s, loc=m, scale=s)
            assert lo - 1e-6 <= v.min() and v.max() <= hi + 1e-6
            assert abs(v.mean() - tn.mean()) < 5 * tn.std() / np.sqrt(len(v))


@pytest.mark.parametrize("shape", [(7,), (5, 12), (3, 4, 5)])
def test_uniform_is_jax_threefry_stream(shape):
    """Draw i is the top 24 bits of word i of jax's own threefry_2x32 over
    the counters 0..2 ceil(size / 2) - 1 (its words 0 then words 1)."""
    key = jax.random.key(3)
    size = int(np.prod(shape))
    counts = jnp.arange(2 * -(-size // 2), dtype=jnp.uint32)
    bits = jax.extend.random.threefry_2x32(jax.random.key_data(key), counts)
    want = (np.asarray(bits[:size]) >> 8).reshape(shape) / 2.0**24
    np.testing.assert_array_equal(np.asarray(uniform(key, shape)), want)
    got_t = jax.jit(lambda k: uniform(k, shape, transpose=True))(key)
    np.testing.assert_array_equal(np.asarray(got_t), want.T)
    rbg = jax.random.key(3, impl="rbg")  # other implementations: jax's draw
    np.testing.assert_array_equal(
        uniform(rbg, shape, transpose=True), jax.random.uniform(rbg, shape).T
    )


def test_neighbourhood_is_inverse_cdf_of_its_uniforms():
    """Row s, feature j comes from u = hash_uniform(key, (d, S))[j, s]: bin k by
    the cumulative bin frequencies, then scipy's truncated-normal quantile
    q = (u - below_k) / freq_k in float64 (1 - q for a bin sampled mirrored,
    one reaching further above its mean than below)."""
    train = _train()
    st, x, key, n = lime_stats(train), train[3], jax.random.key(5), 3000
    values, binary = jax.jit(lime_neighbourhood, static_argnums=3)(st, x, key, n)
    u = np.asarray(hash_uniform(key, (D, n)), np.float64).T
    sn = jax.tree.map(lambda a: np.asarray(a, np.float64), st)
    cum = np.cumsum(sn.freqs, axis=1)
    worst = 0.0
    for j in range(D):
        k = (u[1:, j, None] >= cum[j, None, :3]).sum(1)
        level = (u[1:, j] - (cum[j] - sn.freqs[j])[k]) / sn.freqs[j][k]
        m, s = sn.means[j, k], sn.stds[j, k]
        a, b = (sn.lows[j, k] - m) / s, (sn.highs[j, k] - m) / s
        level = np.where(a + b > 0, 1 - level, level)
        want = sps.truncnorm.ppf(level, a, b, loc=m, scale=s)
        worst = max(worst, np.abs(np.asarray(values)[1:, j] - want).max())
        b0 = np.searchsorted(sn.quartiles[j], x[j], side="left")
        np.testing.assert_array_equal(np.asarray(binary)[1:, j], k == b0)
    assert worst < 2e-4, worst


def test_kernel_on_binary_rows_equals_lime_package():
    """Distance = sqrt(#features whose bin changed); lime's kernel of it."""
    lime_tab = pytest.importorskip("lime.lime_tabular")
    binary = np.tril(np.ones((D + 1, D), bool), -1)[::-1]  # 5, 4, ..., 0 kept
    width = 0.75 * np.sqrt(D)
    ref = lime_tab.LimeTabularExplainer(_train().astype(np.float64), random_state=0)
    changed = (~binary).sum(1)
    want = ref.base.kernel_fn(np.sqrt(changed))
    np.testing.assert_allclose(
        np.asarray(_kernel_weights(binary, width)), want, rtol=1e-6
    )


def test_surrogate_fit_equals_sklearn():
    rng = np.random.default_rng(3)
    z = (rng.random((300, 8)) < 0.6).astype(np.float64)
    y = z @ rng.normal(size=8) + 0.3 * rng.normal(size=300)
    w = rng.random(300)
    fits = lambda z, y, w: [fit_surrogate(z, y, w, k, sel) for k, sel in
                            ((8, "none"), (4, "highest_weights"), (3, "forward_selection"))]  # fmt: skip
    with jax.enable_x64(True):
        got_all, got_hw, got_fs = map(np.asarray, jax.jit(fits)(jnp.asarray(z), y, w))
    ridge = lambda cols, a: Ridge(alpha=a).fit(z[:, cols], y, sample_weight=w).coef_
    np.testing.assert_allclose(got_all, ridge(list(range(8)), 1.0), atol=1e-10)
    top = sorted(np.argsort(-np.abs(ridge(list(range(8)), 0.01)))[:4])
    want = np.zeros(8)
    want[top] = ridge(top, 1.0)
    np.testing.assert_allclose(got_hw, want, atol=1e-10)
    used = []  # lime's greedy forward selection, with sklearn's weighted R^2
    for _ in range(3):
        score = lambda j: LinearRegression().fit(z[:, used + [j]], y, sample_weight=w).score(
            z[:, used + [j]], y, sample_weight=w)  # fmt: skip
        used.append(max((j for j in range(8) if j not in used), key=score))
    want = np.zeros(8)
    want[used] = ridge(used, 1.0)
    np.testing.assert_allclose(got_fs, want, atol=1e-6)


def test_linear_model_recovers_signs_and_order():
    train = _train()
    st = lime_stats(train)
    jax_fn, _ = _model()
    q = np.asarray(st.quartiles)
    # every feature in its top (or bottom) bin: "same bin" means "high" (low)
    high, low = q[:, 2] + 0.5, q[:, 0] - 0.5
    x = np.stack([high] * 10 + [low] * 10).astype(np.float32)
    # 5000 samples (lime's default): the gaps between |phi| are ~6 of their SDs
    phi = np.asarray(lime_tabular(jax_fn, x, st, 0, key=jax.random.key(1)))
    side = np.repeat([1.0, -1.0], 10)[:, None]
    np.testing.assert_array_equal(np.sign(phi), side * np.sign(W)[None])
    order = np.argsort(-np.abs(phi), axis=1)
    np.testing.assert_array_equal(order, np.tile(np.argsort(-np.abs(W)), (20, 1)))


def test_same_distribution_as_lime_package():
    """Mean weights over 20 draws of each agree within 4 standard errors."""
    lime_tab = pytest.importorskip("lime.lime_tabular")
    train = _train()
    jax_fn, np_fn = _model()
    x, reps = train[0], 20
    ref = []
    for seed in range(reps):
        explainer = lime_tab.LimeTabularExplainer(
            train.astype(np.float64), random_state=seed
        )
        exp = explainer.explain_instance(x, np_fn, labels=(0,), num_features=D)
        ref.append([dict(exp.local_exp[0])[j] for j in range(D)])
    ref = np.array(ref)
    xs = np.repeat(x[None], reps, axis=0)
    ours = np.asarray(
        lime_tabular(jax_fn, xs, lime_stats(train), 0, key=jax.random.key(2))
    )
    se = np.sqrt((ref.var(0) + ours.var(0)) / reps)
    assert np.all(np.abs(ref.mean(0) - ours.mean(0)) < 4 * se), (
        ref.mean(0),
        ours.mean(0),
        se,
    )


def test_reproducible_vmapped_equals_looped_host_equals_jax():
    train = _train()
    st = lime_stats(train)
    jax_fn, np_fn = _model()
    x = train[:3]
    run = lambda key, xs=x, **kw: np.asarray(
        lime_tabular(jax_fn, xs, st, key=key, num_samples=S, num_features=3, **kw))  # fmt: skip
    a, b, c = run(jax.random.key(0)), run(jax.random.key(0)), run(jax.random.key(1))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4
    keys = jax.random.split(jax.random.key(4), 3)
    looped = np.concatenate([run(keys[i : i + 1], x[i : i + 1]) for i in range(3)])
    # float32 ridge solves: a few ulps apart with batch shape (CPU-dependent).
    np.testing.assert_allclose(run(keys), looped, rtol=2e-5, atol=1e-5)
    host = lime_tabular(
        np_fn, x, st, key=keys, num_samples=S, num_features=3, host=True
    )
    np.testing.assert_allclose(np.asarray(host), looped, rtol=2e-5, atol=1e-5)
    np.testing.assert_allclose(run(keys, target="lime_default"), run(keys, target=1))


@pytest.mark.multidevice
def test_sharded_equals_unsharded():
    train = _train()
    st = lime_stats(train)
    jax_fn, _ = _model()
    x = train[:5]
    kw = {
        "key": jax.random.key(0),
        "num_samples": S,
        "num_features": 3,
        "batch_size": 2,
    }
    plain = lime_tabular(jax_fn, x, st, **kw)
    sharded = lime_tabular(jax_fn, x, st, mesh=make_mesh(), **kw)
    np.testing.assert_allclose(
        np.asarray(sharded), np.asarray(plain), rtol=2e-5, atol=1e-5
    )


def test_bad_inputs_name_the_argument():
    train = _train()
    st = lime_stats(train)
    jax_fn, _ = _model()
    key = jax.random.key(0)
    x = train[:2].copy()
    x[1, 3] = np.nan
    with pytest.raises(ValueError, match="x has 1 non-finite"):
        lime_tabular(jax_fn, x, st, key=key)
    with pytest.raises(ValueError, match="train has 1 non-finite"):
        lime_stats(x)
    with pytest.raises(ValueError, match="target"):
        lime_tabular(jax_fn, train[:2], st, 2, key=key)
    with pytest.raises(ValueError, match="x must have 5 features"):
        lime_tabular(jax_fn, train[:2, :4], st, key=key)
    with pytest.raises(ValueError, match="feature_selection"):
        lime_tabular(jax_fn, train[:2], st, key=key, feature_selection="lasso")
    with pytest.raises(ValueError, match="num_features"):
        lime_tabular(jax_fn, train[:2], st, key=key, num_features=0)
