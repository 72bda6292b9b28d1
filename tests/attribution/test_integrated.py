"""Integrated Gradients: closed forms per rule, completeness, chunking."""

import numpy as np
import pytest

from jaxcxai import attribution as attr
from jaxcxai.attribution.integrated import METHODS
from jaxcxai.parallel import make_mesh
from tests.attribution.nets import linear, quadratic, two_layer


def _x(n=4, d=6, seed=1):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_quadrature_rules():
    # Independent construction: cell ends/midpoints of [0, 1] and the
    # trapezoid on a closed grid; every rule integrates a^2 approximately
    # and 1 exactly.
    n = 8
    a, w = attr.quadrature("riemann_left", n)
    np.testing.assert_allclose(a, np.arange(n) / n)
    a, w = attr.quadrature("riemann_right", n)
    np.testing.assert_allclose(a, np.arange(1, n + 1) / n)
    a, w = attr.quadrature("riemann_middle", n)
    np.testing.assert_allclose(a, (np.arange(n) + 0.5) / n)
    a, w = attr.quadrature("riemann_trapezoid", n)
    np.testing.assert_allclose(np.sum(w * a**2), np.trapezoid(a**2, a))
    a, w = attr.quadrature("gausslegendre", 3)
    np.testing.assert_allclose(np.sum(w * a**5), 1 / 6, rtol=1e-12)  # exact
    for m in METHODS:
        np.testing.assert_allclose(attr.quadrature(m, 5)[1].sum(), 1.0)


def test_linear_model_is_exact():
    f, w, _ = linear()
    x = _x()
    t = np.array([0, 2, 1, 1])
    for method in METHODS:
        got = attr.integrated_gradients(f, x, t, steps=5, method=method)
        np.testing.assert_allclose(got, x * w[:, t].T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "method, baseline",
    zip(METHODS, ["zero", "mean", "array", "per_sample", "per_sample"]),
)
def test_quadratic_model_closed_form(method, baseline):
    """The integrand is linear in a, so each rule gives the gradient at its
    mean node a_bar: phi = (x - b) * (A (b + a_bar (x - b)) + w)."""
    f, grad, _ = quadratic()
    x = _x()
    t = np.array([2, 0, 1, 2])
    rng = np.random.default_rng(5)
    b = {
        "zero": np.zeros_like(x),
        "mean": np.broadcast_to(x.mean(0), x.shape),
        "array": np.broadcast_to(rng.normal(size=6), x.shape),
        "per_sample": rng.normal(size=x.shape),
    }[baseline].astype(np.float32)
    arg = {"zero": "zero", "mean": "mean", "array": b[0], "per_sample": b}[baseline]
    nodes, weights = attr.quadrature(method, 7)
    a_bar = np.sum(nodes * weights)
    x64, b64 = x.astype(np.float64), b.astype(np.float64)
    want = np.stack([(x64[i] - b64[i]) * grad(b64[i] + a_bar * (x64[i] - b64[i]), t[i])
                     for i in range(4)])  # fmt: skip
    got = attr.integrated_gradients(f, x, t, baseline=arg, steps=7, method=method,
                                    chunk_size=3)  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["riemann_trapezoid", "gausslegendre"])
def test_completeness_at_256_steps(method):
    """sum(phi) = S(x) - S(x') to 1e-3 relative on a non-linear net; the
    reference is the net's own logits in float64."""
    f, _, _, logits = two_layer(seed=3, smooth=True)
    x = np.random.default_rng(2).normal(size=(3, 4, 5, 2)).astype(np.float32)
    base = np.full_like(x, 0.1)
    t = np.array([0, 3, 1])
    phi, delta = attr.integrated_gradients(f, x, t, baseline=base, steps=256,
                                           method=method, return_delta=True)  # fmt: skip
    gap = logits(x.astype(np.float64))[np.arange(3), t] - logits(base)[np.arange(3), t]
    total = np.asarray(phi, np.float64).reshape(3, -1).sum(1)
    np.testing.assert_allclose(total, gap, rtol=1e-3)
    np.testing.assert_allclose(delta, total - gap, atol=2e-4 * np.abs(gap).max())


def test_chunking_does_not_change_the_result():
    f, _, _, _ = two_layer()
    x = np.random.default_rng(2).normal(size=(2, 4, 5, 2)).astype(np.float32)
    full = attr.integrated_gradients(f, x, 1, steps=20, chunk_size=None)
    for chunk in (1, 6, 20):
        got = attr.integrated_gradients(f, x, 1, steps=20, chunk_size=chunk)
        np.testing.assert_allclose(got, full, rtol=1e-5, atol=1e-7)


def test_bad_arguments_named():
    f, _, _ = linear()
    x = _x()
    with pytest.raises(ValueError, match="baseline"):
        attr.integrated_gradients(f, x, baseline=np.zeros(5))
    with pytest.raises(ValueError, match="^baseline has 1 non-finite"):
        attr.integrated_gradients(f, x, baseline=np.array([np.nan, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="method"):
        attr.integrated_gradients(f, x, method="simpson")
    with pytest.raises(ValueError, match="steps"):
        attr.integrated_gradients(f, x, steps=0)
    with pytest.raises(ValueError, match="chunk_size"):
        attr.integrated_gradients(f, x, chunk_size=0)
    x[0, 0] = np.inf
    with pytest.raises(ValueError, match="^x has 1 non-finite"):
        attr.integrated_gradients(f, x)


@pytest.mark.multidevice
def test_sharded_equals_unsharded():
    f, _, _, _ = two_layer()
    mesh = make_mesh()
    x = np.random.default_rng(2).normal(size=(5, 4, 5, 2)).astype(np.float32)
    a = attr.integrated_gradients(f, x, 2, steps=8, chunk_size=3, mesh=mesh,
                                  return_delta=True)  # fmt: skip
    b = attr.integrated_gradients(f, x, 2, steps=8, chunk_size=3, return_delta=True)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6, atol=1e-6)
