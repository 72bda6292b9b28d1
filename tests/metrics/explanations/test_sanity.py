"""Signal mass, noise-in-top and parameter randomisation against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.metrics import explanations as ex


def test_signal_mass_and_noise_in_top():
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(10, 8)) * np.array([3, 3, 3, 0.1, 0.1, 2.5, 0.1, 0.1])
    signal = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    imp = np.abs(phi).mean(0)
    np.testing.assert_allclose(ex.signal_mass(phi, signal), imp[:4].sum() / imp.sum(),
                               rtol=1e-6)  # fmt: skip
    top = np.argsort(-imp, kind="stable")[:4]
    assert int(ex.noise_in_top(phi, signal)) == int((~signal[top]).sum()) == 1
    assert int(ex.noise_in_top(phi, signal, top=6)) == int(
        (~signal[np.argsort(-imp, kind="stable")[:6]]).sum())  # fmt: skip
    with pytest.raises(ValueError, match="signal"):
        ex.signal_mass(phi, signal[:7])


def _model():
    rng = np.random.default_rng(1)
    params = {"params": {"dense1": {"kernel": rng.normal(size=(5, 4)), "bias": np.zeros(4)},
                         "dense2": {"kernel": rng.normal(size=(4, 3)), "bias": np.ones(3)}}}  # fmt: skip

    def explain(p, x):  # gradient of logit 0 of a tanh MLP
        def logit(v):
            q = p["params"]
            hid = jnp.tanh(v @ q["dense1"]["kernel"] + q["dense1"]["bias"])
            return (hid @ q["dense2"]["kernel"] + q["dense2"]["bias"])[0]

        return jax.vmap(jax.grad(logit))(x)

    return params, explain


def test_randomize_layers():
    params, _ = _model()
    key = jax.random.key(0)
    out = ex.randomize_layers(params, ["dense2"], key)
    p, q = params["params"], out["params"]
    np.testing.assert_array_equal(q["dense1"]["kernel"], p["dense1"]["kernel"])
    assert np.abs(q["dense2"]["kernel"] - p["dense2"]["kernel"]).min() > 0
    np.testing.assert_array_equal(q["dense2"]["bias"], p["dense2"]["bias"])  # constant
    with pytest.raises(ValueError, match="'dense3' matches no parameter"):
        ex.randomize_layers(params, ["dense3"], key)


@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_parameter_randomization_equals_manual(mode):
    from scipy import stats

    params, explain = _model()
    x = np.random.default_rng(2).normal(size=(4, 5)).astype(np.float32)
    key = jax.random.key(5)
    res = ex.parameter_randomization(explain, params, ["dense2", "dense1"], x, key,
                                     mode=mode)  # fmt: skip
    assert res["layers"] == ["dense2", "dense1"] and res["scores"].shape == (2, 4)
    original = np.asarray(explain(params, x))
    for i, chosen in enumerate(
        [["dense2"], ["dense2", "dense1"]]
        if mode == "cascading"
        else [["dense2"], ["dense1"]]
    ):
        rand = ex.randomize_layers(params, chosen, key)
        new = np.asarray(explain(rand, x))
        want = [stats.spearmanr(np.abs(a), np.abs(b)).statistic
                for a, b in zip(original, new)]  # fmt: skip
        np.testing.assert_allclose(res["scores"][i], want, atol=1e-6)
