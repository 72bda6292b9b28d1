"""Occlusion against a NumPy sliding-window loop (linear models: the score
drop of a window is sum_window w (x - baseline) in closed form)."""

import functools

import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.attribution.occlusion import occlusion, window_starts
from jaxcxai.parallel import make_mesh

H, W, C, K = 7, 6, 2, 3


@functools.cache
def _linear(shape=(H, W, C)):
    w = (
        np.random.default_rng(0)
        .normal(size=(int(np.prod(shape)), K))
        .astype(np.float32)
    )
    return w, lambda z: z.reshape(z.shape[0], -1) @ jnp.asarray(w)


def _loop(x, w, t, window, stride, baseline):
    """Captum's rule: windows from 0 in steps of stride until the axis is
    covered (the last one cut at the border); mean drop over covering windows."""
    n, shape = x.shape[0], x.shape[1 : 1 + len(window)]
    ranges = [
        range(0, max(1, int(np.ceil((d - k) / s)) + 1) * s, s)
        for d, k, s in zip(shape, window, stride)
    ]  # fmt: skip
    out = np.zeros(x.shape)
    for i in range(n):
        wt = w[:, t[i]].reshape(x.shape[1:])
        total, count = np.zeros(shape), np.zeros(shape)
        for start in (
            np.array(np.meshgrid(*ranges, indexing="ij")).reshape(len(window), -1).T
        ):
            m = np.zeros(shape, bool)
            m[tuple(slice(a, a + k) for a, k in zip(start, window))] = True
            mb = m.reshape(shape + (1,) * (x.ndim - 1 - len(window)))
            drop = np.sum(wt * (x[i] - baseline) * mb)
            total += drop * m
            count += m
        attr = np.where(count > 0, total / np.maximum(count, 1), 0.0)
        out[i] = attr.reshape(shape + (1,) * (x.ndim - 1 - len(window)))
    return out


@pytest.mark.parametrize(
    "window, stride, baseline, chunk",
    [((3, 2), (2, 2), 0.5, 5), ((2, 2), (2, 2), 0.0, 64), ((3, 3), (4, 1), -1.0, 4)],
)
def test_images_equal_numpy_loop(window, stride, baseline, chunk):
    w, f = _linear()
    x = np.random.default_rng(1).normal(size=(3, H, W, C)).astype(np.float32)
    t = np.array([0, 2, 1])
    got = occlusion(
        f, x, t, window=window, stride=stride, baseline=baseline, chunk_size=chunk
    )
    want = _loop(x.astype(np.float64), w, t, window, stride, baseline)
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-5)


def test_features_and_predicted_target():
    w, f = _linear((8,))
    x = np.random.default_rng(2).normal(size=(4, 8)).astype(np.float32)
    got = occlusion(f, x, window=(3,), stride=1, chunk_size=4)
    t = (x @ w).argmax(1)
    want = _loop(x.astype(np.float64), w, t, (3,), (1,), 0.0)
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-5)
    # window 1: occlusion of a linear model is w_i (x_i - baseline)
    got = occlusion(f, x, t, window=(1,), chunk_size=3)
    np.testing.assert_allclose(np.asarray(got), w[:, t].T * x, atol=2e-5)


def test_window_positions_cover_the_axis():
    np.testing.assert_array_equal(window_starts((10,), (3,), (3,))[:, 0], [0, 3, 6, 9])
    np.testing.assert_array_equal(window_starts((10,), (4,), (3,))[:, 0], [0, 3, 6])
    np.testing.assert_array_equal(window_starts((10,), (4,), (4,))[:, 0], [0, 4, 8])
    assert len(window_starts((7, 6), (3, 2), (2, 2))) == 3 * 3


def test_vmapped_equals_looped_and_batch_size():
    _, f = _linear()
    x = np.random.default_rng(3).normal(size=(3, H, W, C)).astype(np.float32)
    kw = {"window": (2, 3), "stride": 2, "chunk_size": 5}
    batched = np.asarray(occlusion(f, x, 1, **kw))
    looped = np.concatenate(
        [np.asarray(occlusion(f, x[i : i + 1], 1, **kw)) for i in range(3)]
    )
    np.testing.assert_allclose(batched, looped, atol=1e-5)
    chunked = np.asarray(occlusion(f, x, 1, batch_size=2, **kw))
    np.testing.assert_allclose(chunked, batched, atol=1e-5)


@pytest.mark.multidevice
def test_sharded_equals_unsharded():
    _, f = _linear()
    x = np.random.default_rng(4).normal(size=(5, H, W, C)).astype(np.float32)
    kw = {"window": (2, 3), "stride": 2, "chunk_size": 5}
    plain = occlusion(f, x, **kw)
    sharded = occlusion(f, x, mesh=make_mesh(), **kw)
    np.testing.assert_allclose(np.asarray(sharded), np.asarray(plain), atol=1e-5)


def test_bad_inputs_name_the_argument():
    _, f = _linear()
    x = np.zeros((2, H, W, C), np.float32)
    bad = x.copy()
    bad[0, 1, 1, 0] = np.nan
    with pytest.raises(ValueError, match="x has 1 non-finite"):
        occlusion(f, bad, window=(2, 2))
    with pytest.raises(ValueError, match="target"):
        occlusion(f, x, K, window=(2, 2))
    with pytest.raises(ValueError, match="window"):
        occlusion(f, x, window=(H + 1, 2))
    with pytest.raises(ValueError, match="stride"):
        occlusion(f, x, window=(2, 2), stride=0)
    with pytest.raises(ValueError, match="baseline"):
        occlusion(f, x, window=(2, 2), baseline=np.full((H, W, C), np.inf))
