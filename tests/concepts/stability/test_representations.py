"""The 1D/2D/3D views of activations against NumPy, and their input checks."""

import numpy as np
import pytest

from jaxcxai.checks import NonFiniteError
from jaxcxai.concepts.stability import representations as views


def _maps(n=3, h=4, w=5, c=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, h, w, c)).astype(np.float32)


def test_views_match_numpy():
    a = _maps()
    one, two, three = (np.asarray(views.represent(a, d)) for d in views.DIMS)
    assert one.shape == (3, 6) and two.shape == (3, 20) and three.shape == (3, 120)
    a64 = a.astype(np.float64)
    np.testing.assert_allclose(one, a64.mean(axis=(1, 2)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        two, a64.mean(axis=3).reshape(3, 20), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_array_equal(three, a.reshape(3, -1))
    # Feature h*W + w of the 2D view is the channel mean at (h, w).
    np.testing.assert_allclose(two[1, 2 * 5 + 3], a64[1, 2, 3].mean(), rtol=1e-6)
    for d, width in zip(views.DIMS, (6, 20, 120)):
        assert views.feature_size((4, 5, 6), d) == width


def test_views_are_swappable():
    assert set(views.VIEWS) == set(views.DIMS)
    assert views.VIEWS["1d"] is views.spatial_mean


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((3, 4, 5)), "acts must be \\(N, H, W, C\\)"),
        (np.zeros((0, 4, 5, 6)), "acts must be \\(N, H, W, C\\)"),
    ],
)
def test_bad_shapes_name_the_argument(bad, match):
    with pytest.raises(ValueError, match=match):
        views.represent(bad, "1d")


def test_nan_and_unknown_dim_raise():
    a = _maps()
    a[0, 1, 1, 1] = np.nan
    with pytest.raises(NonFiniteError, match="pos_acts has 1 non-finite"):
        views.represent(a, "3d", name="pos_acts")
    with pytest.raises(ValueError, match="dim must be one of"):
        views.represent(_maps(), "4d")
