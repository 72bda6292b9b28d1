"""Component ablation curves against clean/adversarial forwards and NumPy."""

import numpy as np
import pytest

from jaxcxai.adversarial.ablation import (
    ablation_curve,
    add_only_curve,
    gradient_order,
)
from jaxcxai.adversarial.decomposition import Components, fit_components
from tests.adversarial.test_latent import (
    CNN,
    forward,
    numpy_head,
    numpy_tail,
    tiny_cnn,
)


@pytest.fixture(scope="module")
def setup():
    variables, x, x_adv = tiny_cnn(n=8, seed=3)
    z_clean, clean = forward(variables, x)
    z_adv, adv = forward(variables, x_adv)
    return variables, x, x_adv, np.asarray(z_clean), np.asarray(z_adv), clean, adv


def _success(z, t):
    return np.mean(z.argmax(-1) == t), np.mean(z[np.arange(len(t)), t])


def test_removing_all_restores_clean_and_none_keeps_adversarial(setup):
    variables, x, x_adv, z_clean, z_adv, clean, adv = setup
    delta = np.asarray(adv["conv2"] - clean["conv2"])
    comp = fit_components(delta, 6)  # C = 6: the components span every delta
    t = z_adv.argmax(-1)  # the adversarial class of each sample
    t[::2] = (t[::2] + 1) % 5  # and some other targets
    curve = ablation_curve(CNN, variables, x_adv, x, "conv2", delta, comp, t)
    np.testing.assert_array_equal(curve["removed"], np.arange(7))
    succ, logit = _success(z_adv, t)
    assert curve["success"][0] == succ
    np.testing.assert_allclose(curve["target_logit"][0], logit, atol=1e-5)
    succ, logit = _success(z_clean, t)
    assert curve["success"][-1] == succ
    np.testing.assert_allclose(curve["target_logit"][-1], logit, atol=1e-4)
    added = add_only_curve(CNN, variables, x_adv, x, "conv2", None, comp, t)
    np.testing.assert_array_equal(added["added"], np.arange(7))
    np.testing.assert_allclose(
        added["target_logit"][0], _success(z_clean, t)[1], atol=1e-5
    )
    np.testing.assert_allclose(
        added["target_logit"][-1], _success(z_adv, t)[1], atol=1e-4
    )
    assert added["success"][0] == _success(z_clean, t)[0]
    assert added["success"][-1] == _success(z_adv, t)[0]


def test_intermediate_points_match_numpy(setup):
    variables, x, x_adv, z_clean, z_adv, clean, adv = setup
    delta = np.asarray(adv["conv2"] - clean["conv2"], np.float64)
    comp = fit_components(delta, 6)  # same shapes as above: no new compilation
    v = np.asarray(comp.vectors, np.float64)
    t = np.full(8, 3)
    order = [2, 0, 5, 3, 1, 4]
    curve = ablation_curve(CNN, variables, x_adv, x, "conv2", delta, comp, t, order)
    added = add_only_curve(CNN, variables, x_adv, x, "conv2", delta, comp, 3, order)
    np.testing.assert_array_equal(curve["order"], order)
    for m in range(1, 4):
        basis = v[order[:m]]  # orthonormal PCA rows: P delta = sum <delta, u> u
        part = delta @ basis.T @ basis
        z = numpy_tail(variables, np.asarray(adv["conv2"], np.float64) - part)
        np.testing.assert_allclose(curve["target_logit"][m], z[:, 3].mean(), atol=1e-4)
        assert curve["success"][m] == np.mean(z.argmax(-1) == 3)
        z = numpy_tail(variables, np.asarray(clean["conv2"], np.float64) + part)
        np.testing.assert_allclose(added["target_logit"][m], z[:, 3].mean(), atol=1e-4)


def test_gradient_order_closed_form(setup):
    variables, x, x_adv, z_clean, z_adv, clean, adv = setup
    delta = np.asarray(adv["pool"] - clean["pool"])
    comp = fit_components(delta, 5)
    w = np.asarray(variables["params"]["fc"]["kernel"], np.float64)
    t = np.arange(8) % 5
    order, scores = gradient_order(CNN, variables, x_adv, "pool", comp.vectors, t)
    # dZ_t / d pool = W[:, t]: score_j = mean_i |<W[:, t_i], u_j>|
    ref = np.abs(w[:, t].T @ np.asarray(comp.vectors, np.float64).T).mean(0)
    np.testing.assert_allclose(scores, ref, rtol=1e-5)
    np.testing.assert_array_equal(order, np.argsort(-ref, kind="stable"))
    curve = ablation_curve(
        CNN, variables, x_adv, x, "pool", delta, comp, t, order="gradient"
    )
    np.testing.assert_array_equal(curve["order"], order)
    # the pool feeds fc linearly: each removal lowers Z_t by mean <P delta, W_t>
    z = numpy_head(variables, np.asarray(adv["pool"], np.float64))
    np.testing.assert_allclose(
        curve["target_logit"][0], z[np.arange(8), t].mean(), atol=1e-5
    )


def test_num_classes_and_errors(setup):
    variables, x, x_adv, z_clean, z_adv, clean, adv = setup
    delta = np.asarray(adv["pool"] - clean["pool"])
    comp = fit_components(delta, 5)
    curve = ablation_curve(
        CNN, variables, x_adv, x, "pool", delta, comp, 1, num_classes=2
    )
    ref = np.mean(z_adv[:, :2].argmax(-1) == 1)
    assert curve["success"][0] == ref
    with pytest.raises(ValueError, match="order must be a permutation"):
        ablation_curve(
            CNN, variables, x_adv, x, "pool", delta, comp, 1, [0, 0, 1, 2, 3]
        )
    with pytest.raises(ValueError, match="order must be 'variance'"):
        ablation_curve(CNN, variables, x_adv, x, "pool", delta, comp, 1, "random")
    with pytest.raises(ValueError, match="target has 8 values outside the classes"):
        ablation_curve(CNN, variables, x_adv, x, "pool", delta, comp, 7)
    with pytest.raises(ValueError, match="share"):
        ablation_curve(CNN, variables, x_adv[:3], x, "pool", delta, comp, 1)
    bad = Components(np.ones((2, 3), np.float32), np.ones(2), "pca")
    with pytest.raises(ValueError, match="components.vectors must be"):
        ablation_curve(CNN, variables, x_adv, x, "pool", delta, bad, 1)
    nan = delta.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="delta has 1 non-finite"):
        ablation_curve(CNN, variables, x_adv, x, "pool", nan, comp, 1)
