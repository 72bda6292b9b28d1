"""Backbone contracts: documented layer names and shapes, layer selection,
PyTorch-equivalent BatchNorm, a real small-CNN train step, preprocessing."""

import math
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcxai.models import common, preprocess, vgg, zoo


def _b(*shape):
    return (2, *shape)


def _range(prefix, indices, shape):
    return {f"{prefix}{i}": _b(*shape) for i in indices}


# Hand-written from the module docstrings (batch 2).
EXPECTED = {
    ("small_cnn", 64): {
        "conv1": _b(32, 32, 32), "conv2": _b(16, 16, 64), "conv3": _b(8, 8, 128), "pool": _b(128),
    },
    ("resnet18", 64): {
        "maxpool": _b(16, 16, 64), "layer1": _b(16, 16, 64), "layer2": _b(8, 8, 128),
        "layer3": _b(4, 4, 256), "layer4": _b(2, 2, 512), "avgpool": _b(512),
    },
    ("resnet50", 64): {
        "maxpool": _b(16, 16, 64), "layer1": _b(16, 16, 256), "layer2": _b(8, 8, 512),
        "layer3": _b(4, 4, 1024), "layer4": _b(2, 2, 2048), "avgpool": _b(2048),
    },
    ("vgg16", 32): {
        **_range("features.", (1, 3), (32, 32, 64)), "features.4": _b(16, 16, 64),
        **_range("features.", (6, 8), (16, 16, 128)), "features.9": _b(8, 8, 128),
        **_range("features.", (11, 13, 15), (8, 8, 256)), "features.16": _b(4, 4, 256),
        **_range("features.", (18, 20, 22), (4, 4, 512)), "features.23": _b(2, 2, 512),
        **_range("features.", (25, 27, 29), (2, 2, 512)), "features.30": _b(1, 1, 512),
        "avgpool": _b(7, 7, 512), "classifier.1": _b(4096), "classifier.4": _b(4096),
    },
    ("vgg16_bn", 32): {
        **_range("features.", (2, 5), (32, 32, 64)), "features.6": _b(16, 16, 64),
        **_range("features.", (9, 12), (16, 16, 128)), "features.13": _b(8, 8, 128),
        **_range("features.", (16, 19, 22), (8, 8, 256)), "features.23": _b(4, 4, 256),
        **_range("features.", (26, 29, 32), (4, 4, 512)), "features.33": _b(2, 2, 512),
        **_range("features.", (36, 39, 42), (2, 2, 512)), "features.43": _b(1, 1, 512),
        "avgpool": _b(7, 7, 512), "classifier.1": _b(4096), "classifier.4": _b(4096),
    },
    ("mobilenet_v2", 64): {
        "features.0": _b(32, 32, 32), "features.1": _b(32, 32, 16),
        **_range("features.", (2, 3), (16, 16, 24)),
        **_range("features.", (4, 5, 6), (8, 8, 32)),
        **_range("features.", (7, 8, 9, 10), (4, 4, 64)),
        **_range("features.", (11, 12, 13), (4, 4, 96)),
        **_range("features.", (14, 15, 16), (2, 2, 160)),
        "features.17": _b(2, 2, 320), "features.18": _b(2, 2, 1280), "pool": _b(1280),
    },
    ("efficientnet_lite0", 64): {
        "_conv_stem": _b(32, 32, 32), "_blocks.0": _b(32, 32, 16),
        **_range("_blocks.", (1, 2), (16, 16, 24)),
        **_range("_blocks.", (3, 4), (8, 8, 40)),
        **_range("_blocks.", (5, 6, 7), (4, 4, 80)),
        **_range("_blocks.", (8, 9, 10), (4, 4, 112)),
        **_range("_blocks.", (11, 12, 13, 14), (2, 2, 192)),
        "_blocks.15": _b(2, 2, 320), "_conv_head": _b(2, 2, 1280), "pool": _b(1280),
    },
    # Lite2 (width 1.1, depth 1.2): B2 widths 16/24/48/88/120/208/352, repeats
    # 1, 3, 3, 4, 4, 5, 1 (first and last stage fixed for Lite).
    ("efficientnet_lite2", 64): {
        "_conv_stem": _b(32, 32, 32), "_blocks.0": _b(32, 32, 16),
        **_range("_blocks.", (1, 2, 3), (16, 16, 24)),
        **_range("_blocks.", (4, 5, 6), (8, 8, 48)),
        **_range("_blocks.", (7, 8, 9, 10), (4, 4, 88)),
        **_range("_blocks.", (11, 12, 13, 14), (4, 4, 120)),
        **_range("_blocks.", (15, 16, 17, 18, 19), (2, 2, 208)),
        "_blocks.20": _b(2, 2, 352), "_conv_head": _b(2, 2, 1280), "pool": _b(1280),
    },
    ("vit_tiny", 32): {
        "patch_embed": _b(4, 4, 192), "blocks.0": _b(4, 4, 192), "blocks.0.cls": _b(192),
        "blocks.1": _b(4, 4, 192), "blocks.1.cls": _b(192), "pre_logits": _b(192),
    },
}  # fmt: skip
_KWARGS = {"vit_tiny": {"patch_size": 8, "depth": 2}}
_NO_BN = {"vgg16", "vit_tiny"}


@pytest.mark.parametrize("name,size", list(EXPECTED))
def test_activation_names_and_shapes(name, size):
    model = zoo.get_model(name, 10, **_KWARGS.get(name, {}))
    images = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), images)
    want_collections = {"params"} if name in _NO_BN else {"params", "batch_stats"}
    assert set(variables) == want_collections
    logits, acts = jax.eval_shape(model.apply, variables, images)
    assert logits.shape == (2, 10)
    assert {k: v.shape for k, v in acts.items()} == EXPECTED[(name, size)]


def test_zoo_lists_valid_names():
    with pytest.raises(KeyError, match="resnet18"):
        zoo.get_model("resnet19")
    assert set(zoo.MODELS) >= {n for n, _ in EXPECTED}


def _cnn_and_vars(num_classes=10, size=16):
    model = zoo.get_model("small_cnn", num_classes)
    x = np.random.default_rng(1).uniform(size=(4, size, size, 3)).astype(np.float32)
    return model, zoo.host_init(model, x.shape), x


def test_layer_selection_and_determinism():
    model, variables, x = _cnn_and_vars()
    abstract = jax.eval_shape(model.init, jax.random.key(0), x)
    assert jax.tree.map(lambda a: (a.shape, a.dtype), abstract) == jax.tree.map(
        lambda a: (a.shape, a.dtype), variables
    )
    apply = jax.jit(model.apply, static_argnames="layers")
    logits, acts = apply(variables, x, layers=("conv2",))
    assert list(acts) == ["conv2"] and acts["conv2"].shape == (4, 4, 4, 64)
    logits_all, acts_all = apply(variables, x)
    np.testing.assert_array_equal(logits, logits_all)
    np.testing.assert_array_equal(acts["conv2"], acts_all["conv2"])
    assert list(acts_all) == ["conv1", "conv2", "conv3", "pool"]
    with pytest.raises(KeyError, match="valid names.*conv1"):
        apply(variables, x, layers=("conv9",))


def test_batch_norm_matches_pytorch_update():
    class BN(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            return common.batch_norm(train, "bn")(x)

    x = np.random.default_rng(0).normal(3.0, 2.0, size=(6, 5)).astype(np.float32)
    variables = BN().init(jax.random.key(0), x, train=False)
    _, updates = BN().apply(variables, x, train=True, mutable=["batch_stats"])
    stats = jax.tree.map(np.asarray, updates["batch_stats"]["bn"])
    # PyTorch momentum 0.1 from mean 0, var 1 (Flax keeps the biased variance).
    np.testing.assert_allclose(stats["mean"], 0.1 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * x.var(0), rtol=1e-5)
    y = BN().apply({**variables, "batch_stats": updates["batch_stats"]}, x, train=False)
    want = (x - stats["mean"]) / np.sqrt(stats["var"] + 1e-5)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_small_cnn_train_step_learns_and_is_fast():
    model, variables, _ = _cnn_and_vars(num_classes=4)
    images = np.random.default_rng(2).uniform(size=(8, 64, 64, 3)).astype(np.float32)
    labels = jnp.arange(8) % 4
    tx = optax.adam(1e-2)
    opt_state = tx.init(variables["params"])

    @jax.jit
    def step(params, batch_stats, opt_state):
        def loss_fn(p):
            (logits, _), updates = model.apply(
                {"params": p, "batch_stats": batch_stats},
                images,
                train=True,
                layers=(),
                mutable=["batch_stats"],
            )
            loss = optax.softmax_cross_entropy_with_integer_labels(
                logits, labels
            ).mean()
            return loss, updates["batch_stats"]

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_stats, opt_state, loss

    params, stats = variables["params"], variables["batch_stats"]
    losses, times = [], []
    for _ in range(5):
        start = time.perf_counter()
        params, stats, opt_state, loss = step(params, stats, opt_state)
        losses.append(float(loss))
        times.append(time.perf_counter() - start)
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0], losses
    assert not np.allclose(stats["conv1.bn"]["mean"], 0.0)
    # Generous bound for a noisy shared 2-core CI machine (typically ~20 ms).
    assert min(times[1:]) < 1.0, times


def test_adaptive_avg_pool_matches_brute_force():
    rng = np.random.default_rng(0)
    for size in (10, 1, 7, 16):
        x = rng.normal(size=(2, size, size + 3, 4)).astype(np.float32)
        h, w = x.shape[1:3]
        want = np.zeros((2, 7, 7, 4))
        for i in range(7):
            for j in range(7):
                r0, r1 = math.floor(i * h / 7), math.ceil((i + 1) * h / 7)
                c0, c1 = math.floor(j * w / 7), math.ceil((j + 1) * w / 7)
                want[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
        np.testing.assert_allclose(
            vgg.adaptive_avg_pool(jnp.asarray(x), 7), want, rtol=1e-5, atol=1e-6
        )


def test_vit_patch_grid_layout_and_resolution_check():
    model = zoo.get_model("vit_tiny", 3, patch_size=8, depth=1)
    x = np.random.default_rng(0).uniform(size=(1, 32, 32, 3)).astype(np.float32)
    variables = zoo.host_init(model, x.shape, seed=1)
    apply = jax.jit(model.apply, static_argnames="layers")
    _, acts = apply(variables, x, layers=("patch_embed",))
    # Changing the patch at grid row 1, column 2 (pixels 8:16, 16:24) changes
    # exactly that grid cell.
    x2 = x.copy()
    x2[:, 8:16, 16:24] += 1.0
    _, acts2 = apply(variables, x2, layers=("patch_embed",))
    changed = np.abs(acts2["patch_embed"] - acts["patch_embed"]).max(axis=-1)[0]
    assert changed[1, 2] > 0 and np.count_nonzero(changed) == 1
    with pytest.raises(ValueError, match="position table"):
        jax.eval_shape(model.apply, variables, jnp.zeros((1, 48, 48, 3)))


def test_preprocess_normalisation():
    img = np.array([[[0, 128, 255]]], np.uint8)[None]  # (1, 1, 1, 3)
    got = preprocess.preprocess("mobilenet_v2", img)
    want = (np.array([0, 128, 255]) / 255.0 - [0.485, 0.456, 0.406]) / [
        0.229,
        0.224,
        0.225,
    ]
    np.testing.assert_allclose(got[0, 0, 0], want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        preprocess.preprocess("mobilenet_v2", img / 255.0), got, rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        preprocess.preprocess("efficientnet_lite0", img)[0, 0, 0],
        [-1, 128 / 127.5 - 1, 1],
        rtol=1e-6,
        atol=1e-6,
    )
    with pytest.raises(KeyError, match="mobilenet_v2"):
        preprocess.preprocess("alexnet", img)
    # The LoCE reference's quirk: [0, 1] inputs, no mean/std.
    raw = preprocess.preprocess("mobilenet_v2", img, normalize=False)
    np.testing.assert_allclose(raw[0, 0, 0], [0, 128 / 255, 1], rtol=1e-7)
    from jaxcxai.training.backbone import preprocess_fn

    np.testing.assert_array_equal(preprocess_fn("small_cnn", normalize=False)(img), raw)
    np.testing.assert_allclose(
        preprocess_fn("small_cnn")(img)[0, 0, 0], want, rtol=1e-6, atol=1e-6
    )


def test_resize_center_crop_geometry():
    img = np.random.default_rng(0).integers(0, 256, (256, 512, 3), dtype=np.uint8)
    # The shorter side is already 256, so this is a pure center crop.
    np.testing.assert_array_equal(
        preprocess.resize_center_crop(img), img[16:240, 144:368]
    )
    assert preprocess.resize_center_crop(img[:, :300]).shape == (224, 224, 3)
    assert preprocess.resize(img, 64).shape == (64, 64, 3)


@pytest.mark.parametrize("size,k,stride,mode", [(9, 3, 1, "torch"), (10, 3, 2, "torch"), (11, 5, 2, "same")])  # fmt: skip
def test_depthwise_conv_impls_match_brute_force(size, k, stride, mode):
    rng = np.random.default_rng(size)
    x = rng.normal(size=(2, size, size, 4)).astype(np.float32)
    kernel = rng.normal(size=(k, k, 1, 4)).astype(np.float32)
    if mode == "torch":
        lo = hi = (k - 1) // 2
    else:  # TF "same": smaller half before.
        total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
        lo, hi = total // 2, total - total // 2
    xp = np.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0))).astype(np.float64)
    out = (xp.shape[1] - k) // stride + 1
    want = np.zeros((2, out, out, 4))
    for y in range(out):
        for z in range(out):
            window = xp[:, y * stride : y * stride + k, z * stride : z * stride + k]
            want[:, y, z] = np.einsum("bijc,ijc->bc", window, kernel[:, :, 0])
    module = common.DepthwiseConv(k, stride, mode)
    variables = {"params": {"kernel": jnp.asarray(kernel)}}
    np.testing.assert_allclose(
        jax.jit(module.apply)(variables, x), want, rtol=1e-5, atol=1e-5
    )
    pads = ((lo, hi), (lo, hi))

    def loss(x, k, impl):
        return (common.depthwise_conv(x, k, stride, pads, impl) ** 2).sum()

    grad = jax.jit(jax.grad(loss, (0, 1)), static_argnames="impl")
    grads = [grad(x, kernel, impl) for impl in ("xla", "slices")]
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
