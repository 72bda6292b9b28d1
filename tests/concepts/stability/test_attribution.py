"""Concept attribution (spec section 5.3) against float64 NumPy: finite
differences, the 51-gradient SmoothGrad and its noise scales, repeated runs."""

import jax
import numpy as np
import pytest

from jaxcxai import attribution as attr
from jaxcxai.concepts.stability import attribution as stab
from tests.concepts.stability.nets import C, H, N, T, W, net, x_of


def _fd(logit, a, t, direction, eps=1e-6):
    return (logit(a + eps * direction, t) - logit(a - eps * direction, t)) / (2 * eps)


def test_concept_attribution_matches_finite_differences():
    f, act_of, logit, _ = net()
    x = x_of()
    rng = np.random.default_rng(4)
    v1, v2, v3 = rng.normal(size=C), rng.normal(size=(H, W)), rng.normal(size=(H, W, C))
    # Each sensitivity <g, v> is a directional derivative of the logit at act.
    cases = {  # (dim, spatial, cav, direction in act space)
        "1d_mean": ("1d", "mean", v1, np.broadcast_to(v1 / (H * W), (H, W, C))),
        "1d_sum": ("1d", "sum", v1, np.broadcast_to(v1, (H, W, C))),
        "2d": ("2d", "mean", v2, np.repeat(v2[..., None] / C, C, axis=-1)),
        "3d": ("3d", "mean", v3, v3),
        "3d_flat": ("3d", "mean", v3.reshape(-1), v3),
    }
    for name, (dim, spatial, cav, direction) in cases.items():
        got = stab.concept_attribution(f, x, "act", cav, T, dim=dim, spatial=spatial)
        want = [_fd(logit, act_of(x[i].astype(np.float64)), T[i], direction)
                for i in range(N)]  # fmt: skip
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=name)


def _smoothed_reference(x, noise, scale_of, grad, act_of, cav):
    """float64: mean of the clean and n noisy layer gradients, dotted with cav."""
    out = []
    for i in range(len(x)):
        xi = x[i].astype(np.float64)
        s = scale_of(xi.max() - xi.min())
        copies = [xi] + [xi + s * noise[i, j] for j in range(noise.shape[1])]
        g = np.mean([grad(act_of(c), T[i]) for c in copies], axis=0)
        out.append(np.sum(g * cav))
    return np.asarray(out)


def test_smoothgrad_51_gradients_and_noise_scales():
    assert stab.smoothing() == {"n": 50, "sigma": 0.1, "noise_scale": "relative",
                                "keep_clean": True}  # fmt: skip
    assert stab.smoothing(quirk_noise_scale=True)["noise_scale"] == "range_squared"
    f, act_of, _, grad = net()
    x = x_of() * 4.0  # ranges ~25: (0.1 range)^2 ~ 6 differs from 0.1 range ~ 2.5
    cav = np.random.default_rng(5).normal(size=(H, W, C))
    noise = np.asarray(attr.smooth_noise(jax.random.key(7), 50, x.shape), np.float64)
    normal = lambda r: 0.1 * r
    quirk = lambda r: (0.1 * r) ** 2
    want = _smoothed_reference(x, noise, normal, grad, act_of, cav)
    want_quirk = _smoothed_reference(x, noise, quirk, grad, act_of, cav)
    # 50 noisy copies without the clean image, 0.1 * range: a different value.
    clean = _smoothed_reference(x, noise[:, :0], normal, grad, act_of, cav)
    no_clean = (51 * want - clean) / 50
    assert np.min(np.abs(want - no_clean)) > 5e-3
    assert np.max(np.abs(want - want_quirk)) > 0.5
    kw = {"dim": "3d", "smooth": True, "chunk_size": 25}
    got = stab.concept_attribution(f, x, "act", cav, T, key=jax.random.key(7), **kw)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-5)
    got_noise = stab.concept_attribution(f, x, "act", cav, T, noise=noise, **kw)
    np.testing.assert_allclose(got_noise, want, rtol=2e-5, atol=1e-5)
    got_quirk = stab.concept_attribution(f, x, "act", cav, T, key=jax.random.key(7),
                                         quirk_noise_scale=True, **kw)  # fmt: skip
    np.testing.assert_allclose(got_quirk, want_quirk, rtol=2e-5, atol=1e-5)


def test_repeated_runs_use_folded_keys():
    f, *_ = net()
    x, cav = x_of(), np.random.default_rng(6).normal(size=C)
    kw = {"dim": "1d", "n": 4, "chunk_size": 4}
    runs = stab.repeated_attribution(f, x, "act", cav, T, key=jax.random.key(2),
                                     repeats=3, **kw)  # fmt: skip
    assert runs.shape == (3, N)
    for t in range(3):
        one = stab.concept_attribution(f, x, "act", cav, T, smooth=True,
                                       key=jax.random.fold_in(jax.random.key(2), t),
                                       **kw)  # fmt: skip
        np.testing.assert_array_equal(runs[t], one)
    assert not np.allclose(runs[0], runs[1])  # different noise, different values
    with pytest.raises(ValueError, match="repeats must be an integer >= 2"):
        stab.repeated_attribution(f, x, "act", cav, T, key=jax.random.key(2), repeats=1)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="n must be a positive integer"):
        stab.smoothing(0)
    f, *_ = net()
    with pytest.raises(ValueError, match="cav of kind 1d must end with shape"):
        stab.concept_attribution(f, x_of(), "act", np.ones(5), T, dim="1d")
    with pytest.raises(ValueError, match="x has 1 non-finite"):
        x = x_of()
        x[0, 0, 0, 0] = np.nan
        stab.concept_attribution(f, x, "act", np.ones(C), T)
