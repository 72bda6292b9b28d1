"""KernelSHAP against brute-force Shapley values (float64 NumPy enumeration),
a linear model's closed form, efficiency, and shap's budget allocation."""

import functools
import itertools
from math import comb, factorial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.attribution.coalitions import coalition_plan, sample_coalitions
from jaxcxai.attribution.kernel_shap import kernel_shap
from jaxcxai.parallel import make_mesh


@functools.cache  # one function object per d: tests share compiled programs
def _mlp(d, seed=0):
    rng = np.random.default_rng(seed)
    w1, w2 = rng.normal(size=(d, 6)), rng.normal(size=(6, 3))
    np_fn = lambda z: np.tanh(z @ w1) @ w2
    jax_fn = lambda z: jnp.tanh(z @ jnp.asarray(w1, z.dtype)) @ jnp.asarray(w2, z.dtype)
    return np_fn, jax_fn


def brute_force(fn, x, bg):
    """Interventional Shapley values, all classes: (d, C), by the subset formula."""
    d = x.shape[0]

    def v(s):
        rows = bg.copy()
        rows[:, list(s)] = x[list(s)]
        return fn(rows).mean(0)

    phi = np.zeros((d, fn(x[None]).shape[1]))
    for i in range(d):
        rest = [j for j in range(d) if j != i]
        for k in range(d):
            w = factorial(k) * factorial(d - k - 1) / factorial(d)
            for s in itertools.combinations(rest, k):
                phi[i] += w * (v(s + (i,)) - v(s))
    return phi


def _data(d, n=2, nb=5, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(nb, d))


@pytest.mark.parametrize("d", [3, 8])
def test_exact_mode_equals_brute_force(d):
    np_fn, jax_fn = _mlp(d)
    x, bg = _data(d)
    want = np.stack([brute_force(np_fn, xi, bg) for xi in x])
    assert coalition_plan(d, None).exact  # 2d + 2048 >= 2^d - 2 for d <= 8
    with jax.enable_x64(True):
        got = kernel_shap(
            jax_fn, jnp.asarray(x), jnp.asarray(bg), "all", key=jax.random.key(0)
        )
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-6, rtol=0)


def test_sampled_mode_close_to_exact_and_efficient():
    d = 8
    np_fn, jax_fn = _mlp(d)
    x, bg = _data(d, n=4)
    want = np.stack([brute_force(np_fn, xi, bg) for xi in x])
    plan = coalition_plan(d, 120)
    assert not plan.exact and plan.num_random > 0
    got = np.asarray(
        kernel_shap(
            jax_fn,
            x.astype(np.float32),
            bg.astype(np.float32),
            "all",
            key=jax.random.key(3),
            nsamples=120,
        )  # fmt: skip
    )
    # 120 of the 254 coalitions: sizes 1, 7 (16 rows) enumerated, 104 sampled.
    # Measured relative L2 errors are 0.01-0.05; the bound leaves room for keys.
    rel = np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)
    assert rel.mean() < 0.1, rel
    total = np_fn(x) - np_fn(bg).mean(0)
    np.testing.assert_allclose(got.sum(1), total, atol=2e-5)


def test_linear_model_closed_form_even_when_sampled():
    """v(z) is linear in z here, so the sampled fit is exact too."""
    d = 6
    rng = np.random.default_rng(2)
    w, b = (
        rng.normal(size=(d, 3)).astype(np.float32),
        rng.normal(size=3).astype(np.float32),
    )
    x = rng.normal(size=(3, d)).astype(np.float32)
    bg = rng.normal(size=(20, d)).astype(np.float32)
    f = lambda z: z @ w + b[None]
    got = kernel_shap(f, x, bg, "all", key=jax.random.key(0), nsamples=40)
    want = w[None] * (x - bg.mean(0))[:, :, None]
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-5)


def test_host_function_equals_jax_function():
    d = 6
    np_fn, jax_fn = _mlp(d)
    x, bg = _data(d, n=3, nb=20)
    kw = {"key": jax.random.key(5), "nsamples": 40}
    ours = kernel_shap(jax_fn, x.astype(np.float32), bg.astype(np.float32), "all", **kw)
    host = kernel_shap(np_fn, x, bg, "all", host=True, rows_per_call=37, **kw)
    np.testing.assert_allclose(np.asarray(host), np.asarray(ours), atol=2e-5)


def test_reproducible_vmapped_equals_looped_and_targets():
    d = 6
    np_fn, jax_fn = _mlp(d)
    x, bg = (a.astype(np.float32) for a in _data(d, n=3, nb=20))
    run = lambda key, xs=x: np.asarray(
        kernel_shap(jax_fn, xs, bg, "all", key=key, nsamples=40)
    )
    a, b, c = run(jax.random.key(0)), run(jax.random.key(0)), run(jax.random.key(1))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    keys = jax.random.split(jax.random.key(7), 3)
    batched = run(keys)
    looped = np.concatenate([run(keys[i : i + 1], x[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-5)  # float32
    # target selection reads the same (N, d, C) values
    pred = np_fn(x).argmax(1)
    got = np.asarray(kernel_shap(jax_fn, x, bg, key=jax.random.key(0), nsamples=40))
    np.testing.assert_array_equal(got, a[np.arange(3), :, pred])
    t = np.array([2, 0, 1])
    got = np.asarray(kernel_shap(jax_fn, x, bg, t, key=jax.random.key(0), nsamples=40))
    np.testing.assert_array_equal(got, a[np.arange(3), :, t])


@pytest.mark.multidevice
def test_sharded_equals_unsharded():
    d = 6
    _, jax_fn = _mlp(d)
    x, bg = (a.astype(np.float32) for a in _data(d, n=5, nb=20))
    kw = {"key": jax.random.key(0), "nsamples": 40, "chunk_size": 7}
    plain = kernel_shap(jax_fn, x, bg, **kw)
    sharded = kernel_shap(jax_fn, x, bg, mesh=make_mesh(), **kw)
    np.testing.assert_allclose(np.asarray(sharded), np.asarray(plain), atol=1e-5)


def test_plan_follows_shap_allocation():
    plan = coalition_plan(12, 2048)  # the benchmark's setting
    # shap enumerates sizes 1-3 with complements; 1452 rows are drawn from
    # sizes 4, 5 (paired) and 6.
    full = 2 * sum(comb(12, s) for s in (1, 2, 3))
    assert len(plan.full_masks) == full == 596 and plan.num_random == 2048 - full
    assert list(plan.sizes) == [4, 5, 6] and list(plan.paired) == [True, True, False]
    assert coalition_plan(12, None).nsamples == 2 * 12 + 2048
    masks, weights = jax.jit(sample_coalitions, static_argnums=1)(
        jax.random.key(0), plan
    )
    masks = np.asarray(masks)
    sizes = masks[full:].sum(1)
    assert set(sizes) <= {4, 5, 6, 7, 8}
    # a paired draw is followed by its complement
    idx = np.flatnonzero(np.isin(sizes[:-1], (4, 5)))
    np.testing.assert_array_equal(masks[full + idx + 1], ~masks[full + idx])
    np.testing.assert_allclose(np.asarray(weights).sum(), 1.0, rtol=1e-5)


def test_enumerated_coalitions_equal_shaps():
    shap = pytest.importorskip("shap")
    explainer = shap.KernelExplainer(lambda z: z.sum(1), np.zeros((2, 12)))
    explainer.shap_values(np.ones((1, 12)), nsamples=2048, l1_reg=False, silent=True)
    plan = coalition_plan(12, 2048)
    full = len(plan.full_masks)
    np.testing.assert_array_equal(
        explainer.maskMatrix[:full].astype(bool), plan.full_masks
    )
    np.testing.assert_allclose(
        explainer.kernelWeights[:full], plan.full_weights, rtol=1e-12
    )
    np.testing.assert_allclose(explainer.kernelWeights[full:].sum(), plan.weight_left)


def test_bad_inputs_name_the_argument():
    d = 4
    _, jax_fn = _mlp(d)
    x, bg = (a.astype(np.float32) for a in _data(d))
    key = jax.random.key(0)
    bad = x.copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="x has 1 non-finite"):
        kernel_shap(jax_fn, bad, bg, key=key)
    bad_bg = bg.copy()
    bad_bg[2, 0] = np.inf
    with pytest.raises(ValueError, match="background has 1 non-finite"):
        kernel_shap(jax_fn, x, bad_bg, key=key)
    with pytest.raises(ValueError, match="target"):
        kernel_shap(jax_fn, x, bg, 3, key=key)
    with pytest.raises(ValueError, match="background must have 4 features"):
        kernel_shap(jax_fn, x, bg[:, :3], key=key)
    with pytest.raises(ValueError, match="nsamples"):
        kernel_shap(jax_fn, x, bg, key=key, nsamples=1)
    with pytest.raises(ValueError, match="key"):
        kernel_shap(jax_fn, x, bg, key=3)


def test_constrained_wls_singular_design_falls_back_to_least_squares():
    """Features 0 and 1 always enter together: Z'WZ is singular. The solve
    must stay finite, meet sum(phi) = total, reach the float64 constrained
    optimum and split the tied pair equally (the minimum-norm solution).
    Checked to fail with the exact solve alone (NaN / garbage phi)."""
    from jaxcxai.attribution.kernel_shap import constrained_wls

    rng = np.random.default_rng(0)
    d, m = 5, 12
    z = rng.integers(0, 2, size=(m, d)).astype(bool)
    z[:, 1] = z[:, 0]
    w = rng.uniform(0.5, 2.0, size=m)
    y = rng.normal(size=(m, 2))
    total = rng.normal(size=2)
    phi = np.asarray(
        constrained_wls(jnp.asarray(z), jnp.asarray(w, jnp.float32),
                        jnp.asarray(y, jnp.float32), jnp.asarray(total, jnp.float32))
    )  # fmt: skip
    assert np.isfinite(phi).all()
    np.testing.assert_allclose(phi.sum(0), total, atol=1e-4)
    np.testing.assert_allclose(phi[0], phi[1], atol=1e-4)
    # float64 reference: eliminate the constraint (phi_d = total - sum of the
    # rest) and minimise by lstsq; compare the objective values.
    zf, sw = z.astype(np.float64), np.sqrt(w)[:, None]
    for c in range(2):
        a = (zf[:, :-1] - zf[:, -1:]) * sw
        b = (y[:, c] - zf[:, -1] * total[c]) * sw[:, 0]
        best = np.linalg.lstsq(a, b, rcond=None)[0]
        ref = np.sum((a @ best - b) ** 2)
        ours = np.sum(((zf @ phi[:, c]) - y[:, c]) ** 2 * w)
        assert ours <= ref + 1e-4
