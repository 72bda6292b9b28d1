"""Linear CKA against a float64 NumPy reference and its invariances."""

import numpy as np
import pytest

from jaxcxai.checks import NonFiniteError
from jaxcxai.concepts.comparison import cka

N = 40


def _reference(x, y):
    """float64 CKA with the explicit centring matrix H (Kornblith et al. 2019)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    h = np.eye(len(x)) - 1.0 / len(x)
    gx, gy = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.sum(gx * gy) / (np.linalg.norm(gx) * np.linalg.norm(gy))


def _layers(rng):
    """Activations of different shapes sharing structure, with non-zero means."""
    z = rng.normal(size=(N, 6))
    maps = np.maximum(z @ rng.normal(size=(6, 3 * 3 * 4)), 0).reshape(N, 3, 3, 4) + 2.0
    wide = z[:, :3] @ rng.normal(size=(3, 50)) + rng.normal(size=(N, 50)) + 5.0
    narrow = rng.normal(size=(N, 5)) + z[:, :2] @ rng.normal(size=(2, 5)) - 3.0
    return [maps.astype(np.float32), wide.astype(np.float32), narrow.astype(np.float32)]


@pytest.mark.parametrize("form", ["gram", "feature", "auto"])
def test_linear_cka_matches_float64_reference(form):
    layers = _layers(np.random.default_rng(0))
    for x in layers:
        for y in layers:
            got = cka.linear_cka(x, y, form=form)
            np.testing.assert_allclose(got, _reference(x, y), rtol=1e-5, atol=1e-6)


def test_invariances_and_range():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(N, 12)).astype(np.float32) + 1.5
    q = np.linalg.qr(rng.normal(size=(12, 12)))[0].astype(np.float32)
    for form in ("gram", "feature"):
        np.testing.assert_allclose(cka.linear_cka(x, x @ q, form=form), 1.0, atol=1e-5)
        np.testing.assert_allclose(
            cka.linear_cka(x, 7.5 * x, form=form), 1.0, atol=1e-6
        )
        np.testing.assert_allclose(
            cka.linear_cka(x, -0.1 * x, form=form), 1.0, atol=1e-6
        )
    for seed in range(5):
        y = rng.normal(size=(N, 3)) @ rng.normal(size=(3, 12)) * seed + x
        value = float(cka.linear_cka(x, y))
        assert 0.0 <= value <= 1.0
    const = np.ones((N, 4), np.float32)
    assert float(cka.linear_cka(x, const)) == 0.0  # 0/0 = 0


@pytest.mark.parametrize("form", ["gram", "feature"])
def test_cka_matrix_matches_pairwise_reference(form):
    layers = _layers(np.random.default_rng(2))
    got = cka.cka_matrix(layers, layers[::-1][:2], form=form)
    ref = [[_reference(x, y) for y in layers[::-1][:2]] for x in layers]
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_bad_inputs_name_the_argument():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(N, 4)), rng.normal(size=(N - 1, 4))
    with pytest.raises(ValueError, match=r"acts_b\[1\] has 39 images"):
        cka.cka_matrix([x], [x, y])
    with pytest.raises(ValueError, match="y has 39 images"):
        cka.linear_cka(x, y)
    with pytest.raises(ValueError, match="unknown form 'rbf'"):
        cka.linear_cka(x, x, form="rbf")
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(NonFiniteError, match=r"acts_a\[0\] has 1 non-finite"):
        cka.cka_matrix([bad], [x])
    with pytest.raises(ValueError, match="at least one layer"):
        cka.cka_matrix([], [x])
