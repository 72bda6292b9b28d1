"""ResNet-18 and ResNet-50 (torchvision layout, v1.5: stride on the 3x3 conv).

Parameter names match torchvision (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0``, ``fc``), so torchvision state dicts load through
:func:`jaxcxai.models.convert.torch_to_linen`.

Named activations for an input (B, H, W, 3), with H, W divisible by 32; C = 64 for
ResNet-18 and 256 for ResNet-50 (the bottleneck expansion is 4):

==============  =========================
name            shape
==============  =========================
``maxpool``     (B, H/4, W/4, 64)
``layer1``      (B, H/4, W/4, C)
``layer2``      (B, H/8, W/8, 2C)
``layer3``      (B, H/16, W/16, 4C)
``layer4``      (B, H/32, W/32, 8C)
``avgpool``     (B, 8C)
==============  =========================

At 224x224: layer4 is (B, 7, 7, 512) for ResNet-18 and (B, 7, 7, 2048) for ResNet-50.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcxai.models.common import batch_norm, select_layers, torch_padding

__all__ = ["ResNet", "resnet18", "resnet50"]


class BasicBlock(nn.Module):
    features: int
    stride: int = 1
    expansion = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        residual = x
        y = nn.Conv(
            self.features,
            (3, 3),
            self.stride,
            torch_padding(3),
            use_bias=False,
            name="conv1",
        )(x)
        y = nn.relu(batch_norm(train, "bn1")(y))
        y = nn.Conv(
            self.features, (3, 3), 1, torch_padding(3), use_bias=False, name="conv2"
        )(y)
        y = batch_norm(train, "bn2")(y)
        if self.stride != 1 or x.shape[-1] != self.features:
            residual = _downsample(x, self.features, self.stride, train)
        return nn.relu(y + residual)


class Bottleneck(nn.Module):
    features: int
    stride: int = 1
    expansion = 4

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        out_features = self.features * self.expansion
        residual = x
        y = nn.Conv(self.features, (1, 1), use_bias=False, name="conv1")(x)
        y = nn.relu(batch_norm(train, "bn1")(y))
        y = nn.Conv(
            self.features,
            (3, 3),
            self.stride,
            torch_padding(3),
            use_bias=False,
            name="conv2",
        )(y)
        y = nn.relu(batch_norm(train, "bn2")(y))
        y = nn.Conv(out_features, (1, 1), use_bias=False, name="conv3")(y)
        y = batch_norm(train, "bn3")(y)
        if self.stride != 1 or x.shape[-1] != out_features:
            residual = _downsample(x, out_features, self.stride, train)
        return nn.relu(y + residual)


def _downsample(x: jax.Array, features: int, stride: int, train: bool) -> jax.Array:
    # Called inside a block's compact __call__, so these modules become the block's
    # children `downsample.0` / `downsample.1`, matching torchvision's Sequential.
    x = nn.Conv(features, (1, 1), stride, use_bias=False, name="downsample.0")(x)
    return batch_norm(train, "downsample.1")(x)


class ResNet(nn.Module):
    """ResNet classifier.

    Attributes:
      stage_sizes: number of blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18.
      block: ``BasicBlock`` or ``Bottleneck``.
      num_classes: size of the logits.
    """

    stage_sizes: Sequence[int]
    block: type[nn.Module] = BasicBlock
    num_classes: int = 1000

    @nn.compact
    def __call__(
        self,
        images: jax.Array,
        train: bool = False,
        layers: Sequence[str] | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Args: images (B, H, W, 3). Returns (logits (B, num_classes), acts)."""
        acts = {}
        x = nn.Conv(64, (7, 7), 2, torch_padding(7), use_bias=False, name="conv1")(
            images
        )
        x = nn.relu(batch_norm(train, "bn1")(x))
        # PyTorch pads max-pooling with -inf, so padding never wins the max.
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=torch_padding(3))
        acts["maxpool"] = x
        for stage, num_blocks in enumerate(self.stage_sizes):
            for i in range(num_blocks):
                stride = 2 if stage > 0 and i == 0 else 1
                x = self.block(64 * 2**stage, stride, name=f"layer{stage + 1}.{i}")(
                    x, train
                )
            acts[f"layer{stage + 1}"] = x
        x = jnp.mean(x, axis=(1, 2))
        acts["avgpool"] = x
        logits = nn.Dense(self.num_classes, name="fc")(x)
        return logits, select_layers(acts, layers)


def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18: BasicBlocks (2, 2, 2, 2)."""
    return ResNet(stage_sizes=(2, 2, 2, 2), block=BasicBlock, num_classes=num_classes)


def resnet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50: Bottlenecks (3, 4, 6, 3), v1.5 (stride on the 3x3 conv)."""
    return ResNet(stage_sizes=(3, 4, 6, 3), block=Bottleneck, num_classes=num_classes)
