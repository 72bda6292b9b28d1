"""Perturbation components and projections against NumPy / scikit-learn."""

import jax
import numpy as np
import pytest
from sklearn.decomposition import PCA

from jaxcxai.adversarial.decomposition import (
    energy_ratio,
    fit_components,
    project,
    project_masked,
)


def _abs_cos(a, b):
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.abs(a @ b.T)


def test_pca_matches_svd_and_sklearn():
    rng = np.random.default_rng(0)
    d = (rng.normal(size=(40, 3)) @ rng.normal(size=(3, 7)) + 0.5).astype(np.float32)
    d += 0.01 * rng.normal(size=d.shape).astype(np.float32)
    comp = fit_components(d, 3)
    _, s, vt = np.linalg.svd(d.astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(np.diag(_abs_cos(comp.vectors, vt[:3])), 1, atol=1e-5)
    np.testing.assert_allclose(
        comp.explained_variance_ratio, s[:3] ** 2 / np.sum(s**2), atol=1e-5
    )
    assert comp.method == "pca"
    centered = fit_components(d, 3, center=True)
    ref = PCA(3).fit(d.astype(np.float64))
    np.testing.assert_allclose(
        centered.explained_variance_ratio, ref.explained_variance_ratio_, atol=1e-5
    )
    cos = np.diag(_abs_cos(centered.vectors, ref.components_))
    np.testing.assert_allclose(cos, 1, atol=1e-5)
    # spatial perturbations: every pixel vector is a row
    spatial = d.reshape(10, 2, 2, 7)
    np.testing.assert_allclose(fit_components(spatial, 3).vectors, comp.vectors)


@pytest.mark.parametrize("method", ["nmf_pm", "ica"])
def test_planted_directions_recovered(method):
    rng = np.random.default_rng(1)
    c = 8
    u = np.zeros((2, c))
    u[0, :4] = [1.0, -1.0, 0.5, -0.5]
    u[1, 4:] = [-1.0, 0.7, 1.0, -0.3]
    if method == "nmf_pm":  # non-negative weights of signed directions
        codes = rng.exponential(1.0, (300, 2))
    else:  # independent, non-Gaussian sources
        codes = rng.uniform(-1.0, 1.0, (300, 2)) * [3.0, 1.0]
    d = (codes @ u + 1e-3 * rng.normal(size=(300, c))).astype(np.float32)
    comp = fit_components(d, 2, method, jax.random.key(0), iters=300)
    cos = _abs_cos(np.asarray(comp.vectors, np.float64), u)
    assert cos.max(1).min() > 0.98, cos
    np.testing.assert_allclose(np.linalg.norm(comp.vectors, axis=1), 1, atol=1e-5)
    # explained ratios: ||(D - mean) u_j||^2 / ||D - mean||^2 in float64
    d64 = d.astype(np.float64)
    dc = d64 - d64.mean(0) if method == "ica" else d64
    v = np.asarray(comp.vectors, np.float64)
    ref = np.sum((dc @ v.T) ** 2, 0) / np.sum(dc**2)
    np.testing.assert_allclose(comp.explained_variance_ratio, ref, rtol=1e-4)
    assert np.all(np.diff(np.asarray(comp.explained_variance_ratio)) <= 0)


def test_project_matches_least_squares():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(3, 6)).astype(np.float32)  # not orthogonal
    delta = rng.normal(size=(5, 2, 2, 6)).astype(np.float32)
    rows = delta.reshape(-1, 6).astype(np.float64)
    for j in ([0], [2, 0], [0, 1, 2]):
        basis = v[j].astype(np.float64)
        coef, *_ = np.linalg.lstsq(basis.T, rows.T, rcond=None)
        ref = (basis.T @ coef).T.reshape(delta.shape)
        np.testing.assert_allclose(project(delta, v, j), ref, atol=1e-5)
    np.testing.assert_array_equal(project(delta, v, []), np.zeros_like(delta))
    full = np.linalg.qr(rng.normal(size=(6, 6)))[0].T.astype(np.float32)
    np.testing.assert_allclose(project(delta, full, range(6)), delta, atol=1e-5)
    mask = np.array([1.0, 0.0, 1.0], np.float32)
    np.testing.assert_allclose(
        project_masked(delta[:, 0, 0], v, mask), project(delta[:, 0, 0], v, [0, 2])
    )
    np.testing.assert_allclose(
        energy_ratio(rows, full.astype(np.float64)).sum(), 1.0, atol=1e-6
    )


def test_errors():
    d = np.ones((5, 4), np.float32)
    with pytest.raises(ValueError, match="method must be one of"):
        fit_components(d, 2, "svd")
    with pytest.raises(ValueError, match="needs a PRNG key"):
        fit_components(d, 2, "ica")
    with pytest.raises(ValueError, match="k=5 exceeds"):
        fit_components(d, 5)
    with pytest.raises(ValueError, match="d has 4 non-finite"):
        fit_components(np.where(np.eye(5, 4) > 0, np.nan, d), 2)
    with pytest.raises(ValueError, match="out of range"):
        project(d, np.eye(2, 4), [2])
    with pytest.raises(ValueError, match="vectors must be"):
        project(d, np.eye(2, 3), [0])
