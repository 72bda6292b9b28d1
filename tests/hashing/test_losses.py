"""DUCH/CHNR loss terms against float64 NumPy ports of the reference code."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.hashing import duch, losses
from jaxcxai.hashing.models import HashDiscriminator


def _codes(seed, n=5, k=7):
    rng = np.random.default_rng(seed)
    return np.tanh(rng.normal(size=(n, k))), np.tanh(rng.normal(size=(n, k)))


def _np_normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _np_ntxent_reference_rows(a, b, tau=1.0, eps=1e-6):
    """The reference `forward_orig`, literally, in float64."""
    a, b = _np_normalize(a), _np_normalize(b)
    z = np.concatenate([a, b])
    sim = np.exp(z @ z.T / tau)
    neg = np.maximum(sim.sum(-1) - math.e, eps)
    pos = np.exp(np.sum(a * b, -1) / tau)
    pos = np.concatenate([pos, pos])
    return -np.log(pos / (neg + eps))


def _np_simclr_rows(a, b, tau):
    a, b = _np_normalize(a), _np_normalize(b)
    z = np.concatenate([a, b])
    n2 = len(z)
    rows = []
    for r in range(n2):
        partner = (r + n2 // 2) % n2
        others = [np.exp(z[r] @ z[c] / tau) for c in range(n2) if c != r]
        rows.append(-z[r] @ z[partner] / tau + np.log(np.sum(others)))
    return np.asarray(rows)


def test_ntxent_reference_matches_numpy():
    a, b = _codes(0)
    ours = losses.ntxent_reference(jnp.asarray(a, jnp.float32), jnp.asarray(b))
    np.testing.assert_allclose(ours, _np_ntxent_reference_rows(a, b).sum(), rtol=1e-5)
    rows = losses.ntxent_rows(jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_allclose(rows, _np_ntxent_reference_rows(a, b), rtol=1e-5)


def test_ntxent_reference_is_a_sum_and_assumes_tau_one():
    a, b = _codes(1)
    ref_rows = _np_ntxent_reference_rows(a, b)
    std_rows = _np_simclr_rows(a, b, 1.0)
    # tau = 1: the e-subtraction removes the self term; equal up to eps.
    np.testing.assert_allclose(ref_rows, std_rows, rtol=1e-5)
    std = losses.ntxent_standard(jnp.asarray(a), jnp.asarray(b), 1.0)
    ref = losses.ntxent_reference(jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_allclose(std * 2 * len(a), ref, rtol=1e-5)  # sum vs mean
    # tau != 1: subtracting e no longer removes exp(1/tau), the forms split.
    tau = 0.5
    quirk = losses.ntxent(a, b, tau=tau, subtract_e=True, reduce_sum=True)
    np.testing.assert_allclose(
        quirk, _np_ntxent_reference_rows(a, b, tau).sum(), rtol=1e-5
    )
    fixed = losses.ntxent(a, b, tau=tau, subtract_e=False, reduce_sum=True)
    np.testing.assert_allclose(fixed, _np_simclr_rows(a, b, tau).sum(), rtol=1e-5)
    assert abs(float(quirk) - float(fixed)) > 1.0


def test_ntxent_standard_matches_numpy():
    a, b = _codes(2, n=4, k=3)
    ours = losses.ntxent_standard(jnp.asarray(a), jnp.asarray(b), tau=0.3)
    np.testing.assert_allclose(ours, _np_simclr_rows(a, b, 0.3).mean(), rtol=1e-5)


def test_weighted_ntxent_shares_pair_weights_and_stops_gradient():
    a, b = _codes(3)
    w = np.array([0.1, 0.9, 0.5, 0.0, 1.0])
    expected = (_np_ntxent_reference_rows(a, b) * np.concatenate([w, w])).sum()
    ours = losses.ntxent_reference(jnp.asarray(a), jnp.asarray(b), jnp.asarray(w))
    np.testing.assert_allclose(ours, expected, rtol=1e-5)
    g = jax.grad(lambda w: losses.ntxent_reference(a, b, w))(jnp.asarray(w))
    np.testing.assert_array_equal(g, 0.0)
    with pytest.raises(ValueError, match="weights"):
        losses.ntxent_reference(a, b, jnp.ones(3))
    with pytest.raises(ValueError, match="equal shape"):
        losses.ntxent_reference(a, b[:3])


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_discriminator_and_generator_bce():
    rng = np.random.default_rng(4)
    r, f = rng.normal(size=6) * 3, rng.normal(size=6) * 3
    expected = -np.mean(np.log(_np_sigmoid(r))) - np.mean(np.log(1 - _np_sigmoid(f)))
    np.testing.assert_allclose(losses.discriminator_bce(r, f), expected, rtol=1e-5)
    gen = losses.adversarial_generator_loss(jnp.asarray(r))
    np.testing.assert_allclose(gen, -np.sum(np.log(_np_sigmoid(r))), rtol=1e-5)


def test_gradient_penalty_linear_discriminator_by_hand():
    # D(x) = x.w + c: every per-sample input gradient is w, so the penalty
    # is 10 (|w| - 1)^2 and its gradient in w is 20 (|w| - 1) w / |w|.
    w = jnp.asarray([0.3, -1.2, 0.8])
    x = jnp.asarray(np.random.default_rng(5).normal(size=(4, 3)), jnp.float32)

    def penalty(w):
        return losses.gradient_penalty(lambda z: (z @ w + 0.7, None), x)[0]

    norm = float(jnp.linalg.norm(w))
    np.testing.assert_allclose(penalty(w), 10 * (norm - 1) ** 2, rtol=1e-5)
    np.testing.assert_allclose(
        jax.grad(penalty)(w), 20 * (norm - 1) * np.asarray(w) / norm, rtol=1e-5
    )


def _np_disc(params, x):
    """HashDiscriminator forward in float64 (train-mode BatchNorm)."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    h = x @ p["fc1"]["dense"]["kernel"] + p["fc1"]["dense"]["bias"]
    mu, var = h.mean(0), h.var(0)
    h = (h - mu) / np.sqrt(var + 1e-5) * p["bn"]["scale"] + p["bn"]["bias"]
    h = np.maximum(h, 0)
    return (h @ p["fc2"]["dense"]["kernel"] + p["fc2"]["dense"]["bias"])[:, 0]


def test_gradient_penalty_through_batchnorm_matches_finite_differences():
    disc = HashDiscriminator(bits=4)
    variables = disc.init(jax.random.key(0), jnp.zeros((2, 4)))
    rng = np.random.default_rng(6)
    real, fake = np.tanh(rng.normal(size=(2, 6, 4)))
    u = rng.uniform(size=(6, 4))
    x_hat = u * real + (1 - u) * fake

    def fn(x):
        out, upd = disc.apply(variables, x, train=True, mutable=["batch_stats"])
        return out, upd

    ours, _ = losses.gradient_penalty(fn, losses.interpolate(real, fake, u))
    # Central differences of sum_j D(x)_j, BatchNorm coupling included.
    h = 1e-6
    grad = np.zeros_like(x_hat)
    for i in range(x_hat.shape[0]):
        for j in range(x_hat.shape[1]):
            e = np.zeros_like(x_hat)
            e[i, j] = h
            plus = _np_disc(variables["params"], x_hat + e).sum()
            minus = _np_disc(variables["params"], x_hat - e).sum()
            grad[i, j] = (plus - minus) / (2 * h)
    expected = 10 * np.mean((np.linalg.norm(grad, axis=1) - 1) ** 2)
    np.testing.assert_allclose(ours, expected, rtol=2e-4)


def test_quantization_bit_balance_and_target_codes():
    rng = np.random.default_rng(7)
    views = [np.tanh(rng.normal(size=(5, 4))) for _ in range(4)]
    target = np.sign(rng.normal(size=(5, 4)))
    q = losses.quantization_loss([jnp.asarray(v) for v in views], target)
    np.testing.assert_allclose(
        q, sum(((target - v) ** 2).sum() for v in views), rtol=1e-5
    )
    bb = losses.bit_balance_loss([jnp.asarray(v) for v in views])
    np.testing.assert_allclose(bb, sum((v.sum(1) ** 2).sum() for v in views), rtol=1e-5)
    # Per code, not per bit: balanced bits with unbalanced codes cost > 0.
    codes = np.array([[1.0, 1.0], [-1.0, -1.0]])
    assert float(losses.bit_balance_loss([codes])) == 8.0
    b = losses.target_codes(*[jnp.asarray(v) for v in views])
    np.testing.assert_array_equal(b, np.sign(sum(views)))
    zero = losses.target_codes(*[jnp.zeros((1, 2))] * 4)
    np.testing.assert_array_equal(zero, 0.0)  # sign(0) = 0, as torch


def test_noise_weight_schemes():
    p = jnp.asarray([0.1, 0.5, 0.7, 0.95])
    np.testing.assert_allclose(losses.noise_weights(p, "normal"), p)
    np.testing.assert_allclose(losses.noise_weights(p, "exp"), np.asarray(p) ** 3)
    np.testing.assert_array_equal(
        losses.noise_weights(p, "dis", threshold=0.6), [0, 0, 1, 1]
    )
    np.testing.assert_array_equal(losses.noise_weights(p, "ones"), 1.0)
    with pytest.raises(ValueError, match="valid"):
        losses.noise_weights(p, "cubic")


@pytest.mark.parametrize(
    "subtract_e, reduce_sum, tau", [(True, True, 1.0), (False, False, 0.5)]
)
def test_ntxent_many_shares_blocks_and_equals_separate_terms(
    subtract_e, reduce_sum, tau
):
    """DUCH's three pairs, with ht2 the same array as ht1 (the quirk) and a
    weighted first pair: every term equals its own `ntxent` call."""
    rng = np.random.default_rng(7)
    with jax.enable_x64(True):
        hi1, hi2, ht1 = (jnp.asarray(rng.normal(size=(6, 5))) for _ in range(3))
        w = jnp.asarray(rng.uniform(size=6))
        kw = dict(tau=tau, subtract_e=subtract_e, reduce_sum=reduce_sum)
        pairs = [(hi1, ht1), (hi1, hi2), (ht1, ht1)]
        many = losses.ntxent_many(pairs, [w, None, None], **kw)
        for (a, b), wi, got in zip(pairs, [w, None, None], many):
            np.testing.assert_allclose(got, losses.ntxent(a, b, wi, **kw), rtol=1e-12)
        if subtract_e:  # the self pair against the literal reference
            ref = _np_ntxent_reference_rows(np.asarray(ht1), np.asarray(ht1), tau)
            np.testing.assert_allclose(many[2], ref.sum(), rtol=1e-12)
        # Gradients too (the shared blocks are differentiated once).
        f_many = lambda x, y: sum(losses.ntxent_many([(x, y), (x, x)], **kw))
        f_sep = lambda x, y: losses.ntxent(x, y, **kw) + losses.ntxent(x, x, **kw)
        for g_many, g_sep in zip(
            jax.grad(f_many, (0, 1))(hi1, ht1), jax.grad(f_sep, (0, 1))(hi1, ht1)
        ):
            np.testing.assert_allclose(g_many, g_sep, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="2 weights for 3 pairs"):
        losses.ntxent_many(pairs, [None, None])


def test_tied_code_gradients_sum_to_the_untied_ones():
    """duch.loss_and_code_grads(tied=True): loss unchanged, and the text
    gradients of slots 2 and 3 keep their sum (which is what reaches g)."""
    rng = np.random.default_rng(8)
    c = [jnp.asarray(rng.normal(size=(4, 3))) for _ in range(3)]
    codes = (c[0], c[1], c[2], c[2])

    def loss_fn(k):  # uses every slot differently
        val = sum(losses.ntxent_many([(k[0], k[2]), (k[2], k[3])]))
        return val + jnp.sum(k[3] ** 3) + jnp.sum(k[1] * k[0]), {}

    with jax.enable_x64(True):
        codes = tuple(jnp.asarray(x, jnp.float64) for x in codes)
        (l_u, _), g_u = duch.loss_and_code_grads(loss_fn, codes, tied=False)
        (l_t, _), g_t = duch.loss_and_code_grads(loss_fn, codes, tied=True)
    np.testing.assert_allclose(l_t, l_u, rtol=1e-12)
    np.testing.assert_allclose(g_t[0], g_u[0], rtol=1e-12)
    np.testing.assert_allclose(g_t[1], g_u[1], rtol=1e-12)
    np.testing.assert_allclose(g_t[2], g_u[2] + g_u[3], rtol=1e-10)
    np.testing.assert_array_equal(g_t[3], 0.0)
