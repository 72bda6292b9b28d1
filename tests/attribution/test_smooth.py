"""SmoothGrad / SquareGrad / VarGrad and SmoothIG against NumPy loops over
the same noise (closed-form gradients of a quadratic model, float64)."""

import jax
import numpy as np
import pytest

from jaxcxai import attribution as attr
from jaxcxai.parallel import make_mesh
from tests.attribution.nets import quadratic

N, D, COPIES = 3, 6, 5


def _data(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)).astype(np.float32)
    noise = rng.normal(size=(N, COPIES, D)).astype(np.float32)
    return x, noise, np.array([2, 0, 1])


def _std(x, sigma, scale):
    spread = x.max() - x.min()
    return {"absolute": sigma, "relative": sigma * spread,
            "range_squared": (sigma * spread) ** 2}[scale]  # fmt: skip


def _loop(grad, x, noise, t, sigma, scale, keep_clean=False, base="gradient",
          reduce="mean", clip=None):  # fmt: skip
    out = []
    for i in range(N):
        xi = x[i].astype(np.float64)
        std = _std(xi, sigma, scale)
        inputs = [xi + std * noise[i, j] for j in range(noise.shape[1])]
        if clip is not None:
            inputs = [np.clip(v, *clip) for v in inputs]
        if keep_clean:
            inputs.append(xi)
        terms = []
        for v in inputs:
            g = grad(v, t[i])
            terms.append({"gradient": g, "saliency": np.abs(g),
                          "gradient_x_input": g * v}[base])  # fmt: skip
        terms = np.stack(terms)
        out.append({"mean": terms.mean(0), "mean_square": (terms**2).mean(0),
                    "var": terms.var(0)}[reduce])  # fmt: skip
    return np.stack(out)


@pytest.mark.parametrize(
    "scale, keep_clean, base, reduce, clip",
    [
        ("relative", False, "gradient", "mean", None),
        ("absolute", True, "saliency", "mean", None),
        ("range_squared", True, "gradient", "mean", None),  # the group code
        ("relative", False, "gradient_x_input", "var", (-1.0, 1.0)),
        ("absolute", False, "gradient", "mean_square", None),
    ],
)
def test_smoothgrad_equals_numpy_loop(scale, keep_clean, base, reduce, clip):
    f, grad, _ = quadratic()
    x, noise, t = _data()
    sigma = 0.3
    got = attr.smoothgrad(f, x, t, noise=noise, sigma=sigma, noise_scale=scale,
                          keep_clean=keep_clean, base=base, reduce=reduce,
                          clip=clip, chunk_size=2)  # fmt: skip
    want = _loop(grad, x, noise, t, sigma, scale, keep_clean, base, reduce, clip)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_key_mode_uses_smooth_noise_and_is_reproducible():
    f, grad, _ = quadratic()
    x, _, t = _data()
    key = jax.random.key(7)
    a = attr.smoothgrad(f, x, t, key=key, n=COPIES, chunk_size=2)
    b = attr.smoothgrad(f, x, t, key=key, n=COPIES, chunk_size=None)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)  # chunking
    noise = np.asarray(attr.smooth_noise(key, COPIES, x.shape))
    np.testing.assert_allclose(a, _loop(grad, x, noise, t, 0.15, "relative"),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    np.testing.assert_array_equal(a, attr.smoothgrad(f, x, t, key=key, n=COPIES,
                                                     chunk_size=2))  # fmt: skip
    other = attr.smoothgrad(f, x, t, key=jax.random.key(8), n=COPIES, chunk_size=2)
    assert np.abs(np.asarray(other) - np.asarray(a)).max() > 1e-3


def test_smooth_ig_equals_numpy_loop():
    """IG of a quadratic is exact for the midpoint rule (linear integrand):
    phi = (x~ - b) * (A (x~ + b) / 2 + w) at each noisy copy x~."""
    f, grad, _ = quadratic()
    x, noise, t = _data()
    b = np.full(D, 0.2)
    got = attr.smooth_integrated_gradients(
        f, x, t, noise=noise, sigma=0.1, baseline=b.astype(np.float32), steps=3,
        method="riemann_middle", chunk_size=4,
    )  # fmt: skip
    want = np.zeros((N, D))
    for i in range(N):
        for j in range(COPIES):
            xn = x[i].astype(np.float64) + 0.1 * noise[i, j]
            want[i] += (xn - b) * grad((xn + b) / 2, t[i]) / COPIES
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_bad_arguments_named():
    f, _, _ = quadratic()
    x, noise, t = _data()
    with pytest.raises(ValueError, match="key is required"):
        attr.smoothgrad(f, x, t)
    with pytest.raises(ValueError, match="noise must have shape"):
        attr.smoothgrad(f, x, t, noise=noise[:, :, :4])
    bad = noise.copy()
    bad[0, 1, 2] = np.nan
    with pytest.raises(ValueError, match="^noise has 1 non-finite"):
        attr.smoothgrad(f, x, t, noise=bad)
    with pytest.raises(ValueError, match="noise_scale"):
        attr.smoothgrad(f, x, t, noise=noise, noise_scale="std")
    with pytest.raises(ValueError, match="sigma"):
        attr.smoothgrad(f, x, t, noise=noise, sigma=-1.0)
    with pytest.raises(ValueError, match="^target has 1 values outside"):
        attr.smoothgrad(f, x, np.array([0, 1, 7]), noise=noise)
    with pytest.raises(ValueError, match="key"):
        attr.smoothgrad(f, x, t, key=12)


@pytest.mark.multidevice
def test_sharded_equals_unsharded():
    f, _, _ = quadratic()
    mesh = make_mesh()
    x = np.random.default_rng(0).normal(size=(6, D)).astype(np.float32)
    key = jax.random.key(3)
    a = attr.smoothgrad(f, x, 1, key=key, n=4, mesh=mesh)
    b = attr.smoothgrad(f, x, 1, key=key, n=4)
    np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)
