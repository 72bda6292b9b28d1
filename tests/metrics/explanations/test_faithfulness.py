"""Log-odds removal shift and deletion/insertion curves against NumPy loops."""

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from jaxcxai.metrics import explanations as ex


def test_removal_shift_equals_numpy_loop_with_sklearn_model():
    rng = np.random.default_rng(0)
    xtr = rng.normal(size=(200, 7))
    ytr = (xtr[:, 0] + xtr[:, 1] - xtr[:, 2] > 0).astype(int) + (xtr[:, 3] > 1)
    model = LogisticRegression(max_iter=500).fit(xtr, ytr)
    x = rng.normal(size=(6, 7)).astype(np.float32)
    phi = np.round(rng.normal(size=(6, 7)), 1)  # ties: the lower index first
    median = np.median(xtr, axis=0)
    got = ex.removal_shift(model.predict_proba, x, phi, median, ks=(1, 3, 5))

    def z(v):
        p = np.clip(
            model.predict_proba(v[None].astype(np.float32))[0], 1e-12, 1 - 1e-12
        )
        return np.log(p) - np.log(p[0])

    want = np.zeros((6, 3))
    for i in range(6):
        order = np.argsort(-np.abs(phi[i]), kind="stable")
        for j, k in enumerate((1, 3, 5)):
            xk = x[i].copy()
            xk[order[:k]] = median[order[:k]]
            want[i, j] = np.mean((z(x[i]) - z(xk)) ** 2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="ks"):
        ex.removal_inputs(x, phi, median, ks=(8,))


def _softmax(v):
    e = np.exp(v - v.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("insertion", [False, True])
def test_deletion_insertion_equal_numpy_loop(insertion):
    rng = np.random.default_rng(1)
    n, h, w, c, k, steps = 3, 4, 5, 2, 3, 6
    wts = rng.normal(size=(h * w * c, k))
    f = lambda v: (v.reshape(v.shape[0], -1) @ jnp.asarray(wts, jnp.float32), {})
    x = rng.normal(size=(n, h, w, c)).astype(np.float32)
    phi = rng.normal(size=(n, h, w)).astype(np.float32)
    base = rng.normal(size=(n, h, w, c)).astype(np.float32) * 0.1
    t = np.array([2, 0, 1])
    fn = ex.insertion_curve if insertion else ex.deletion_curve
    got = fn(f, x, phi, t, baseline=base, steps=steps, chunk_size=4)
    d = h * w
    want = np.zeros((n, steps + 1))
    for i in range(n):
        order = np.argsort(-phi[i].reshape(-1), kind="stable")
        for s in range(steps + 1):
            m = s * d // steps
            chosen = np.zeros(d, bool)
            chosen[order[:m]] = True
            chosen = chosen.reshape(h, w, 1)
            xi = np.where(chosen, x[i], base[i]) if insertion else np.where(
                chosen, base[i], x[i])  # fmt: skip
            want[i, s] = _softmax(xi.reshape(-1).astype(np.float64) @ wts)[t[i]]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    grid = np.linspace(0, 1, steps + 1)
    np.testing.assert_allclose(ex.curve_auc(got), np.trapezoid(want, grid, axis=1),
                               rtol=1e-4)  # fmt: skip
    # Default target: the predicted class of the full input.
    pred = np.argmax(x.reshape(n, -1).astype(np.float64) @ wts, axis=1)
    np.testing.assert_allclose(fn(f, x, phi, baseline=base, steps=steps),
                               fn(f, x, phi, pred, baseline=base, steps=steps))  # fmt: skip


def test_curve_errors():
    f = lambda v: v.reshape(v.shape[0], -1)[:, :3]
    x = np.zeros((2, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="phi must be"):
        ex.deletion_curve(f, x, np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="target"):
        ex.deletion_curve(f, x, np.zeros((2, 4, 4)), np.array([0, 3]))
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="^x has 1 non-finite"):
        ex.deletion_curve(f, x, np.zeros((2, 4, 4)))
