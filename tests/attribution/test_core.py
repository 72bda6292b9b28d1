"""The shared explainer contract: checks, targets, scalars, chunks, sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.attribution import core
from jaxcxai.parallel import make_mesh
from tests.attribution.nets import linear, two_layer


@pytest.mark.parametrize("wrap", [np.asarray, jnp.asarray])
def test_check_finite_names_argument_and_count(wrap):
    x = np.ones((3, 4), np.float32)
    core.check_finite("x", wrap(x))
    x[0, 1], x[2, 3], x[1, 0] = np.nan, np.inf, -np.inf
    with pytest.raises(ValueError, match=r"^images has 3 non-finite entries"):
        core.check_finite("images", wrap(x))
    core.check_finite("labels", wrap(np.arange(3)))  # integers pass


def test_check_key():
    core.check_key("key", jax.random.key(0))
    core.check_key("key", jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="key"):
        core.check_key("key", 3)
    with pytest.raises(ValueError, match="key"):
        core.check_key("key", jax.random.split(jax.random.key(0), 2))


def test_resolve_target():
    f, w, b = linear(d=4, k=5)
    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    want = np.argmax(x.astype(np.float64) @ w + b, axis=1)
    np.testing.assert_array_equal(core.resolve_target(f, x, None), want)
    # The (logits, acts) contract reads the logits.
    g = lambda v: (f(v), {"a": v})
    np.testing.assert_array_equal(core.resolve_target(g, x, None), want)
    np.testing.assert_array_equal(core.resolve_target(f, x, 3), np.full(6, 3))
    t = np.array([0, 4, 1, 2, 3, 0])
    out = core.resolve_target(f, x, t)
    assert out.dtype == jnp.int32
    np.testing.assert_array_equal(out, t)
    with pytest.raises(
        ValueError, match=r"target has 2 values outside \[0, 5\): \[-1, 5\]"
    ):
        core.resolve_target(f, x, np.array([0, 5, 1, -1, 3, 0]))
    with pytest.raises(ValueError, match="target"):
        core.resolve_target(f, x, 5)
    with pytest.raises(ValueError, match="target must be integer"):
        core.resolve_target(f, x, np.zeros(6))
    with pytest.raises(ValueError, match="target must be an int or of shape"):
        core.resolve_target(f, x, np.zeros(5, int))


def test_prepare_rejects_bad_inputs():
    f, _, _ = linear(d=4, k=5)
    x = np.zeros((2, 4), np.float32)
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match="^x has 1 non-finite"):
        core.prepare(f, x, None)
    with pytest.raises(ValueError, match="x must be floating point"):
        core.prepare(f, np.zeros((2, 4), np.int32), None)


def test_scalar_output_logit_and_custom():
    f, _, _, logits = two_layer()
    x = np.random.default_rng(0).normal(size=(1, 4, 5, 2))
    g = core.scalar_output(f)
    np.testing.assert_allclose(g(jnp.asarray(x[0], jnp.float32), 2), logits(x)[0, 2],
                               rtol=1e-5)  # fmt: skip
    # A custom scalar (here: a "detection score" = sum of the activation).
    h = core.scalar_output(f, lambda out: out[1]["conv"].sum(axis=(1, 2, 3)))
    act, _ = two_layer()[2](x[0], 0)
    np.testing.assert_allclose(
        h(jnp.asarray(x[0], jnp.float32), 0), act.sum(), rtol=1e-5
    )


@pytest.mark.parametrize("chunk", [None, 1, 3, 7, 20])
def test_chunked_sum_and_map(chunk):
    xs = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    w = np.random.default_rng(1).uniform(size=7).astype(np.float32)
    fn = lambda v: {"a": jnp.sin(v), "b": jnp.sum(v**2)}
    got = core.chunked_sum(fn, jnp.asarray(xs), chunk, jnp.asarray(w))
    np.testing.assert_allclose(got["a"], (w[:, None] * np.sin(xs)).sum(0), rtol=1e-5)
    np.testing.assert_allclose(got["b"], (w * (xs**2).sum(1)).sum(), rtol=1e-5)
    mapped = core.chunked_map(lambda v: jnp.sin(v), jnp.asarray(xs), chunk)
    np.testing.assert_allclose(mapped, np.sin(xs), rtol=1e-6)


@pytest.mark.multidevice
@pytest.mark.parametrize("n", [8, 5, 11])
def test_map_samples_sharded_equals_unsharded(n):
    mesh = make_mesh()
    x = jnp.asarray(np.random.default_rng(0).normal(size=(n, 3)), jnp.float32)
    fn = lambda v: jnp.cumsum(v) * 2
    run = jax.jit(lambda v: core.map_samples(fn, v, mesh=mesh))
    np.testing.assert_array_equal(run(x), jax.vmap(fn)(x))


@pytest.mark.parametrize("chunk", [None, 2, 3, 7])
def test_host_chunked_sum(chunk):
    xs = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    w = np.random.default_rng(1).uniform(size=7).astype(np.float32)
    calls = []

    def fn(items, weights):
        calls.append(items.shape)
        return jnp.tensordot(jnp.asarray(weights), jnp.sin(items), axes=1)

    got = core.host_chunked_sum(fn, xs, chunk, w)
    np.testing.assert_allclose(got, (w[:, None] * np.sin(xs)).sum(0), rtol=1e-5)
    assert len(set(calls)) == 1  # one shape: one compiled program


def _pool(x, window, strides, padding="VALID"):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, strides, padding)


def _pool_grad_reference(x, c, window):
    """float64 NumPy: d sum(c * maxpool(x)) / dx, each window's c to its
    first maximum in row-major window order (select-and-scatter, torch)."""
    g = np.zeros_like(x, np.float64)
    for out in np.ndindex(c.shape):
        idx = [range(o * w, (o + 1) * w) for o, w in zip(out, window)]
        cells = list(np.ndindex(*window))
        vals = [x[tuple(i[k] for i, k in zip(idx, cell))] for cell in cells]
        first = cells[int(np.argmax(vals))]  # argmax: the first maximum
        g[tuple(i[k] for i, k in zip(idx, first))] += c[out]
    return g


def test_tiled_pool_gradient_equals_reference_with_ties():
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=(1, 6, 8, 3)) * 2) / 2  # many exact ties
    c = rng.normal(size=(1, 3, 2, 3))
    window = (1, 2, 4, 1)
    f = lambda v: jnp.sum(_pool(v, window, window) * jnp.asarray(c, v.dtype))
    got = jax.grad(core.tiled_pool_grads(f))(jnp.asarray(x, jnp.float32))
    want = _pool_grad_reference(x, c, window)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(got, jax.grad(f)(jnp.asarray(x, jnp.float32)))


def test_scalar_output_swaps_tiling_pools_only_same_gradient():
    """A CNN with a tiling pool (also inside a jitted helper) and an
    overlapping one: per-sample gradients equal plain autodiff's bit for bit
    on inputs with ties, and only the overlapping pool keeps jax's
    select-and-scatter VJP."""
    rng = np.random.default_rng(1)
    k1 = jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32)
    head = jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)
    conv = lambda v, k: jax.lax.conv_general_dilated(
        v, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip
    half = jax.jit(lambda v: _pool(v, (1, 2, 2, 1), (1, 2, 2, 1)))

    def f(v):
        a = conv(half(jax.nn.relu(v) * 1.5), k1)  # the input's ties reach the pool
        a = _pool(a, (1, 3, 3, 1), (1, 1, 1, 1), "SAME")  # overlapping: kept
        return jnp.mean(a, axis=(1, 2)) @ head, {"act": a}

    x = jnp.asarray(np.round(rng.normal(size=(6, 8, 8, 2)) * 2) / 2, jnp.float32)
    t = jnp.asarray(rng.integers(0, 5, size=6), jnp.int32)
    per_sample = lambda swap: jax.jit(
        jax.vmap(jax.grad(core.scalar_output(f, tiled_pool_vjp=swap))))  # fmt: skip
    np.testing.assert_array_equal(per_sample(True)(x, t), per_sample(False)(x, t))
    text = lambda swap: str(jax.make_jaxpr(per_sample(swap))(x, t))  # noqa: E731
    assert text(False).count("select_and_scatter_add") == 2
    assert text(True).count("select_and_scatter_add") == 1
