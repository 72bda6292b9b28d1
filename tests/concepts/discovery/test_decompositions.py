"""PCA (exact, randomized), FastICA and k-means against NumPy / scikit-learn."""

import jax
import numpy as np
import pytest
from sklearn.cluster import KMeans

from jaxcxai.concepts.discovery import ica, kmeans, matching, pca


def test_pca_equals_numpy_svd_up_to_sign():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 12)) @ rng.standard_normal((12, 12)) + 3.0
    with jax.enable_x64(True):
        r = pca.fit_pca(x, 4)
        comps, codes, mean = (np.asarray(a) for a in (r.components, r.codes, r.mean))
    u, s, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    signs = np.sign(np.sum(comps * vt[:4], axis=1))
    assert np.all(np.abs(signs) == 1)
    np.testing.assert_allclose(comps, signs[:, None] * vt[:4], atol=1e-12)
    np.testing.assert_allclose(codes, (u[:, :4] * s[:4]) * signs[None], atol=1e-10)
    np.testing.assert_allclose(mean, x.mean(0), atol=1e-12)
    # Sign convention: the largest-|.| entry of every component is positive.
    assert np.all(comps[np.arange(4), np.abs(comps).argmax(1)] > 0)
    np.testing.assert_allclose(codes.var(0, ddof=1), s[:4] ** 2 / 49, rtol=1e-10)


def test_randomized_svd_close_to_exact_on_low_rank():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 6)) @ rng.standard_normal((6, 120))
    x += 1e-6 * rng.standard_normal(x.shape)
    with jax.enable_x64(True):
        r = pca.fit_pca(x, 6, jax.random.key(0), method="randomized", center=False)
        u, s, vt = (np.asarray(a) for a in pca.randomized_svd(x, 6, jax.random.key(1)))
    u_ref, s_ref, vt_ref = np.linalg.svd(x, full_matrices=False)
    np.testing.assert_allclose(s, s_ref[:6], rtol=1e-8)
    np.testing.assert_allclose(np.abs(np.sum(vt * vt_ref[:6], 1)), 1.0, atol=1e-8)
    np.testing.assert_allclose(
        np.abs(np.asarray(r.components)), np.abs(vt_ref[:6]), atol=1e-7
    )
    np.testing.assert_allclose((u * s) @ vt, x, atol=1e-4)


def test_fastica_separates_planted_laplace_sources():
    rng = np.random.default_rng(2)
    sources = rng.laplace(size=(2000, 4))
    mixing = rng.standard_normal((4, 10))
    x = (sources @ mixing + 0.01 * rng.standard_normal((2000, 10))).astype(np.float32)
    r = ica.fastica(x, 4, jax.random.key(0), iters=100)
    corr = np.corrcoef(np.asarray(r.codes).T, sources.T)[:4, 4:]
    m = matching.match(corr, np.eye(4), absolute=True)  # rows of corr vs sources
    assert np.abs(corr[m.rows, m.cols]).min() >= 0.95
    # Sources have unit variance and rebuild the data through the components.
    np.testing.assert_allclose(np.asarray(r.codes).std(0), 1.0, atol=1e-3)
    rec = np.asarray(r.codes) @ np.asarray(r.components) + np.asarray(r.mean)
    assert np.abs(rec - x).max() < 0.1
    # The mixing directions are recovered up to scale and sign.
    m2 = matching.match(np.asarray(r.components), mixing, absolute=True)
    assert m2.cosine.min() >= 0.99


def _blobs(seed=3):
    rng = np.random.default_rng(seed)
    centers = 4.0 * rng.standard_normal((6, 5))
    return np.concatenate([c + rng.standard_normal((60, 5)) for c in centers]).astype(
        np.float32
    )


def test_kmeans_matches_sklearn_objective_with_same_init():
    x = _blobs()
    init = np.asarray(kmeans.kmeans_plusplus(x, 6, jax.random.key(0)))
    # k-means++ draws its centres from the data rows.
    assert all(np.any(np.all(x == c, axis=1)) for c in init)
    r = kmeans.fit_kmeans(x, 6, None, iters=30, init=init)
    sk = KMeans(6, init=init, n_init=1, max_iter=30, tol=0, algorithm="lloyd").fit(x)
    losses = np.asarray(r.losses)
    assert abs(losses[-1] - sk.inertia_) <= 0.01 * sk.inertia_
    assert np.all(np.diff(losses) <= 1e-4 * losses[0])
    labels = np.asarray(r.codes).argmax(1)
    d2 = ((x[:, None] - np.asarray(r.components)[None]) ** 2).sum(-1)
    np.testing.assert_allclose(losses[-1], d2.min(1).sum(), rtol=1e-5)
    np.testing.assert_array_equal(labels, d2.argmin(1))


def test_kmeans_plusplus_beats_uniform_seeding_on_blobs():
    x = _blobs(seed=4)
    pp, uni = [], []
    for s in range(8):
        c = np.asarray(kmeans.kmeans_plusplus(x, 6, jax.random.key(s)))
        pp.append(((x[:, None] - c[None]) ** 2).sum(-1).min(1).sum())
        c = x[np.random.default_rng(s).choice(len(x), 6, replace=False)]
        uni.append(((x[:, None] - c[None]) ** 2).sum(-1).min(1).sum())
    assert np.median(pp) < np.median(uni)


def test_bad_input_is_rejected():
    x = np.random.default_rng(0).standard_normal((10, 4))
    bad = x.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="acts has 1 non-finite"):
        pca.fit_pca(bad, 2)
    with pytest.raises(ValueError, match="k=5 exceeds the activation dimension d=4"):
        ica.fastica(x, 5, jax.random.key(0))
    with pytest.raises(ValueError, match="k=11 exceeds the number of rows N=10"):
        kmeans.fit_kmeans(x, 11, jax.random.key(0))
    with pytest.raises(ValueError, match="randomized"):
        pca.fit_pca(x, 2, method="randomized")
