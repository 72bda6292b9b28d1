"""EfficientNet-Lite0/1/2 (lukemelas-style parameter names).

Lite variants drop squeeze-excitation, use ReLU6, and keep the stem (32) and head
(1280) widths fixed while scaling the block widths and depths. Stride-2 convs use
TF "same" padding (the larger half after), which is Flax's ``'SAME'``; BN eps 1e-3
and decay 0.99 (the TF training setting). Inputs are scaled to [-1, 1].

Parameter names: ``_conv_stem``, ``_bn0``, ``_blocks.{i}._expand_conv``/``_bn0``
(absent when the expansion is 1), ``_depthwise_conv``/``_bn1``,
``_project_conv``/``_bn2``, then ``_conv_head``, ``_bn1`` and ``_fc``.

Named activations for Lite0 and an input (B, H, W, 3), H, W divisible by 32:

=========================================  ==========================
name                                       shape
=========================================  ==========================
``_conv_stem``                             (B, H/2, W/2, 32)
``_blocks.0``                              (B, H/2, W/2, 16)
``_blocks.1``, ``_blocks.2``               (B, H/4, W/4, 24)
``_blocks.3``, ``_blocks.4``               (B, H/8, W/8, 40)
``_blocks.5`` .. ``_blocks.7``             (B, H/16, W/16, 80)
``_blocks.8`` .. ``_blocks.10``            (B, H/16, W/16, 112)
``_blocks.11`` .. ``_blocks.14``           (B, H/32, W/32, 192)
``_blocks.15``                             (B, H/32, W/32, 320)
``_conv_head``                             (B, H/32, W/32, 1280)
``pool``                                   (B, 1280)
=========================================  ==========================

Lite1 (depth x1.1) and Lite2 (width x1.1, depth x1.2) have more blocks and wider
channels; their weights were not checked here.
"""

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcxai.models.common import DepthwiseConv, batch_norm, relu6, select_layers

__all__ = ["EfficientNetLite", "efficientnet_lite"]

# (kernel, first stride, expansion, output channels, repeats) of EfficientNet-B0.
_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)

# name -> (width multiplier, depth multiplier, dropout before the classifier).
LITE_VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 0.3),
}

_EPS, _MOMENTUM = 1e-3, 0.99


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    if width == 1.0:
        return filters
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * filters else new)


def _bn(train: bool, name: str) -> nn.BatchNorm:
    return batch_norm(train, name, eps=_EPS, momentum=_MOMENTUM)


class MBConvLite(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation."""

    features: int
    kernel: int
    stride: int
    expansion: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        hidden = x.shape[-1] * self.expansion
        y = x
        if self.expansion != 1:
            y = nn.Conv(hidden, (1, 1), use_bias=False, name="_expand_conv")(y)
            y = relu6(_bn(train, "_bn0")(y))
        y = DepthwiseConv(self.kernel, self.stride, "same", name="_depthwise_conv")(y)
        y = relu6(_bn(train, "_bn1")(y))
        y = nn.Conv(self.features, (1, 1), use_bias=False, name="_project_conv")(y)
        y = _bn(train, "_bn2")(y)
        if self.stride == 1 and x.shape[-1] == self.features:
            y = x + y
        return y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier.

    Attributes:
      num_classes: size of the logits.
      width: channel multiplier of the blocks.
      depth: repeat multiplier of the stages (rounded up).
      dropout: rate before ``_fc`` (needs a ``'dropout'`` rng when training).
    """

    num_classes: int = 1000
    width: float = 1.0
    depth: float = 1.0
    dropout: float = 0.2

    @nn.compact
    def __call__(
        self,
        images: jax.Array,
        train: bool = False,
        layers: Sequence[str] | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Args: images (B, H, W, 3) in [-1, 1]. Returns (logits, acts)."""
        acts = {}
        x = nn.Conv(32, (3, 3), 2, "SAME", use_bias=False, name="_conv_stem")(images)
        x = relu6(_bn(train, "_bn0")(x))
        acts["_conv_stem"] = x
        index = 0
        for stage, (kernel, stride, expansion, out, repeats) in enumerate(_STAGES):
            features = _round_filters(out, self.width)
            # Lite keeps the first and last stage at one block whatever the depth.
            if stage not in (0, len(_STAGES) - 1):
                repeats = int(math.ceil(self.depth * repeats))
            for i in range(repeats):
                block = MBConvLite(
                    features,
                    kernel,
                    stride if i == 0 else 1,
                    expansion,
                    name=f"_blocks.{index}",
                )
                x = block(x, train)
                acts[f"_blocks.{index}"] = x
                index += 1
        x = nn.Conv(1280, (1, 1), use_bias=False, name="_conv_head")(x)
        x = relu6(_bn(train, "_bn1")(x))
        acts["_conv_head"] = x
        x = jnp.mean(x, axis=(1, 2))
        acts["pool"] = x
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        logits = nn.Dense(self.num_classes, name="_fc")(x)
        return logits, select_layers(acts, layers)


def efficientnet_lite(
    name: str = "efficientnet_lite0", num_classes: int = 1000, **kwargs
) -> EfficientNetLite:
    """Builds a Lite variant by name (``efficientnet_lite0``/``1``/``2``).

    ``kwargs`` override the variant's fields (e.g. ``dropout``).
    """
    if name not in LITE_VARIANTS:
        raise ValueError(
            f"unknown EfficientNet-Lite {name!r}; valid: {list(LITE_VARIANTS)}"
        )
    width, depth, dropout = LITE_VARIANTS[name]
    fields = {"width": width, "depth": depth, "dropout": dropout} | kwargs
    return EfficientNetLite(num_classes=num_classes, **fields)
