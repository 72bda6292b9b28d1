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
