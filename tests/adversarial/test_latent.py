"""Latent perturbations and activation patching against float64 NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai.adversarial import latent
from jaxcxai.adversarial.ablation import target_gradient
from jaxcxai.models.cnn import SmallCNN
from jaxcxai.models.mobilenet import MobileNetV2
from jaxcxai.models.resnet import resnet18
from jaxcxai.models.zoo import host_init

CNN = SmallCNN(num_classes=5, widths=(4, 6, 8))
LAYERS = ("conv1", "conv2", "conv3", "pool")


def tiny_cnn(n=6, seed=0):
    """A random SmallCNN with non-trivial BN statistics, clean and adversarial
    inputs (x + a small perturbation)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 16, 16, 3)).astype(np.float32)
    x_adv = np.clip(x + rng.uniform(-0.2, 0.2, x.shape), -1, 1).astype(np.float32)
    variables = host_init(CNN, (1, 16, 16, 3), seed=seed)
    params, stats = variables["params"], variables["batch_stats"]
    for name in ("conv1", "conv2", "conv3"):
        c = stats[f"{name}.bn"]["mean"].shape
        stats[f"{name}.bn"] = {
            "mean": rng.normal(0, 0.1, c).astype(np.float32),
            "var": rng.uniform(0.5, 1.5, c).astype(np.float32),
        }
        params[f"{name}.bn"] = {
            "scale": rng.uniform(0.8, 1.2, c).astype(np.float32),
            "bias": rng.uniform(0.0, 0.2, c).astype(np.float32),
        }
    params["fc"]["bias"] = rng.normal(0, 0.1, 5).astype(np.float32)
    variables = {"params": params, "batch_stats": stats}
    return variables, jnp.asarray(x), jnp.asarray(x_adv)


@jax.jit
def forward(variables, x):
    return CNN.apply(variables, x, train=False)


def numpy_tail(variables, act2):
    """Float64 NumPy forward of SmallCNN from its conv2 activation (N, h, w,
    C): conv3 (3x3, pad 1), BN (eval, eps 1e-5), ReLU, 2x2 max-pool, spatial
    mean, fc."""
    p = jax.tree.map(lambda v: np.asarray(v, np.float64), variables["params"])
    s = jax.tree.map(lambda v: np.asarray(v, np.float64), variables["batch_stats"])
    a = np.asarray(act2, np.float64)
    n, h, w, _ = a.shape
    pad = np.pad(a, ((0, 0), (1, 1), (1, 1), (0, 0)))
    kern = p["conv3.conv"]["kernel"]
    y = sum(
        np.einsum("nhwc,co->nhwo", pad[:, i : i + h, j : j + w], kern[i, j])
        for i in range(3)
        for j in range(3)
    )
    bn, st = p["conv3.bn"], s["conv3.bn"]
    y = (y - st["mean"]) / np.sqrt(st["var"] + 1e-5) * bn["scale"] + bn["bias"]
    y = np.maximum(y, 0.0)
    y = y.reshape(n, h // 2, 2, w // 2, 2, -1).max((2, 4))
    return numpy_head(variables, y.mean((1, 2)))


def numpy_head(variables, pool):
    fc = variables["params"]["fc"]
    return np.asarray(pool, np.float64) @ np.asarray(fc["kernel"], np.float64) + (
        np.asarray(fc["bias"], np.float64)
    )


@pytest.fixture(scope="module")
def cnn():
    return tiny_cnn()


def test_latent_perturbation_and_gap(cnn):
    variables, x, x_adv = cnn
    deltas = latent.latent_perturbation(
        lambda xb: forward(variables, xb), x, x_adv, LAYERS, batch_size=3
    )
    _, clean = forward(variables, x)
    _, adv = forward(variables, x_adv)
    for name in LAYERS:
        ref = np.asarray(adv[name], np.float64) - np.asarray(clean[name], np.float64)
        np.testing.assert_allclose(deltas[name], ref, atol=1e-5)
    np.testing.assert_allclose(
        latent.gap(deltas["conv2"]), ref_gap := deltas["conv2"].mean((1, 2)), atol=1e-6
    )
    assert latent.gap(deltas["pool"]).shape == deltas["pool"].shape
    # the pool is the spatial mean of conv3, so their perturbations agree
    np.testing.assert_allclose(latent.gap(deltas["conv3"]), deltas["pool"], atol=1e-5)
    assert ref_gap.shape == (6, 6)


@pytest.mark.parametrize("layer", LAYERS)
def test_patching_swaps_clean_and_adversarial(cnn, layer):
    variables, x, x_adv = cnn
    z_clean, clean = forward(variables, x)
    z_adv, adv = forward(variables, x_adv)
    delta = adv[layer] - clean[layer]
    restored = latent.patched_logits(CNN, variables, x_adv, layer, -delta)
    np.testing.assert_allclose(restored, z_clean, atol=2e-5)
    attacked = latent.patched_logits(CNN, variables, x, layer, delta)
    np.testing.assert_allclose(attacked, z_adv, atol=2e-5)
    unchanged = latent.patched_logits(CNN, variables, x_adv, layer, 0 * delta)
    np.testing.assert_allclose(unchanged, z_adv, atol=1e-6)
    assert np.abs(np.asarray(z_adv - z_clean)).max() > 1e-3  # the swap is visible


def test_patching_matches_numpy_forward(cnn):
    variables, x, _ = cnn
    _, acts = forward(variables, x)
    rng = np.random.default_rng(1)
    # random delta at conv2 (input of conv3.conv), per position and broadcast
    d2 = rng.normal(0, 0.5, acts["conv2"].shape).astype(np.float32)
    ref = numpy_tail(variables, np.asarray(acts["conv2"]) + d2)
    got = latent.patched_logits(CNN, variables, x, "conv2", d2)
    np.testing.assert_allclose(got, ref, atol=1e-4)
    v2 = d2[:, 0, 0]
    ref = numpy_tail(variables, np.asarray(acts["conv2"]) + v2[:, None, None])
    got = latent.patched_logits(CNN, variables, x, "conv2", v2)
    np.testing.assert_allclose(got, ref, atol=1e-4)
    # conv3 reaches fc through the mean; pool directly
    d3 = rng.normal(0, 0.5, acts["conv3"].shape).astype(np.float32)
    ref = numpy_head(variables, (np.asarray(acts["conv3"]) + d3).mean((1, 2)))
    got = latent.patched_logits(CNN, variables, x, "conv3", d3)
    np.testing.assert_allclose(got, ref, atol=1e-4)
    dp = rng.normal(0, 0.5, acts["pool"].shape).astype(np.float32)
    ref = numpy_head(variables, np.asarray(acts["pool"]) + dp)
    got = latent.patched_logits(CNN, variables, x, "pool", dp)
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_target_gradient_closed_form(cnn):
    variables, x, _ = cnn
    w = np.asarray(variables["params"]["fc"]["kernel"])
    t = np.array([0, 1, 2, 3, 4, 0])
    g = target_gradient(CNN, variables, x, "pool", t, batch_size=4)
    np.testing.assert_allclose(g, w[:, t].T, atol=1e-6)
    g3 = target_gradient(CNN, variables, x, "conv3", 2)
    np.testing.assert_allclose(g3, np.broadcast_to(w[:, 2] / 4, g3.shape), atol=1e-6)


def test_mobilenet_layers():
    model = MobileNetV2(num_classes=7, width_mult=0.35)
    variables = host_init(model, (1, 32, 32, 3), seed=0)
    head = variables["params"]["classifier.1"]
    head["kernel"] = head["kernel"] * 1e3  # logits of order 1
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 32, 32, 3)), jnp.float32)
    x_adv = x + 0.3 * jnp.asarray(rng.normal(size=x.shape), jnp.float32)
    # a late block output, patched at its module (the SmallCNN tests cover
    # the input and mean patch points); one program, as compiling MobileNet
    # dominates the cost
    layers = ("features.17",)

    @jax.jit
    def swap(x, x_adv):
        # clean and adversarial in one batch: one traced forward fewer
        z, acts = model.apply(
            variables, jnp.concatenate([x, x_adv]), train=False, layers=layers
        )
        delta = acts[layers[0]][:2] - acts[layers[0]][2:]
        return (
            z[:2],
            z[2:],
            latent.patched_logits(model, variables, x_adv, layers[0], delta),
        )

    z_clean, z_adv, restored = swap(x, x_adv)
    assert np.abs(np.asarray(z_adv - z_clean)).max() > 1e-2
    np.testing.assert_allclose(restored, z_clean, atol=1e-4)


def test_map_batches_pads_the_last_batch():
    calls = []

    def fn(a, b):
        calls.append(a.shape)
        return {"sum": a + b}

    a = jnp.arange(14.0).reshape(7, 2)
    out = latent.map_batches(fn, (a, a), 3)
    assert calls == [(3, 2)] * 3  # equal shapes: one compilation when jitted
    np.testing.assert_array_equal(out["sum"], 2 * np.arange(14.0).reshape(7, 2))
    out = latent.map_batches(lambda a: a.T, (a,), 4, out_axis=1)
    np.testing.assert_array_equal(out, np.arange(14.0).reshape(7, 2).T)
    with pytest.raises(ValueError, match="batch_size"):
        latent.map_batches(fn, (a, a), 0)


def test_errors(cnn):
    variables, x, x_adv = cnn
    with pytest.raises(ValueError, match="not supported for ResNet"):
        latent.patched_logits(resnet18(3), {}, x, "pool", x[:, 0, 0])
    with pytest.raises(ValueError, match="'conv9'"):
        latent.patched_logits(CNN, variables, x, "conv9", x)
    with pytest.raises(ValueError, match="does not fit"):
        latent.patched_logits(CNN, variables, x, "conv2", jnp.zeros((6, 4, 4, 5)))
    with pytest.raises(ValueError, match="shape of layer 'conv3'"):
        latent.patched_logits(CNN, variables, x, "conv3", jnp.zeros((6, 3, 3, 8)))
    apply_fn = lambda xb: forward(variables, xb)
    with pytest.raises(ValueError, match="share"):
        latent.latent_perturbation(apply_fn, x, x_adv[:3], ["conv1"])
    with pytest.raises(ValueError, match="x_adv has 1 non-finite"):
        latent.latent_perturbation(
            apply_fn, x, x_adv.at[0, 0, 0, 0].set(np.nan), ["pool"]
        )
    with pytest.raises(KeyError, match="conv7"):
        latent.latent_perturbation(apply_fn, x, x_adv, ["conv7"])
    with pytest.raises(ValueError, match="target has 6 values outside the classes"):
        target_gradient(CNN, variables, x, "pool", 5)
