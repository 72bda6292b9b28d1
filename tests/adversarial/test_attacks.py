"""FGSM / BIM / PGD / MI-FGSM / C&W-l2 (`jaxcxai.adversarial.attacks`, `cw`).

Independent references: closed forms on linear models (FGSM = eps sign(w);
the C&W minimum = the distance to the hyperplane, |margin| / ||w||), BIM /
MI-FGSM / l2 steps re-run as float64 NumPy loops with the softmax gradient
derived by hand, per-image and per-target loops for the vmaps, and the
eps-ball / data-range properties of the iterates and the random starts.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxcxai.adversarial import attacks, core, cw, iterates
from jaxcxai.checks import NonFiniteError

D, K = 6, 3
_rng = np.random.default_rng(0)
W = _rng.normal(size=(D, K))
B = _rng.normal(size=K) * 0.1
A = _rng.normal(size=(D, 4))  # a "layer" h = x A for custom objectives
X = _rng.uniform(-0.6, 0.6, size=(5, D)).astype(np.float32)


def linear(x):
    w, b = jnp.asarray(W, jnp.float32), jnp.asarray(B, jnp.float32)
    return x @ w + b[None], {"h": x @ jnp.asarray(A, jnp.float32)}


def np_grad(x, t, targeted=True):
    """Gradient of -CE(xW + b, t) (targeted) or CE (untargeted), float64."""
    z = x.astype(np.float64) @ W + B
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    g = (p - np.eye(K)[t]) @ W.T
    return -g if targeted else g


def np_iterative(x, t, eps, alpha, steps, norm, momentum, lo=-1.0, hi=1.0):
    """BIM / MI-FGSM / l2 steps in float64: the reference loop."""
    x0 = x.astype(np.float64)
    xa, acc = x0.copy(), np.zeros_like(x0)
    for _ in range(steps):
        g = np_grad(xa, t)
        if momentum:
            acc = momentum * acc + g / np.abs(g).sum(-1, keepdims=True)
            g = acc
        if norm == "linf":
            delta = np.clip(xa + alpha * np.sign(g) - x0, -eps, eps)
        else:
            delta = xa + alpha * g / np.linalg.norm(g, axis=-1, keepdims=True) - x0
            n = np.linalg.norm(delta, axis=-1, keepdims=True)
            delta = delta * np.minimum(1.0, eps / n)
        xa = np.clip(x0 + delta, lo, hi)
    return xa


def linear2(x):
    """Two classes, plain logits (no acts)."""
    return x @ jnp.asarray(W[:, :2], jnp.float32)


def test_fgsm_linear_binary_is_eps_sign_w():
    """Two classes: grad -CE(z, t) = p_o (W_t - W_o), so x_adv = x + eps sign(w)."""
    t = np.array([0, 1, 1, 0, 1])
    r = attacks.fgsm(linear2, X, t, eps=0.1, lo=-5.0, hi=5.0)
    w = W[:, 0] - W[:, 1]
    want = X + 0.1 * np.sign(np.where(t[:, None] == 0, w, -w))
    np.testing.assert_allclose(np.asarray(r.x_adv), want, atol=1e-6)
    np.testing.assert_allclose(np.asarray(r.linf), 0.1, rtol=1e-5)


@pytest.mark.parametrize("targeted,norm", [(True, "linf"), (False, "l2")])
def test_fgsm_matches_closed_form_with_clipping(targeted, norm):
    x = X.copy()
    x[0, :3] = [1.0, -1.0, 0.97]  # at / near the data range's edge
    t = np.array([0, 1, 2, 0, 1])
    r = attacks.fgsm(linear, x, t, eps=0.05, norm=norm, targeted=targeted)
    g = np_grad(x, t, targeted)
    step = np.sign(g) if norm == "linf" else g / np.linalg.norm(g, axis=1)[:, None]
    want = np.clip(x + 0.05 * step, -1.0, 1.0)
    np.testing.assert_allclose(np.asarray(r.x_adv), want, atol=1e-6)
    hit = (want @ W + B).argmax(1) == t
    np.testing.assert_array_equal(np.asarray(r.success), hit if targeted else ~hit)
    np.testing.assert_array_equal(np.asarray(r.first_success), np.where(
        (x @ W + B).argmax(1) == t if targeted else (x @ W + B).argmax(1) != t, 0,
        np.where(hit if targeted else ~hit, 1, -1)))  # fmt: skip


@pytest.mark.parametrize("norm,momentum", [("linf", 0.0), ("linf", 0.9), ("l2", 0.0)])
def test_iterative_matches_numpy_loop(norm, momentum):
    t = np.array([2, 0, 1, 2, 0])
    eps, alpha = (0.1, 0.03) if norm == "linf" else (0.3, 0.1)
    r = attacks.iterative(linear, X, t, None, eps=eps, alpha=alpha, steps=6,
                          norm=norm, momentum=momentum)  # fmt: skip
    want = np_iterative(X, t, eps, alpha, 6, norm, momentum)
    np.testing.assert_allclose(np.asarray(r.x_adv), want, atol=2e-6)
    d = want - X
    np.testing.assert_allclose(np.asarray(r.l2), np.linalg.norm(d, axis=1), atol=1e-5)
    np.testing.assert_allclose(np.asarray(r.linf), np.abs(d).max(1), atol=1e-6)
    np.testing.assert_allclose(np.asarray(r.logits), want @ W + B, atol=1e-5)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_iterates_stay_in_ball_and_range(norm):
    """Iterates s (the result of `steps=s` from the same random start) lie
    in the eps-ball and in [lo, hi]; images start at the range's edges so
    that the clip binds. (s = 7 masks the last chunk's extra steps.)"""
    x = np.clip(X + np.float32(0.5), -1.0, 1.0).astype(np.float32)
    x[:, 0] = 1.0
    eps, alpha = (0.2, 0.02) if norm == "linf" else (0.5, 0.05)
    key = jax.random.key(3)
    starts = []
    for s in (5, 7, 10):
        r = attacks.iterative(linear, x, 1, key, eps=eps, alpha=alpha, steps=s,
                              norm=norm, random_start=True)  # fmt: skip
        xa = np.asarray(r.x_adv, np.float64)
        d = xa - x
        size = np.abs(d).max(1) if norm == "linf" else np.linalg.norm(d, axis=1)
        assert (size <= eps * (1 + 1e-5)).all(), (s, size)
        assert xa.min() >= -1.0 and xa.max() <= 1.0
        assert (xa[:, 0] <= 1.0).all() and size.max() > 0.5 * eps
        starts.append(xa)
    assert not np.allclose(starts[0], starts[1])


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_start_is_uniform_in_the_ball(norm):
    """Kolmogorov-Smirnov against U(-eps, eps) per entry (l-inf) or against
    U(0, 1) for (||delta|| / eps)^d (l2: uniform in the ball)."""
    x0 = jnp.zeros((3000, 4), jnp.float32)
    s = np.asarray(iterates.start_in_ball(jax.random.key(0), x0, 0.5, -10.0, 10.0,
                                          norm=norm), np.float64)  # fmt: skip
    if norm == "linf":
        assert np.abs(s).max() <= 0.5
        assert stats.kstest(s.ravel(), stats.uniform(-0.5, 1.0).cdf).pvalue > 1e-3
    else:
        r = np.linalg.norm(s, axis=1)
        assert r.max() <= 0.5 * (1 + 1e-6)
        assert stats.kstest((r / 0.5) ** 4, "uniform").pvalue > 1e-3
        assert np.abs((s / r[:, None]).mean(0)).max() < 0.05  # no preferred direction
    x1 = jnp.full((4, 4), 9.9, jnp.float32)  # near hi: the clip binds
    s1 = np.asarray(iterates.start_in_ball(jax.random.key(1), x1, 0.5, -10.0, 10.0,
                                           norm=norm))  # fmt: skip
    assert s1.max() <= 10.0 and (s1 == 10.0).any()


def test_pgd_restarts_keep_best_restart():
    """Images 0 and 1 succeed in some restarts only (checked), so both
    branches of the choice are exercised."""
    t = np.array([2, 0, 1, 2, 0])
    kw = dict(eps=0.3, alpha=0.02, steps=5)
    key = jax.random.key(7)
    r = attacks.pgd(linear, X, t, key, restarts=3, **kw)
    runs = [attacks.iterative(linear, X, t, k, random_start=True, **kw)
            for k in jax.random.split(key, 3)]  # fmt: skip
    xs = np.stack([np.asarray(q.x_adv) for q in runs])
    hit = np.stack([np.asarray(q.success) for q in runs])
    # the default targeted objective: -CE = log p_t
    obj = np.stack([np.log(_softmax(np.asarray(q.logits, np.float64)))[np.arange(5), t]
                    for q in runs])  # fmt: skip
    assert hit.any(0)[:2].all() and not hit.all(0)[:2].any() and not hit[:, 2:].any()
    best = np.where(hit.any(0), np.where(hit, obj, -np.inf).argmax(0), obj.argmax(0))
    np.testing.assert_allclose(np.asarray(r.x_adv), xs[best, np.arange(5)], atol=1e-7)


def _softmax(z):
    p = np.exp(z - z.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def test_early_stop_freezes_at_first_success():
    t = np.array([2, 0, 1, 2, 0])
    kw = dict(eps=0.3, alpha=0.03, steps=10)
    free = attacks.iterative(linear, X, t, None, **kw)
    stop = attacks.iterative(linear, X, t, None, early_stop=True, **kw)
    first = np.asarray(stop.first_success)
    np.testing.assert_array_equal(np.asarray(free.first_success), first)
    assert (first > 0).any() and (first <= 10).all()
    for b in np.nonzero(first > 0)[0]:
        want = np_iterative(X[b : b + 1], t[b : b + 1], 0.3, 0.03, first[b], "linf", 0)
        np.testing.assert_allclose(np.asarray(stop.x_adv[b]), want[0], atol=2e-6)
        assert (want @ W + B).argmax() == t[b]
    assert np.asarray(stop.success)[first >= 0].all()


def test_custom_layer_objective():
    """Pushing the layer h = x A along v: the gradient is A v, constant."""
    v = jnp.asarray([1.0, -2.0, 0.5, 0.0], jnp.float32)
    obj = lambda logits, acts, t: acts["h"] @ v
    r = attacks.fgsm(linear, X, 0, eps=0.02, objective=obj)
    want = np.clip(X + 0.02 * np.sign(A @ np.asarray(v)), -1, 1)
    np.testing.assert_allclose(np.asarray(r.x_adv), want, atol=1e-6)


@pytest.mark.parametrize("tanh", [True, False])
def test_cw_linear_binary_reaches_boundary_at_minimal_distance(tanh):
    """The smallest x' with argmax = t is x + d* w / ||w||, d* = margin / ||w||.

    At c = 0.1 the objective's stationary point x + c w / 2 lies short of
    the boundary (checked), so the first round fails and the search must
    raise c: the first success comes in a later round."""
    z = X.astype(np.float64) @ W[:, :2]
    t = 1 - z.argmax(1)
    wdir = W[:, 1] - W[:, 0]
    dstar = np.abs(z[:, 1] - z[:, 0]) / np.linalg.norm(wdir)
    assert (0.1 * np.linalg.norm(wdir) / 2 < dstar).all()
    lo, hi = (-3.0, 3.0) if tanh else (-np.inf, np.inf)
    r = cw.cw_l2(linear2, X, t, c=0.1, binary_steps=8, steps=300, lr=0.005, tanh=tanh,
                 lo=lo, hi=hi)  # fmt: skip
    assert np.asarray(r.success).all()
    assert (np.asarray(r.first_success) >= 301).all()  # round 0 failed
    l2 = np.asarray(r.l2, np.float64)
    assert (l2 >= dstar * (1 - 1e-4)).all() and (l2 <= dstar * 1.01).all(), l2 / dstar
    d = np.asarray(r.x_adv, np.float64) - X
    cos = (d @ wdir * np.where(t == 1, 1, -1)) / (np.linalg.norm(d, axis=1)
                                                  * np.linalg.norm(wdir))  # fmt: skip
    assert (cos > 0.999).all(), cos


def test_cw_stationary_point_short_of_the_boundary():
    """One round at c = 0.1 without the box (the uq-xai variant): Adam
    reaches the minimiser of ||delta||^2 + c (Z_o - Z_t), delta = c w / 2."""
    z = X.astype(np.float64) @ W[:, :2]
    t = 1 - z.argmax(1)
    w = np.where(t[:, None] == 1, W[:, 1] - W[:, 0], W[:, 0] - W[:, 1])
    r = cw.cw_l2(linear2, X, t, c=0.1, binary_steps=1, steps=300, lr=0.005,
                 tanh=False, lo=-np.inf, hi=np.inf)  # fmt: skip
    np.testing.assert_allclose(np.asarray(r.x_adv) - X, 0.05 * w, atol=1e-5)
    assert not np.asarray(r.success).any()
    np.testing.assert_array_equal(np.asarray(r.first_success), -1)


def _conv_net():
    rng = np.random.default_rng(1)
    k1 = jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32)
    wd = jnp.asarray(rng.normal(size=(4, K)), jnp.float32)

    def f(x):
        h = jax.lax.conv_general_dilated(x, k1, (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip
        h = jax.nn.relu(h)
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1),
                                  (1, 2, 2, 1), "VALID")  # fmt: skip
        return jnp.mean(h, axis=(1, 2)) @ wd, {"conv": h}

    x = rng.uniform(-0.8, 0.8, size=(3, 6, 6, 2)).astype(np.float32)
    return f, x


@pytest.mark.parametrize("name", ["mifgsm", "cw_l2"])
def test_vmapped_equals_looped_over_images(name):
    """MI-FGSM with early stop on a conv net with a max pool, one image at a
    time; C&W on the linear model, each image alone in a batch of copies of
    itself (the same program as the minimal-distance test: cheap to run)."""
    if name == "mifgsm":
        f, x = _conv_net()
        t = np.array([0, 2, 1])
        kw = dict(eps=0.05, alpha=0.02, steps=2, early_stop=True)
        alone = lambda b: (x[b : b + 1], t[b : b + 1])
    else:
        f, x, t = linear2, X, np.array([0, 1, 1, 0, 1])
        kw = dict(c=0.1, steps=8, binary_steps=2, lr=0.02, lo=-3.0, hi=3.0)
        alone = lambda b: (x[[b] * len(x)], t[[b] * len(x)])
    batch = attacks.ATTACKS[name](f, x, t, None, **kw)
    for b in range(3):
        one = attacks.ATTACKS[name](f, *alone(b), None, **kw)
        for got, want in zip(batch, one):
            np.testing.assert_allclose(np.asarray(got[b]), np.asarray(want[0]),
                                       rtol=1e-5, atol=1e-6)  # fmt: skip


def test_over_targets_equals_loop_over_targets():
    f, x = linear, X
    kw = dict(eps=0.3, alpha=0.02, steps=5)  # the random start matters
    key = jax.random.key(5)
    r = attacks.over_targets("pgd", f, x, np.arange(K), key, **kw)
    assert r.x_adv.shape == (K,) + x.shape and r.success.shape == (K, len(x))
    for j, kj in enumerate(jax.random.split(key, K)):
        one = attacks.pgd(f, x, j, kj, **kw)
        for got, want in zip(r, one):
            np.testing.assert_allclose(np.asarray(got[j]), np.asarray(want),
                                       rtol=1e-5, atol=1e-6)  # fmt: skip
    norms = core.perturbation_norms(x, r.x_adv)
    np.testing.assert_allclose(np.asarray(norms["linf"]), np.asarray(r.linf))
    want_rate = np.mean(np.asarray(r.success))
    assert core.success_rate(r) == pytest.approx(want_rate)


def test_bad_input_named_errors():
    bad = X.copy()
    bad[1, 2] = np.nan
    with pytest.raises(NonFiniteError, match="x has 1 non-finite"):
        attacks.fgsm(linear, bad, 0, eps=0.1)
    with pytest.raises(
        ValueError, match=r"target .*outside the classes \[0, K=3\).*\[3\]"
    ):
        attacks.iterative(linear, X, 3, None, eps=0.1, alpha=0.1, steps=2)
    with pytest.raises(ValueError, match=r"targets .*K=3\).*\[-1\]"):
        attacks.over_targets(
            "bim", linear, X, [0, -1], None, eps=0.1, alpha=0.1, steps=1
        )
    with pytest.raises(ValueError, match="target .*K=3"):
        cw.cw_l2(linear, X, np.array([0, 1, 2, 5, 0]))
    with pytest.raises(ValueError, match="outside the data range"):
        attacks.fgsm(linear, X * 3, 0, eps=0.1)
    with pytest.raises(ValueError, match="unknown attack 'deepfool'"):
        attacks.over_targets("deepfool", linear, X, [0], None)
    with pytest.raises(ValueError, match="norm must be one of"):
        attacks.fgsm(linear, X, 0, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="key must be a PRNG key"):
        attacks.pgd(linear, X, 0, None, eps=0.1, alpha=0.1, steps=1)
    with pytest.raises(ValueError, match="key must be a PRNG key"):
        attacks.over_targets("pgd", linear, X, [0], None, eps=0.1, alpha=0.1, steps=1)
    with pytest.raises(ValueError, match="tanh=True needs a finite"):
        cw.cw_l2(linear, X, 0, lo=-np.inf, hi=np.inf)
