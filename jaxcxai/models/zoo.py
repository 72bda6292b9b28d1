"""Backbone factory: one explicit dict from name to constructor.

Every backbone is a linen module called as
``logits, acts = model.apply(variables, images, train=False, layers=None)``;
see each module's docstring for its layer names and shapes.
"""

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxcxai.models.cnn import SmallCNN
from jaxcxai.models.efficientnet import efficientnet_lite
from jaxcxai.models.mobilenet import mobilenet_v2
from jaxcxai.models.resnet import resnet18, resnet50
from jaxcxai.models.vgg import vgg16, vgg16_bn
from jaxcxai.models.vit import vit_small, vit_tiny

__all__ = ["MODELS", "get_model", "host_init"]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "vgg16": vgg16,
    "vgg16_bn": vgg16_bn,
    "mobilenet_v2": mobilenet_v2,
    "efficientnet_lite0": functools.partial(efficientnet_lite, "efficientnet_lite0"),
    "efficientnet_lite1": functools.partial(efficientnet_lite, "efficientnet_lite1"),
    "efficientnet_lite2": functools.partial(efficientnet_lite, "efficientnet_lite2"),
    "vit_tiny": vit_tiny,
    "vit_small": vit_small,
}


def get_model(name: str, num_classes: int = 1000, **kwargs) -> nn.Module:
    """Builds backbone ``name`` with a ``num_classes`` head.

    Args:
      name: a key of ``MODELS``.
      num_classes: size of the logits.
      **kwargs: extra constructor fields (e.g. ``widths`` for ``small_cnn``,
        ``patch_size``/``depth`` for the ViTs, ``dropout``).

    Raises:
      KeyError: unknown name; the message lists the valid names.
    """
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; valid names: {sorted(MODELS)}")
    return MODELS[name](num_classes=num_classes, **kwargs)


def host_init(
    model: nn.Module, input_shape: tuple[int, ...], seed: int = 0
) -> dict[str, Any]:
    """Random variables drawn with NumPy on the host, without compiling ``init``.

    On XLA:CPU, compiling ``model.init`` spends about a second per parameter on the
    threefry random-number code (~20 s for MobileNetV2), while the forward pass
    compiles in ~2 s. Benchmarks and tests that only need *some* weights use this.
    Kernels are N(0, 1/fan_in), other weights (``cls_token``...) N(0, 0.02^2),
    biases 0, ``scale`` 1, BN ``mean`` 0 and ``var`` 1. Use ``model.init`` for
    training.

    Args:
      model: a backbone.
      input_shape: e.g. (1, 224, 224, 3); fixes shapes (ViT positions).
      seed: NumPy seed.

    Returns:
      ``{collection: nested dict of float32 np.ndarray}`` like ``model.init``.
    """
    images = jax.ShapeDtypeStruct(input_shape, jnp.float32)
    abstract = jax.eval_shape(model.init, jax.random.key(0), images)
    rng = np.random.default_rng(seed)
    out = {}
    for collection, tree in abstract.items():
        flat = {}
        for path, leaf in traverse_util.flatten_dict(dict(tree)).items():
            name, shape = path[-1], leaf.shape
            if name == "kernel":
                value = rng.normal(size=shape) / np.sqrt(np.prod(shape[:-1]))
            elif name in ("scale", "var"):
                value = np.ones(shape)
            elif name in ("bias", "mean"):
                value = np.zeros(shape)
            else:
                value = 0.02 * rng.normal(size=shape)
            flat[path] = value.astype(leaf.dtype)
        out[collection] = traverse_util.unflatten_dict(flat)
    return out
