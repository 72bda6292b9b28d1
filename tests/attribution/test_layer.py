"""Layer gradients, concept attribution, Grad-CAM and Grad-CAM++ computed
by hand in float64 NumPy on a two-layer net; the layer tap on a flax CNN."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcxai import attribution as attr
from jaxcxai.models.cnn import SmallCNN
from jaxcxai.models.zoo import host_init
from jaxcxai.parallel import make_mesh
from tests.attribution.nets import two_layer

T = np.array([0, 3, 1])


def _x(n=3, seed=2):
    return np.random.default_rng(seed).normal(size=(n, 4, 5, 2)).astype(np.float32)


def _hand(x, t, plus):
    """Grad-CAM / Grad-CAM++ from the paper's formulas, float64."""
    _, _, reference, _ = two_layer()
    maps = []
    for i in range(len(x)):
        act, g = reference(x[i].astype(np.float64), t[i])
        if plus:
            denom = 2 * g**2 + act.sum((0, 1))[None, None] * g**3
            alpha = np.divide(g**2, denom, out=np.zeros_like(g), where=denom != 0)
            weights = (alpha * np.maximum(g, 0)).sum((0, 1))
        else:
            weights = g.mean((0, 1))
        maps.append(np.maximum((act * weights).sum(-1), 0))
    return np.stack(maps)


@pytest.mark.parametrize("use_head", [False, True])
def test_grad_cam_by_hand(use_head):
    f, head, _, _ = two_layer()
    x = _x()
    kw = {"head": head} if use_head else {}
    np.testing.assert_allclose(attr.grad_cam(f, x, "conv", T, **kw), _hand(x, T, False),
                               rtol=1e-4, atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(attr.grad_cam_plus_plus(f, x, "conv", T, **kw),
                               _hand(x, T, True), rtol=1e-4, atol=1e-6)  # fmt: skip


def test_grad_cam_resize_and_no_relu():
    f, _, _, _ = two_layer()
    x = _x()
    raw = attr.grad_cam(f, x, "conv", T, relu=False)
    assert (np.asarray(raw) < 0).any()
    np.testing.assert_allclose(np.maximum(raw, 0), _hand(x, T, False), rtol=1e-4,
                               atol=1e-6)  # fmt: skip
    big = attr.grad_cam(f, x, "conv", T, size=(8, 10))
    want = jax.image.resize(jnp.asarray(_hand(x, T, False)), (3, 8, 10), "bilinear")
    np.testing.assert_allclose(big, want, rtol=1e-4, atol=1e-6)


def test_layer_gradients_and_concept_attribution():
    f, _, reference, _ = two_layer()
    x = _x()
    g = np.stack([reference(x[i].astype(np.float64), T[i])[1] for i in range(3)])
    np.testing.assert_allclose(attr.layer_gradients(f, x, "conv", T), g, rtol=1e-4,
                               atol=1e-6)  # fmt: skip
    rng = np.random.default_rng(4)
    v1, v2, v3 = rng.normal(size=3), rng.normal(size=(4, 5)), rng.normal(size=(4, 5, 3))
    got1 = attr.concept_attribution(f, x, "conv", v1, T, kind="1d")
    np.testing.assert_allclose(got1, g.mean((1, 2)) @ v1, rtol=1e-4, atol=1e-6)
    got1s = attr.concept_attribution(f, x, "conv", v1, T, kind="1d", spatial="sum")
    np.testing.assert_allclose(got1s, g.sum((1, 2)) @ v1, rtol=1e-4, atol=1e-6)
    got2 = attr.concept_attribution(f, x, "conv", v2, T, kind="2d")
    np.testing.assert_allclose(
        got2, (g.mean(-1) * v2).sum((1, 2)), rtol=1e-4, atol=1e-6
    )
    got3 = attr.concept_attribution(f, x, "conv", v3, T, kind="3d")
    np.testing.assert_allclose(got3, (g * v3).sum((1, 2, 3)), rtol=1e-4, atol=1e-6)
    flat = attr.concept_attribution(f, x, "conv", v3.reshape(-1), T, kind="3d")
    np.testing.assert_allclose(flat, got3, rtol=1e-5, atol=1e-6)
    many = rng.normal(size=(2, 3))  # K = 2 CAVs -> (N, 2)
    got = attr.concept_attribution(f, x, "conv", many, T)
    np.testing.assert_allclose(got, g.mean((1, 2)) @ many.T, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="cav of kind 2d"):
        attr.concept_attribution(f, x, "conv", v1, T, kind="2d")
    with pytest.raises(ValueError, match="^cav has 1 non-finite"):
        attr.concept_attribution(f, x, "conv", np.array([0.0, np.nan, 1.0]), T)


def test_smoothed_layer_gradients_equal_numpy_loop():
    f, _, reference, _ = two_layer()
    x = _x()
    noise = (
        np.random.default_rng(9).normal(size=(3, 4) + x.shape[1:]).astype(np.float32)
    )
    got = attr.layer_gradients(f, x, "conv", T, noise=noise, **{
        k: v for k, v in attr.REFERENCE_SMOOTHING.items() if k != "n"})  # fmt: skip
    want = []
    for i in range(3):
        xi = x[i].astype(np.float64)
        std = (0.1 * (xi.max() - xi.min())) ** 2  # the group code's quirk
        copies = [xi + std * noise[i, j] for j in range(4)] + [xi]  # + clean
        want.append(np.mean([reference(c, T[i])[1] for c in copies], axis=0))
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-4, atol=1e-6)


def test_tap_through_jit_and_flax_model():
    """The tap reaches inside a jitted f, and on a flax SmallCNN its conv3
    gradient equals the explicit head (spatial mean, then fc)."""
    f, _, reference, _ = two_layer()
    x = _x()
    g = np.stack([reference(x[i].astype(np.float64), T[i])[1] for i in range(3)])
    np.testing.assert_allclose(attr.layer_gradients(jax.jit(f), x, "conv", T), g,
                               rtol=1e-4, atol=1e-6)  # fmt: skip
    model = SmallCNN(num_classes=3, widths=(4, 8, 8))
    variables = host_init(model, (1, 16, 16, 3))
    apply = lambda v: model.apply(variables, v)
    fc = variables["params"]["fc"]
    head = lambda a: jnp.mean(a, (1, 2)) @ fc["kernel"] + fc["bias"][None]
    xi = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32)
    tapped = attr.layer_gradients(apply, xi, "conv3", [0, 2])
    want = np.broadcast_to(
        fc["kernel"][:, [0, 2]].T[:, None, None, :] / 4, (2, 2, 2, 8)
    )
    np.testing.assert_allclose(tapped, want, rtol=1e-6)
    np.testing.assert_allclose(attr.layer_gradients(apply, xi, "conv3", [0, 2], head=head),
                               want, rtol=1e-6)  # fmt: skip
    with pytest.raises(ValueError, match="layer 'conv9' is not returned"):
        attr.layer_gradients(apply, xi, "conv9")


def test_vmapped_equals_looped():
    f, _, _, _ = two_layer()
    x = _x()
    batch = attr.grad_cam_plus_plus(f, x, "conv", T)
    for i in range(3):
        one = attr.grad_cam_plus_plus(f, x[i : i + 1], "conv", T[i : i + 1])
        np.testing.assert_allclose(batch[i], one[0], rtol=1e-6, atol=1e-7)


@pytest.mark.multidevice
def test_sharded_equals_unsharded():
    f, _, _, _ = two_layer()
    mesh = make_mesh()
    x = _x(n=5)
    t = np.array([0, 1, 2, 3, 0])
    np.testing.assert_allclose(attr.grad_cam(f, x, "conv", t, mesh=mesh),
                               attr.grad_cam(f, x, "conv", t), rtol=2e-6, atol=1e-7)  # fmt: skip
    key = jax.random.key(1)
    a = attr.layer_gradients(f, x, "conv", t, key=key, n=3, mesh=mesh)
    b = attr.layer_gradients(f, x, "conv", t, key=key, n=3)
    np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)
