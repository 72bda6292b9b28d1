"""Gradient instability (spec section 5.3) against NumPy: sign flips,
coefficients of variation, and one-image-at-a-time vs batched gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.checks import NonFiniteError
from jaxcxai.concepts.stability import instability as inst_lib
from tests.concepts.stability.nets import N, T, net, x_of


def test_sign_flip_rate_and_cv_against_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 50)), rng.normal(size=(4, 50)) + 0.5
    a[:, :10] = b[:, :10] = 0.0  # zero in both: left out
    a[:, 10:15] = 0.0  # zero in one only: a flip
    keep = ~((a == 0) & (b == 0))
    flips = (np.sign(a) != np.sign(b)) & keep
    np.testing.assert_allclose(inst_lib.sign_flip_rate(a, b), flips.sum() / keep.sum(),
                               rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose(inst_lib.sign_flip_rate(a, b, axis=1),
                               flips.sum(1) / keep.sum(1), rtol=1e-6)  # fmt: skip
    assert float(inst_lib.sign_flip_rate(np.zeros(3), np.zeros(3))) == 0.0
    runs = rng.normal(size=(6, 5)) + np.array([3.0, -2.0, 1.0, 0.5, 10.0])
    for ddof in (0, 1):
        want = np.std(runs, 0, ddof=ddof) / np.abs(np.mean(runs, 0))
        np.testing.assert_allclose(inst_lib.coefficient_of_variation(runs, ddof=ddof), want,
                                   rtol=1e-5)  # fmt: skip
    odd = np.array([[1.0, 0.0], [-1.0, 0.0]])  # mean 0: inf, or 0 with std 0
    np.testing.assert_array_equal(inst_lib.coefficient_of_variation(odd), [np.inf, 0.0])
    var = inst_lib.variability(runs * np.array([1, 1, 1, 1, 0])[None] - 0.8)
    signs = np.sign(runs * np.array([1, 1, 1, 1, 0])[None] - 0.8)
    np.testing.assert_allclose(var["sign_agreement"],
                               np.mean((signs == signs[:1]).all(0)))  # fmt: skip
    np.testing.assert_allclose(var["tcav_std"],
                               np.std(np.mean(signs > 0, 1)), rtol=1e-6)  # fmt: skip


def _cancelling(seed=0, d=8, k=16):
    """hidden = relu(x V); logits = hidden W1 - hidden W2, W2 = W1 + 1e-9 E:
    the layer gradient -1e-9 E[:, t] is below float32's resolution of W."""
    rng = np.random.default_rng(seed)
    v, w1 = rng.normal(size=(d, k)), rng.normal(size=(k, 2))
    w2 = w1 + 1e-9 * rng.normal(size=(k, 2))

    def make(dtype):
        vv, a, b = (jnp.asarray(z, dtype) for z in (v, w1, w2))

        def f(x):
            hidden = jnp.maximum(x @ vv, 0.0)
            return hidden @ a - hidden @ b, {"hidden": hidden}

        return f

    return make


def test_one_image_vs_batched_and_a_visible_instability():
    f, act_of, _, grad = net()
    x = x_of(seed=3)
    for mode in ("vmap", "sum"):
        got = inst_lib.batch_instability(f, x, ["act", "hidden"], T, mode=mode)
        for layer, inst in got.items():
            # XLA:CPU computes a vmapped per-sample gradient and one backward
            # pass of the summed batch with the same per-image arithmetic (no
            # batch-size-dependent kernels, unlike cuDNN's algorithm choice
            # in the reference's "fast" mode), so in float32 the two usually
            # agree bit for bit here; only bound them.
            assert float(inst.sign_flip_rate) == 0.0, (mode, layer)
            assert 0.0 <= float(inst.relative_diff) < 1e-6, (mode, layer)
    single = inst_lib.single_gradients(f, x, "act", T)
    want = [grad(act_of(x[i].astype(np.float64)), T[i]) for i in range(N)]
    np.testing.assert_allclose(single, want, rtol=1e-5, atol=1e-6)
    # The explicit head split and a custom scalar give the same gradients.
    split = inst_lib.batched_gradients(f, x, "act", T, mode="sum", head=f.head)
    np.testing.assert_allclose(split, want, rtol=1e-5, atol=1e-6)
    scalar = lambda outputs: outputs[0][:, 1]
    custom = inst_lib.batch_instability(f, x, ["act"], target_fn=scalar, mode="sum")
    assert float(custom["act"].relative_diff) < 1e-6
    ones = [grad(act_of(x[i].astype(np.float64)), 1) for i in range(N)]
    np.testing.assert_allclose(inst_lib.single_gradients(f, x, "act", target_fn=scalar),
                               ones, rtol=1e-5, atol=1e-6)  # fmt: skip
    # A case that shows instability: float32 gradients of a network whose
    # layer gradients (~1e-9) cancel below float32 resolution, against a
    # float64 one-image-at-a-time reference: most signs are decided by
    # rounding, as for the reference's tiny shallow-layer sensitivities.
    make = _cancelling()
    x = np.random.default_rng(2).normal(size=(5, 8))
    batched32 = inst_lib.batched_gradients(make(jnp.float32), x.astype(np.float32),
                                       "hidden", 0, mode="sum")  # fmt: skip
    with jax.enable_x64(True):
        ref64 = np.asarray(inst_lib.single_gradients(make(jnp.float64), x, "hidden", 0))
    assert ref64.dtype == np.float64 and np.abs(ref64).max() < 1e-8
    inst = inst_lib.compare(ref64, batched32)
    assert float(inst.sign_flip_rate) > 0.3 and float(inst.max_abs_diff) > 0.0
    # The well-conditioned network differs from float64 by rounding only.
    with jax.enable_x64(True):
        f64 = net(dtype=jnp.float64)[0]
        ref = inst_lib.single_gradients(f64, x_of().astype(np.float64), "hidden", T)
    inst = inst_lib.compare(ref, inst_lib.batched_gradients(f, x_of(), "hidden", T))
    assert float(inst.sign_flip_rate) == 0.0
    assert 0.0 < float(inst.relative_diff) < 1e-6


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="b must have the shape of a \\(3,\\)"):
        inst_lib.sign_flip_rate(np.ones(3), np.ones(4))
    with pytest.raises(NonFiniteError, match="a has 1 non-finite"):
        inst_lib.sign_flip_rate(np.array([np.nan, 1.0]), np.ones(2))
    with pytest.raises(NonFiniteError, match="b has 1 non-finite"):
        inst_lib.compare(np.ones(2), np.array([np.inf, 1.0]))
    with pytest.raises(NonFiniteError, match="values has 1 non-finite"):
        inst_lib.coefficient_of_variation(np.array([[np.inf], [1.0]]))
    with pytest.raises(ValueError, match="values must be \\(T, N\\)"):
        inst_lib.variability(np.ones(3))
    f, *_ = net()
    with pytest.raises(ValueError, match="mode must be 'vmap' or 'sum'"):
        inst_lib.batched_gradients(f, x_of(), "act", T, mode="loop")
    with pytest.raises(ValueError, match="layer 'conv' is not returned by f"):
        inst_lib.batch_instability(f, x_of(), ["conv"], T)
