"""RISE: the saliency formula against NumPy on the same masks, mask
statistics, localisation of a planted region, batching and sharding."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.attribution.rise import rise, rise_masks
from jaxcxai.parallel import make_mesh

H, W, C = 12, 10, 2


@functools.cache
def _linear():
    w = np.random.default_rng(0).normal(size=(H * W * C, 3)).astype(np.float32)
    return w, lambda z: z.reshape(z.shape[0], -1) @ jnp.asarray(w)


def test_saliency_equals_numpy_on_the_same_masks():
    w, f = _linear()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, H, W, C)).astype(np.float32)
    t, num, chunk, grid, p, base = np.array([0, 2, 1]), 70, 32, 4, 0.4, 0.25
    key = jax.random.key(5)
    got = rise(f, x, t, key=key, num_masks=num, chunk_size=chunk, grid_size=grid, p=p,
               baseline=base)  # fmt: skip
    # chunk j of the masks comes from fold_in(key, j); the last one is cut
    masks = np.concatenate(
        [
            np.asarray(rise_masks(jax.random.fold_in(key, j), chunk, (H, W), grid, p))
            for j in range(3)
        ]  # fmt: skip
    )[:num].astype(np.float64)
    want = []
    for i in range(3):
        wt = w[:, t[i]].reshape(H, W, C)
        copies = x[i][None] * masks[..., None] + base * (1 - masks[..., None])
        scores = np.einsum("mhwc,hwc->m", copies, wt)
        want.append(np.einsum("m,mhw->hw", scores, masks) / (num * p))
    np.testing.assert_allclose(np.asarray(got), np.stack(want), rtol=1e-4, atol=1e-4)


def test_masks_are_soft_grids_with_keep_probability_p():
    masks = np.asarray(rise_masks(jax.random.key(0), 2000, (H, W), grid_size=3, p=0.3))
    assert masks.shape == (2000, H, W) and masks.min() >= 0 and masks.max() <= 1
    assert abs(masks.mean() - 0.3) < 0.01
    # random shifts make the keep probability the same at every pixel
    assert np.abs(masks.mean(0) - 0.3).max() < 0.05
    assert (masks == 0).mean() > 0.2 and (masks == 1).mean() > 0.01  # whole cells


def test_planted_region_is_salient():
    region = np.zeros((H, W), bool)
    region[2:6, 3:8] = True
    f = lambda z: jnp.stack(
        [jnp.mean(z[:, region], axis=(1, 2)), jnp.zeros(z.shape[0])], 1
    )
    x = np.ones((1, H, W, C), np.float32)
    s = np.asarray(rise(f, x, 0, key=jax.random.key(0), num_masks=400, grid_size=4))[0]
    # E[s M_u] / p is p + Cov(s, M_u) / p: higher where the masks' cells
    # overlap the region (measured contrast ~0.07 at 400 masks)
    assert s[region].mean() > s[~region].mean() + 0.03
    assert region.ravel()[np.argmax(s)]


def test_batch_of_images_equals_one_at_a_time():
    _, f = _linear()
    x = np.random.default_rng(2).normal(size=(3, H, W, C)).astype(np.float32)
    kw = {"key": jax.random.key(1), "num_masks": 50, "chunk_size": 20}
    batched = np.asarray(rise(f, x, 1, **kw))
    looped = np.concatenate(
        [np.asarray(rise(f, x[i : i + 1], 1, **kw)) for i in range(3)]
    )
    np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-5)


@pytest.mark.multidevice
def test_sharded_equals_unsharded():
    _, f = _linear()
    x = np.random.default_rng(3).normal(size=(5, H, W, C)).astype(np.float32)
    kw = {"key": jax.random.key(1), "num_masks": 50, "chunk_size": 20}
    plain = rise(f, x, **kw)
    sharded = rise(f, x, mesh=make_mesh(), **kw)
    np.testing.assert_allclose(
        np.asarray(sharded), np.asarray(plain), rtol=1e-5, atol=1e-5
    )


def test_bad_inputs_name_the_argument():
    _, f = _linear()
    x = np.zeros((2, H, W, C), np.float32)
    key = jax.random.key(0)
    bad = x.copy()
    bad[1, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="x has 1 non-finite"):
        rise(f, bad, key=key)
    with pytest.raises(ValueError, match="target"):
        rise(f, x, 3, key=key)
    with pytest.raises(ValueError, match="p must"):
        rise(f, x, key=key, p=0.0)
    with pytest.raises(ValueError, match="num_masks"):
        rise(f, x, key=key, num_masks=0)
    with pytest.raises(ValueError, match="key"):
        rise(f, x, key=None)
