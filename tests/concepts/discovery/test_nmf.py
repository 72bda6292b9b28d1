"""NMF / semi-NMF: planted factors, monotone losses, scikit-learn parity,
seeds/ranks/layers batching and sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.decomposition import NMF

from jaxcxai import parallel
from jaxcxai.concepts.discovery import bulk, matching
from jaxcxai.concepts.discovery import nmf as nmf_lib


def _planted(seed=0, n=300, d=40, k=5, noise=1e-3):
    rng = np.random.default_rng(seed)
    w = rng.exponential(size=(n, k)) * (rng.random((n, k)) < 0.6)
    h = rng.exponential(size=(k, d)) * (rng.random((k, d)) < 0.5)
    return w @ h + noise * rng.random((n, d)), w, h


def _custom_init(x, k, seed):
    rng = np.random.default_rng(seed)
    avg = np.sqrt(x.mean() / k)
    w = avg * np.abs(rng.standard_normal((x.shape[0], k)))
    h = avg * np.abs(rng.standard_normal((k, x.shape[1])))
    return w, h


@pytest.mark.parametrize("solver,iters", [("mu", 1000), ("hals", 200)])
def test_recovers_planted_factors(solver, iters):
    x, _, h = _planted()
    r = bulk.fit_nmf(
        x.astype(np.float32), 5, jax.random.key(1), solver=solver, iters=iters
    )
    m = matching.match(np.asarray(r.components), h)
    assert m.cosine.min() >= 0.99
    # Codes recover the planted codes too (up to the matched scale).
    w = np.asarray(r.codes)[:, m.rows]
    _, w_true, _ = _planted()
    corr = [np.corrcoef(w[:, i], w_true[:, j])[0, 1] for i, j in zip(range(5), m.cols)]
    assert min(corr) >= 0.99


@pytest.mark.parametrize("solver,sk_solver", [("mu", "mu"), ("hals", "cd")])
def test_equals_sklearn_with_same_init(solver, sk_solver):
    x = np.abs(np.random.default_rng(3).standard_normal((60, 20)))
    w0, h0 = _custom_init(x, 4, 0)
    with jax.enable_x64(True):
        r = bulk.fit_nmf(
            x, 4, jax.random.key(0), solver=solver, iters=30, init=(w0, h0)
        )
        comps, codes, losses = (np.asarray(a) for a in r[:3])
    sk = NMF(4, solver=sk_solver, init="custom", max_iter=30, tol=0)
    w = sk.fit_transform(x, W=w0.copy(), H=h0.copy())
    np.testing.assert_allclose(codes, w, atol=1e-10)
    np.testing.assert_allclose(comps, sk.components_, atol=1e-10)
    np.testing.assert_allclose(losses[-1], 0.5 * sk.reconstruction_err_**2, rtol=1e-9)


@pytest.mark.parametrize("solver", ["mu", "hals"])
def test_loss_never_increases_and_is_exact(solver):
    x, _, _ = _planted(seed=2, n=80, d=20, k=4, noise=0.1)
    with jax.enable_x64(True):
        r = bulk.fit_nmf(x, 4, jax.random.key(2), solver=solver, iters=60, l1=0.05)
        losses = np.asarray(r.losses)
        w, h = np.asarray(r.codes), np.asarray(r.components)
    assert np.all(np.diff(losses) <= 1e-12 * losses[0])
    direct = 0.5 * np.sum((x - w @ h) ** 2) + 0.05 * w.sum()
    np.testing.assert_allclose(losses[-1], direct, rtol=1e-9)


def test_semi_nmf_monotone_and_fits_signed_data():
    rng = np.random.default_rng(4)
    w_true = rng.exponential(size=(120, 3))
    h_true = rng.standard_normal((3, 15))
    x = w_true @ h_true + 1e-3 * rng.standard_normal((120, 15))
    with jax.enable_x64(True):
        r = bulk.fit_semi_nmf(x, 3, jax.random.key(0), iters=300)
        losses, w, h = (np.asarray(a) for a in (r.losses, r.codes, r.components))
    assert np.all(np.diff(losses) <= 1e-9 * losses[0])
    assert w.min() >= 0 and h.min() < 0
    assert 1 - np.sum((x - w @ h) ** 2) / np.sum((x - x.mean(0)) ** 2) > 0.999


def test_nndsvd_matches_numpy_formula():
    x = np.abs(np.random.default_rng(5).standard_normal((30, 12)))
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    w_ref, h_ref = np.zeros((30, 3)), np.zeros((3, 12))
    for j in range(3):
        a, b = u[:, j], vt[j]
        ap, an, bp, bn = (np.maximum(v, 0) for v in (a, -a, b, -b))
        mp = np.linalg.norm(ap) * np.linalg.norm(bp)
        mn = np.linalg.norm(an) * np.linalg.norm(bn)
        uu, vv, sig = (ap, bp, mp) if mp > mn else (an, bn, mn)
        lam = np.sqrt(s[j] * sig)
        w_ref[:, j] = lam * uu / np.linalg.norm(uu)
        h_ref[j] = lam * vv / np.linalg.norm(vv)
    w_ref[w_ref < 1e-6], h_ref[h_ref < 1e-6] = 0, 0
    with jax.enable_x64(True):
        w, h = nmf_lib.init_factors(jnp.asarray(x), 3, jax.random.key(0), "nndsvd")
    np.testing.assert_allclose(np.asarray(w), w_ref, atol=1e-10)
    np.testing.assert_allclose(np.asarray(h), h_ref, atol=1e-10)


def test_seeds_vmapped_equal_loop():
    x, _, _ = _planted(seed=6, n=64, d=16, k=3)
    x = x.astype(np.float32)
    key = jax.random.key(7)
    many = bulk.nmf_seeds(x, 3, key, 3, solver="hals", iters=20)
    for s, kk in enumerate(jax.random.split(key, 3)):
        one = bulk.fit_nmf(x, 3, kk, solver="hals", iters=20)
        np.testing.assert_allclose(
            many.components[s], one.components, rtol=1e-4, atol=1e-5
        )
        # float32 losses carry ~eps ||X||^2 of rounding (trace identity).
        atol = 1e-5 * float(one.losses[0])
        np.testing.assert_allclose(many.losses[s], one.losses, rtol=1e-4, atol=atol)


def test_ranks_padded_equal_unpadded():
    x = np.abs(np.random.default_rng(8).standard_normal((50, 12)))
    ranks = [2, 4]
    with jax.enable_x64(True):
        res, mask = bulk.nmf_ranks(x, ranks, jax.random.key(0), iters=25)
        for i, r in enumerate(ranks):
            codes = np.asarray(res.codes[i])
            # The reference starts from the same draw: the first r slots.
            kk = jax.random.fold_in(jax.random.key(0), i)
            wi, hi = nmf_lib.init_factors(jnp.asarray(x), 4, kk, "random", mask[i])
            scale = np.sqrt(4 / r)
            ref = bulk.fit_nmf(
                x,
                r,
                None,
                iters=25,
                init=(np.asarray(wi)[:, :r] * scale, np.asarray(hi)[:r] * scale),
            )
            np.testing.assert_allclose(codes[:, :r], np.asarray(ref.codes), atol=1e-9)
            assert np.all(codes[:, r:] == 0) and np.all(
                np.asarray(res.components[i])[r:] == 0
            )
            np.testing.assert_allclose(np.asarray(res.losses[i]), ref.losses, rtol=1e-9)


def test_layers_grouped_padded_and_single_agree():
    rng = np.random.default_rng(9)
    layers = {
        "a": np.abs(rng.standard_normal((40, 10))),
        "b": np.abs(rng.standard_normal((40, 10))),
        "c": np.abs(rng.standard_normal((24, 14))),
    }
    key = jax.random.key(3)
    with jax.enable_x64(True):
        grouped = bulk.nmf_layers(layers, 3, key, 2, iters=15)
        padded = bulk.nmf_layers(layers, 3, key, 2, iters=15, pad=True)
        for i, (name, x) in enumerate(layers.items()):
            single = bulk.nmf_seeds(x, 3, jax.random.fold_in(key, i), 2, iters=15)
            for res in (grouped[name], padded[name]):
                assert res.components.shape == (2, 3, x.shape[1])
                assert res.codes.shape == (2, x.shape[0], 3)
                np.testing.assert_allclose(res.components, single.components, atol=1e-9)
                np.testing.assert_allclose(res.losses, single.losses, rtol=1e-9)


@pytest.mark.multidevice
def test_sharded_equals_unsharded():
    x, _, _ = _planted(seed=10, n=90, d=16, k=3)  # 90 rows: padded to 96
    x = x.astype(np.float32)
    key = jax.random.key(0)
    ref = bulk.nmf_seeds(x, 3, key, 2, iters=30)
    out = bulk.nmf_seeds(x, 3, key, 2, iters=30, mesh=parallel.make_mesh())
    assert out.codes.shape == ref.codes.shape == (2, 90, 3)
    np.testing.assert_allclose(out.components, ref.components, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(out.codes, ref.codes, rtol=2e-4, atol=1e-5)
    atol = 1e-5 * float(ref.losses.max())
    np.testing.assert_allclose(out.losses, ref.losses, rtol=1e-4, atol=atol)


def test_bad_input_is_rejected():
    x = np.abs(np.random.default_rng(0).standard_normal((6, 4, 4, 5)))
    bad = x.copy()
    bad[0, 0, 0, :2] = np.nan
    with pytest.raises(ValueError, match="acts has 2 non-finite"):
        bulk.fit_nmf(bad, 2, jax.random.key(0))
    with pytest.raises(ValueError, match="k=6 exceeds the activation dimension d=5"):
        bulk.fit_nmf(x, 6, jax.random.key(0))
    with pytest.raises(ValueError, match="k=4 exceeds the number of rows N=3"):
        bulk.fit_nmf(x[0, 0, :3], 4, jax.random.key(0))
    neg = x.copy()
    neg[1, 2, 3, 4] = -0.5
    with pytest.raises(ValueError, match="acts has 1 negative"):
        bulk.fit_nmf(neg, 2, jax.random.key(0))
    with pytest.raises(ValueError, match=r"layers\['b'\] has 2 non-finite"):
        bulk.nmf_layers({"a": x, "b": bad}, 1, jax.random.key(0), 1)
    with pytest.raises(ValueError, match="solver"):
        bulk.fit_nmf(x, 2, jax.random.key(0), solver="als")
