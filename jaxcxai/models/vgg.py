"""VGG-16 and VGG-16-BN (torchvision layout).

Parameter names match torchvision: convs at ``features.{i}`` (and their BatchNorm at
``features.{i+1}`` in the BN variant) and ``classifier.0/3/6`` linears, so
torchvision state dicts load through :func:`jaxcxai.models.convert.torch_to_linen`.

Named activations follow torchvision's module indices: the output of every ReLU
and every max-pool in ``features``, then ``avgpool`` and the two hidden classifier
ReLUs. For VGG-16 (no BN) and an input (B, H, W, 3), H, W divisible by 32:

===========================================  =======================
name                                         shape
===========================================  =======================
``features.1``, ``features.3``               (B, H, W, 64)
``features.4`` (pool)                        (B, H/2, W/2, 64)
``features.6``, ``features.8``               (B, H/2, W/2, 128)
``features.9`` (pool)                        (B, H/4, W/4, 128)
``features.11``, ``.13``, ``.15``            (B, H/4, W/4, 256)
``features.16`` (pool)                       (B, H/8, W/8, 256)
``features.18``, ``.20``, ``.22``            (B, H/8, W/8, 512)
``features.23`` (pool)                       (B, H/16, W/16, 512)
``features.25``, ``.27``, ``.29``            (B, H/16, W/16, 512)
``features.30`` (pool)                       (B, H/32, W/32, 512)
``avgpool``                                  (B, 7, 7, 512)
``classifier.1``, ``classifier.4``           (B, 4096)
===========================================  =======================

In VGG-16-BN each conv is followed by BN and ReLU, so the indices differ: ReLUs
are at ``features.2, 5, 9, 12, ...`` and the pools at ``features.6, 13, 23, 33, 43``.
``avgpool`` is PyTorch's ``AdaptiveAvgPool2d(7)`` (identity at 224x224).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.models.common import batch_norm, select_layers

__all__ = ["VGG", "vgg16", "vgg16_bn"]

_VGG16 = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)


def _adaptive_pool_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) averaging weights of PyTorch's adaptive average pooling.

    Output i averages inputs floor(i*n/m) .. ceil((i+1)*n/m) - 1.
    """
    mat = np.zeros((size_out, size_in), np.float32)
    for i in range(size_out):
        start = (i * size_in) // size_out
        end = -((-(i + 1) * size_in) // size_out)
        mat[i, start:end] = 1.0 / (end - start)
    return mat


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
    """PyTorch ``AdaptiveAvgPool2d(size)`` on NHWC: (B, H, W, C) -> (B, s, s, C)."""
    rows = jnp.asarray(_adaptive_pool_matrix(x.shape[1], size), x.dtype)
    cols = jnp.asarray(_adaptive_pool_matrix(x.shape[2], size), x.dtype)
    return jnp.einsum("ih,bhwc,jw->bijc", rows, x, cols)


class VGG(nn.Module):
    """VGG classifier.

    Attributes:
      cfg: conv widths with ``"M"`` for 2x2 max-pooling.
      batch_norm: insert BatchNorm after every conv (the ``_bn`` variants).
      num_classes: size of the logits.
      hidden: width of the two hidden classifier layers (4096 in torchvision).
      dropout: classifier dropout rate (needs a ``'dropout'`` rng when training).
    """

    cfg: Sequence[int | str] = _VGG16
    batch_norm: bool = False
    num_classes: int = 1000
    hidden: int = 4096
    dropout: float = 0.5

    @nn.compact
    def __call__(
        self,
        images: jax.Array,
        train: bool = False,
        layers: Sequence[str] | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Args: images (B, H, W, 3). Returns (logits (B, num_classes), acts)."""
        acts = {}
        x = images
        index = 0  # torchvision's index into the `features` Sequential.
        for width in self.cfg:
            if width == "M":
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
                acts[f"features.{index}"] = x
                index += 1
                continue
            x = nn.Conv(int(width), (3, 3), padding=1, name=f"features.{index}")(x)
            index += 1
            if self.batch_norm:
                x = batch_norm(train, f"features.{index}")(x)
                index += 1
            x = nn.relu(x)
            acts[f"features.{index}"] = x
            index += 1
        x = adaptive_avg_pool(x, 7)
        acts["avgpool"] = x
        # torch flattens NCHW, so the first linear expects channel-major order.
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
        for i in (0, 3):
            x = nn.relu(nn.Dense(self.hidden, name=f"classifier.{i}")(x))
            acts[f"classifier.{i + 1}"] = x
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        logits = nn.Dense(self.num_classes, name="classifier.6")(x)
        return logits, select_layers(acts, layers)


def vgg16(num_classes: int = 1000, **kwargs) -> VGG:
    return VGG(batch_norm=False, num_classes=num_classes, **kwargs)


def vgg16_bn(num_classes: int = 1000, **kwargs) -> VGG:
    return VGG(batch_norm=True, num_classes=num_classes, **kwargs)
