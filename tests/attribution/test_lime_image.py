"""Image LIME: superpixels against scikit-image, a linear model's exact
superpixel effects, the lime package's mean-colour hiding, reproducibility
and sharding."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.attribution.lime_image import lime_image, segment_images
from jaxcxai.parallel import make_mesh

H = W = 24


@functools.cache
def _images():
    skimage = pytest.importorskip("skimage")
    from skimage import data, transform

    del skimage
    img = transform.resize(data.astronaut(), (H, W), anti_aliasing=True).astype(
        np.float32
    )
    x = np.stack([img, img[::-1], img[:, ::-1]])
    return x, segment_images(x, kernel_size=2, max_dist=10, ratio=0.5)


@functools.cache
def _linear():
    w = np.random.default_rng(0).normal(size=(H * W * 3, 3)).astype(np.float32)
    return w, lambda z: z.reshape(z.shape[0], -1) @ jnp.asarray(w)


def test_segments_equal_skimage_quickshift():
    from skimage.segmentation import quickshift

    x, seg = _images()
    for i in range(len(x)):
        ref = quickshift(x[i].astype(np.float64), kernel_size=2, max_dist=10, ratio=0.5)
        # same partition (labels made consecutive)
        assert seg[i].max() + 1 == len(np.unique(ref))
        pairs = np.unique(np.stack([seg[i].ravel(), ref.ravel()]), axis=1)
        assert pairs.shape[1] == len(np.unique(ref))


def _effects(x, seg, w, t, hide=None):
    """Exact superpixel effects of a linear model: y(z) = c + sum_s z_s e_s."""
    out = []
    for i in range(len(x)):
        num = seg[i].max() + 1
        if hide is None:  # lime's fudged image: each superpixel's mean colour
            fudged = np.zeros_like(x[i])
            for s in range(num):
                fudged[seg[i] == s] = x[i][seg[i] == s].mean(0)
        else:
            fudged = np.full_like(x[i], hide)
        wt = w[:, t[i]].reshape(H, W, 3)
        out.append([np.sum((wt * (x[i] - fudged))[seg[i] == s]) for s in range(num)])
    return out


@pytest.mark.parametrize("hide", [None, 0.0])
def test_linear_model_recovers_superpixel_effects(hide):
    x, seg = _images()
    w, f = _linear()
    t = np.array([0, 1, 2])
    maps = np.asarray(lime_image(f, x, seg, t, key=jax.random.key(0), hide_color=hide))
    for i, eff in enumerate(_effects(x, seg, w, t, hide)):
        coef = np.array([maps[i][seg[i] == s][0] for s in range(len(eff))])
        # The fit is exact up to ridge(alpha=1) shrinkage (~1 % at 1000 samples).
        np.testing.assert_allclose(coef, eff, atol=0.03 * np.abs(eff).max())


def test_reproducible_and_vmapped_equals_looped():
    x, seg = _images()
    _, f = _linear()
    kw = {"num_samples": 200, "chunk_size": 64}
    run = lambda key, s=slice(None): np.asarray(
        lime_image(f, x[s], seg[s], 1, key=key, **kw)
    )
    a, b, c = run(jax.random.key(0)), run(jax.random.key(0)), run(jax.random.key(1))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4
    keys = jax.random.split(jax.random.key(2), 3)
    looped = np.concatenate([run(keys[i : i + 1], slice(i, i + 1)) for i in range(3)])
    np.testing.assert_allclose(run(keys), looped, rtol=1e-4, atol=1e-5)


@pytest.mark.multidevice
def test_sharded_equals_unsharded():
    x, seg = _images()
    _, f = _linear()
    kw = {"key": jax.random.key(0), "num_samples": 200, "chunk_size": 64}
    plain = lime_image(f, x, seg, 1, **kw)
    sharded = lime_image(f, x, seg, 1, mesh=make_mesh(), **kw)
    np.testing.assert_allclose(
        np.asarray(sharded), np.asarray(plain), rtol=1e-4, atol=1e-5
    )


def test_bad_inputs_name_the_argument():
    x, seg = _images()
    _, f = _linear()
    key = jax.random.key(0)
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="x has 1 non-finite"):
        lime_image(f, bad, seg, key=key)
    with pytest.raises(ValueError, match="target"):
        lime_image(f, x, seg, 3, key=key)
    with pytest.raises(ValueError, match="segments"):
        lime_image(f, x, seg[:, :-1], key=key)
    with pytest.raises(ValueError, match="kernel_width"):
        lime_image(f, x, seg, key=key, kernel_width=0.0)
