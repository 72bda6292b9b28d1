"""BIM / PGD / C&W (arXiv:2603.29915, section 4.4) on a tiny tanh MLP.

Independent reference: one BIM/PGD step reimplemented in NumPy float64 with
the input gradient of the cross-entropy derived by hand (backpropagation
through tanh and softmax). Properties: the eps-ball, the loss rise, the
C&W margin drop and the zero norm gradient at delta = 0.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.checks import NonFiniteError
from jaxcxai.uncertainty import attacks

N, D, H, K = 16, 5, 8, 3
_rs = np.random.RandomState(0)
W1, B1 = _rs.randn(D, H), _rs.randn(H) * 0.1
W2, B2 = _rs.randn(H, K), _rs.randn(K) * 0.1
X = _rs.randn(N, D).astype(np.float32)


def f(z):
    h = jnp.tanh(z @ jnp.asarray(W1, jnp.float32) + jnp.asarray(B1, jnp.float32)[None])
    return h @ jnp.asarray(W2, jnp.float32) + jnp.asarray(B2, jnp.float32)[None]


Y = np.asarray(jnp.argmax(f(jnp.asarray(X)), axis=1))


def np_grad(z, y):
    """d sum_i CE_i / dz in float64, by hand."""
    z = z.astype(np.float64)
    h = np.tanh(z @ W1 + B1)
    logits = h @ W2 + B2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dlog = p - np.eye(K)[y]
    return ((dlog @ W2.T) * (1 - h**2)) @ W1.T


def np_ce(z, y):
    z = z.astype(np.float64)
    logits = np.tanh(z @ W1 + B1) @ W2 + B2
    lse = np.log(np.exp(logits).sum(1))
    return lse - logits[np.arange(len(y)), y]


def np_step(x_adv, x, y, eps, alpha):
    return x + np.clip(x_adv + alpha * np.sign(np_grad(x_adv, y)) - x, -eps, eps)


def test_one_step_matches_numpy_float64():
    eps, alpha = 0.1, 0.025
    # BIM's first step (from x) and a PGD step from a point inside the box
    start = X + np.random.RandomState(1).uniform(-eps, eps, X.shape).astype(np.float32)
    for x_adv in (X, start):
        ours = attacks.sign_step(
            f, jnp.asarray(x_adv), jnp.asarray(X), jnp.asarray(Y), eps, alpha
        )
        np.testing.assert_allclose(ours, np_step(x_adv, X, Y, eps, alpha), atol=1e-6)
    ours = attacks.bim(f, X, Y, eps, n_iter=1, alpha=alpha)
    np.testing.assert_allclose(ours, np_step(X, X, Y, eps, alpha), atol=1e-6)
    # two steps: the step size alpha = 2.5 eps / n_iter by default
    ref = np_step(np_step(X, X, Y, eps, 0.125), X, Y, eps, 0.125)
    np.testing.assert_allclose(attacks.bim(f, X, Y, eps, n_iter=2), ref, atol=1e-6)


@pytest.mark.parametrize("method", ["bim", "pgd"])
def test_ball_and_loss_rise(method):
    out = attacks.attack_sweep(f, X, Y, attacks.EPSILONS, method, key=jax.random.key(2))
    assert out.shape == (len(attacks.EPSILONS), N, D)
    clean = np_ce(X, Y)
    losses = []
    for eps, o in zip(attacks.EPSILONS, np.asarray(out)):
        assert np.abs(o - X).max() <= eps * (1 + 1e-5)
        loss = np_ce(o, Y)
        assert loss.mean() > clean.mean()
        assert (loss > clean).mean() >= 0.9
        losses.append(loss.mean())
    assert np.all(np.diff(losses) > 0)  # larger budget, larger loss


def test_sweep_equals_single_calls_and_pgd_restarts():
    sweep = attacks.attack_sweep(f, X, Y, (0.05, 0.2), "bim")
    for e, s in zip((0.05, 0.2), sweep):
        np.testing.assert_allclose(s, attacks.bim(f, X, Y, e), atol=1e-6)
    key = jax.random.key(3)
    one = attacks.pgd(f, X, Y, 0.1, key, restarts=1)
    three = attacks.pgd(f, X, Y, 0.1, key, restarts=3)
    assert np.abs(np.asarray(three) - X).max() <= 0.1 * (1 + 1e-5)
    assert not np.allclose(one, X)


def test_carlini_wagner_margin_and_norm_flag():
    def margin(z):
        logits = np.array(f(jnp.asarray(z)))
        true = logits[np.arange(N), Y]
        logits[np.arange(N), Y] = -np.inf
        return true - logits.max(1)

    adv = {c: attacks.carlini_wagner(f, X, Y, c) for c in attacks.CW_CONSTANTS}
    m0 = margin(X)
    prev = m0.mean()
    for c in attacks.CW_CONSTANTS:  # larger c, smaller margin
        m = margin(adv[c]).mean()
        assert m < prev
        prev = m
    unsq = attacks.carlini_wagner(f, X, Y, 1.0, unsquared_norm=True)
    assert np.all(np.isfinite(unsq)) and not np.allclose(unsq, adv[1.0])
    # c = 0: only the norm; its (sub)gradient at delta = 0 is 0, so delta
    # stays exactly 0 (a naive sqrt would give NaN here)
    for flag in (False, True):
        still = attacks.carlini_wagner(f, X, Y, 0.0, unsquared_norm=flag, n_iter=5)
        np.testing.assert_array_equal(still, X)


def test_errors():
    bad = X.copy()
    bad[0, 0] = np.inf
    with pytest.raises(NonFiniteError, match="^x has 1"):
        attacks.bim(f, bad, Y, 0.1)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        attacks.attack_sweep(f, X, Y, (0.1,), "pgd")
    with pytest.raises(ValueError, match="method must be"):
        attacks.attack_sweep(f, X, Y, (0.1,), "fgsm")
