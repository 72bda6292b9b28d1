"""SSIM against skimage.metrics.structural_similarity."""

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from jaxcxai.metrics import explanations as ex


def _norm(m):
    return (m - m.min()) / (m.max() - m.min())


def test_ssim_equals_skimage():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 16, 20))
    b = a + rng.normal(size=a.shape) * np.array([0.1, 0.5, 2.0, 0.0])[:, None, None]
    want = [structural_similarity(_norm(x), _norm(y), data_range=1.0)
            for x, y in zip(a, b)]  # fmt: skip
    np.testing.assert_allclose(ex.ssim(a, b), want, atol=2e-5)
    np.testing.assert_allclose(ex.ssim(a[1], b[1]), want[1], atol=2e-5)
    raw = structural_similarity(a[2], b[2], data_range=1.0)
    np.testing.assert_allclose(ex.ssim(a[2], b[2], normalize=False), raw, atol=2e-5)


def test_ssim_channels_equal_skimage():
    rng = np.random.default_rng(1)
    a = rng.uniform(size=(2, 9, 11, 3))
    b = np.clip(a + rng.normal(size=a.shape) * 0.2, 0, 1)
    want = [structural_similarity(_norm(x), _norm(y), data_range=1.0, channel_axis=-1)
            for x, y in zip(a, b)]  # fmt: skip
    np.testing.assert_allclose(ex.ssim(a, b, channel_axis=-1), want, atol=2e-5)


def test_ssim_errors():
    with pytest.raises(ValueError, match="win_size"):
        ex.ssim(np.zeros((5, 5)), np.zeros((5, 5)))
    with pytest.raises(ValueError, match="same shape"):
        ex.ssim(np.zeros((8, 8)), np.zeros((8, 9)))
