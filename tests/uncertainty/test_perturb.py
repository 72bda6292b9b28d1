"""Perturbations (arXiv:2603.29915, section 4.4) against sampling bounds.

Independent references: the empirical missing rate, the count of shuffled
columns and the noise scale are compared with their binomial / chi-square
sampling bounds (5 standard errors), and the imputed value with NumPy's
float64 median.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.checks import NonFiniteError
from jaxcxai.uncertainty import perturb

N, D, R = 120, 20, 3


@pytest.fixture(scope="module")
def x():
    return (np.random.RandomState(0).randn(N, D) * np.arange(1, D + 1)).astype(
        np.float32
    )


def test_gaussian_scale_within_sampling_bounds(x):
    levels = (0.0,) + perturb.GAUSSIAN_LEVELS
    out = np.asarray(perturb.perturb_sweep(x, "gaussian", levels, jax.random.key(1), R))
    assert out.shape == (len(levels), R, N, D)
    np.testing.assert_array_equal(out[0], np.broadcast_to(x, (R, N, D)))
    std = x.astype(np.float64).std(axis=0)  # ddof = 0
    m = R * N * D
    for level, o in zip(levels[1:], out[1:]):
        z = (o - x[None]) / std  # should be sigma * N(0, 1)
        assert abs(z.mean()) < 5 * level / np.sqrt(m)
        assert abs(z.std() - level) < 5 * level / np.sqrt(2 * m)
    # realisations differ (one key each)
    assert not np.allclose(out[1, 0], out[1, 1])


def test_paired_keys_share_noise_across_levels(x):
    out = np.asarray(
        perturb.perturb_sweep(
            x, "gaussian", (0.1, 2.0), jax.random.key(2), 2, paired=True
        )
    )
    np.testing.assert_allclose((out[0] - x) / 0.1, (out[1] - x) / 2.0, atol=2e-3)


def test_missing_rate_and_median_imputation(x):
    out = np.asarray(
        perturb.perturb_sweep(
            x, "missing", perturb.MISSING_LEVELS, jax.random.key(3), R
        )
    )
    med = np.median(x.astype(np.float64), axis=0)
    m = R * N * D
    for p, o in zip(perturb.MISSING_LEVELS, out):
        changed = o != x[None]
        # every changed entry holds its column's median
        cols = np.nonzero(changed)[-1]
        np.testing.assert_allclose(o[changed], med[cols], rtol=1e-6)
        assert abs(changed.mean() - p) < 5 * np.sqrt(p * (1 - p) / m)


def test_permutation_column_count_and_marginals(x):
    levels = (0.0,) + perturb.PERMUTATION_LEVELS
    expected = [0] + [max(1, int(D * f)) for f in perturb.PERMUTATION_LEVELS]
    np.testing.assert_array_equal(perturb.n_permuted(levels, D), expected)
    assert expected == [0, 1, 1, 1, 2, 3, 4, 5]
    # floor, not rounding: 7 features x 0.25 = 1.75 -> 1 column
    np.testing.assert_array_equal(
        perturb.n_permuted(perturb.PERMUTATION_LEVELS, 7), [1] * 7
    )
    out = np.asarray(
        perturb.perturb_sweep(x, "permutation", levels, jax.random.key(4), R)
    )
    for k, o in zip(expected, out):
        for r in range(R):
            moved = np.any(o[r] != x, axis=0)
            assert moved.sum() == k  # continuous data: a shuffle moves the column
            np.testing.assert_array_equal(np.sort(o[r], 0), np.sort(x, 0))
    # the chosen columns are spread over all features, not fixed ones
    single = perturb.perturb_sweep(x, "permutation", (0.25,) * 12, jax.random.key(5))
    hits = np.any(np.asarray(single)[:, 0] != x[None], axis=1).sum(0)
    assert (hits > 0).sum() > D // 2


def test_single_functions_and_image_noise(x):
    key = jax.random.key(6)
    g = perturb.gaussian_noise(x, 0.5, key)
    assert g.shape == x.shape and not np.allclose(g, x)
    assert np.any(np.asarray(perturb.missing_values(x, 0.5, key)) != x)
    moved = np.any(np.asarray(perturb.permute_features(x, 0.1, key)) != x, axis=0)
    assert moved.sum() == 2
    img = jnp.zeros((2, 4, 4, 3)) + 0.95
    noisy = perturb.perturb_sweep(img, "image", perturb.IMAGE_NOISE_LEVELS, key, 2)
    assert noisy.shape == (7, 2, 2, 4, 4, 3)
    assert float(noisy.max()) <= 1.0 and float(noisy.min()) >= -1.0
    np.testing.assert_allclose(noisy[0, 0], img)


def test_errors_name_the_argument(x):
    bad = x.copy()
    bad[3, 4] = np.nan
    with pytest.raises(NonFiniteError, match="x has 1 non-finite"):
        perturb.perturb_sweep(bad, "gaussian", (0.1,), jax.random.key(0))
    with pytest.raises(NonFiniteError, match="^x "):
        perturb.gaussian_noise(bad, 0.1, jax.random.key(0))
    with pytest.raises(ValueError, match="kind must be one of"):
        perturb.perturb_sweep(x, "blur", (0.1,), jax.random.key(0))
    with pytest.raises(ValueError, match="fraction must lie"):
        perturb.n_permuted(1.5, D)
