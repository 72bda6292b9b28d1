"""MobileNetV2 (torchvision layout).

``features.0`` is the stride-2 stem conv-BN-ReLU6, ``features.1`` .. ``features.17``
are inverted-residual blocks (parameters under ``features.{i}.conv``),
``features.18`` the final 1x1 conv-BN-ReLU6 and ``classifier.1`` the linear head on
global mean pooling. Symmetric ``(k-1)/2`` padding, BN eps 1e-5, ReLU6.

Named activations (block outputs) for an input (B, H, W, 3), H, W divisible by 32,
``width_mult=1``:

=======================================  ===========================
name                                     shape
=======================================  ===========================
``features.0``                           (B, H/2, W/2, 32)
``features.1``                           (B, H/2, W/2, 16)
``features.2``, ``features.3``           (B, H/4, W/4, 24)
``features.4`` .. ``features.6``         (B, H/8, W/8, 32)
``features.7`` .. ``features.10``        (B, H/16, W/16, 64)
``features.11`` .. ``features.13``       (B, H/16, W/16, 96)
``features.14`` .. ``features.16``       (B, H/32, W/32, 160)
``features.17``                          (B, H/32, W/32, 320)
``features.18``                          (B, H/32, W/32, 1280)
``pool``                                 (B, 1280)
=======================================  ===========================

Inputs: RGB in [0, 1] normalised with the ImageNet mean/std
(:func:`jaxcxai.models.preprocess.preprocess`).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcxai.models.common import (
    DepthwiseConv,
    batch_norm,
    relu6,
    select_layers,
    torch_padding,
)

__all__ = ["MobileNetV2", "mobilenet_v2"]

# (expansion t, output channels c, repeats n, first stride s).
_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Rounds channel counts as torchvision does (never down by more than 10%)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def _conv_bn_relu6(
    x: jax.Array,
    features: int,
    kernel: int,
    stride: int,
    groups: int,
    name: str,
    train: bool,
) -> jax.Array:
    # torchvision's Conv2dNormActivation: children `{name}.0` (conv), `{name}.1` (BN).
    if groups > 1:
        if groups != x.shape[-1] or groups != features:
            raise ValueError(f"{name}: only depthwise grouping is supported")
        x = DepthwiseConv(kernel, stride, "torch", name=f"{name}.0")(x)
    else:
        conv = nn.Conv(
            features,
            (kernel, kernel),
            stride,
            torch_padding(kernel),
            use_bias=False,
            name=f"{name}.0",
        )
        x = conv(x)
    return relu6(batch_norm(train, f"{name}.1")(x))


class InvertedResidual(nn.Module):
    features: int
    stride: int
    expansion: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        hidden = int(round(x.shape[-1] * self.expansion))
        y, index = x, 0
        if self.expansion != 1:
            y = _conv_bn_relu6(y, hidden, 1, 1, 1, "conv.0", train)
            index = 1
        y = _conv_bn_relu6(y, hidden, 3, self.stride, hidden, f"conv.{index}", train)
        y = nn.Conv(self.features, (1, 1), use_bias=False, name=f"conv.{index + 1}")(y)
        y = batch_norm(train, f"conv.{index + 2}")(y)
        if self.stride == 1 and x.shape[-1] == self.features:
            y = x + y
        return y


class MobileNetV2(nn.Module):
    """MobileNetV2 classifier.

    Attributes:
      num_classes: size of the logits.
      width_mult: channel multiplier (1.0 for the ImageNet weights).
      dropout: rate of the dropout before the classifier (needs a ``'dropout'`` rng
        when training).
    """

    num_classes: int = 1000
    width_mult: float = 1.0
    dropout: float = 0.2

    @nn.compact
    def __call__(
        self,
        images: jax.Array,
        train: bool = False,
        layers: Sequence[str] | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Args: images (B, H, W, 3) normalised. Returns (logits, acts)."""
        acts = {}
        stem = _make_divisible(32 * self.width_mult)
        x = _conv_bn_relu6(images, stem, 3, 2, 1, "features.0", train)
        acts["features.0"] = x
        index = 1
        for t, c, n, s in _BLOCKS:
            features = _make_divisible(c * self.width_mult)
            for i in range(n):
                block = InvertedResidual(
                    features, s if i == 0 else 1, t, name=f"features.{index}"
                )
                x = block(x, train)
                acts[f"features.{index}"] = x
                index += 1
        last = _make_divisible(1280 * max(1.0, self.width_mult))
        x = _conv_bn_relu6(x, last, 1, 1, 1, f"features.{index}", train)
        acts[f"features.{index}"] = x
        x = jnp.mean(x, axis=(1, 2))
        acts["pool"] = x
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        logits = nn.Dense(self.num_classes, name="classifier.1")(x)
        return logits, select_layers(acts, layers)


def mobilenet_v2(num_classes: int = 1000, **kwargs) -> MobileNetV2:
    return MobileNetV2(num_classes=num_classes, **kwargs)
