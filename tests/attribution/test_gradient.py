"""Saliency, gradient and gradient x input against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai import attribution as attr
from jaxcxai.parallel import make_mesh
from tests.attribution.nets import linear, quadratic


def _x(n=5, d=6, seed=1):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_linear_model_closed_form():
    f, w, b = linear()
    x = _x()
    t = np.array([0, 2, 1, 1, 0])
    np.testing.assert_allclose(attr.gradients(f, x, t), w[:, t].T, rtol=1e-6)
    np.testing.assert_allclose(attr.saliency(f, x, t), np.abs(w[:, t].T), rtol=1e-6)
    np.testing.assert_allclose(attr.gradient_x_input(f, x, t), x * w[:, t].T, rtol=1e-5)
    # Default target: the predicted class.
    pred = np.argmax(x.astype(np.float64) @ w + b, axis=1)
    np.testing.assert_allclose(attr.gradients(f, x), w[:, pred].T, rtol=1e-6)


def test_quadratic_model_closed_form():
    f, grad, _ = quadratic()
    x = _x()
    t = np.array([2, 0, 1, 2, 1])
    want = np.stack([grad(x[i].astype(np.float64), t[i]) for i in range(5)])
    np.testing.assert_allclose(attr.gradients(f, x, t), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(attr.saliency(f, x, t, abs=False), want, rtol=1e-5,
                               atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(attr.gradient_x_input(f, x, t), x * want, rtol=1e-5,
                               atol=1e-6)  # fmt: skip


def test_custom_target_fn():
    f, grad, _ = quadratic()
    x = _x()
    # The scalar: logit 0 + logit 2 of each sample.
    got = attr.gradients(f, x, target_fn=lambda out: out[:, 0] + out[:, 2])
    want = [grad(x[i].astype(np.float64), 0) + grad(x[i].astype(np.float64), 2)
            for i in range(5)]  # fmt: skip
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-5, atol=1e-6)


def test_vmapped_equals_looped():
    f, _, _ = quadratic()
    x = _x(n=4)
    t = np.array([1, 0, 2, 1])
    batch = attr.gradient_x_input(f, x, t)
    for i in range(4):
        one = attr.gradient_x_input(f, x[i : i + 1], t[i : i + 1])
        np.testing.assert_allclose(batch[i], one[0], rtol=1e-6, atol=1e-7)


def test_reduce_channels():
    a = np.random.default_rng(0).normal(size=(2, 3, 4, 3))
    np.testing.assert_allclose(attr.reduce_channels(a, "mean"), a.mean(-1), atol=1e-6)
    np.testing.assert_allclose(attr.reduce_channels(a, "abs_max"), np.abs(a).max(-1),
                               rtol=1e-6)  # fmt: skip
    with pytest.raises(ValueError, match="how"):
        attr.reduce_channels(a, "median")


def test_bad_inputs_named():
    f, _, _ = linear()
    x = _x()
    x[2, 3] = np.nan
    with pytest.raises(ValueError, match="^x has 1 non-finite"):
        attr.saliency(f, x)
    with pytest.raises(ValueError, match=r"^target has 1 values outside \[0, 3\)"):
        attr.gradients(f, _x(), np.array([0, 1, 3, 2, 0]))


@pytest.mark.multidevice
def test_sharded_equals_unsharded():
    f, _, _ = quadratic()
    mesh = make_mesh()
    for n in (8, 6):
        x = _x(n=n)
        # Equal up to float32 rounding: XLA may pick another matmul kernel
        # for a shard's smaller batch (a few ulps; CPUs differ in which).
        np.testing.assert_allclose(
            attr.saliency(f, x, 1, mesh=mesh), attr.saliency(f, x, 1), rtol=1e-5
        )
    out = attr.gradients(f, _x(n=8), 0, mesh=mesh)
    assert isinstance(out, jax.Array) and out.shape == (8, 6)
    assert jnp.all(jnp.isfinite(out))
