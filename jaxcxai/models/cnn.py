"""A small BatchNorm CNN, fast enough for CI and for probing tests.

Three conv-BN-ReLU-maxpool stages and a linear head on global mean pooling.
Named activations for an input of shape (B, H, W, C) with H, W divisible by 8 and
the default ``widths=(32, 64, 128)``:

====================  ======================
name                  shape
====================  ======================
``conv1``             (B, H/2, W/2, 32)
``conv2``             (B, H/4, W/4, 64)
``conv3``             (B, H/8, W/8, 128)
``pool``              (B, 128)
====================  ======================

Parameters live under ``conv{i}.conv`` / ``conv{i}.bn`` and ``fc``.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcxai.models.common import batch_norm, select_layers

__all__ = ["SmallCNN"]


class SmallCNN(nn.Module):
    """Small CNN classifier.

    Attributes:
      num_classes: size of the logits.
      widths: output channels of the three conv stages.
    """

    num_classes: int = 10
    widths: Sequence[int] = (32, 64, 128)

    @nn.compact
    def __call__(
        self,
        images: jax.Array,
        train: bool = False,
        layers: Sequence[str] | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Args: images (B, H, W, C) float. Returns (logits (B, num_classes), acts)."""
        acts = {}
        x = images
        for i, width in enumerate(self.widths, start=1):
            name = f"conv{i}"
            x = nn.Conv(width, (3, 3), padding=1, use_bias=False, name=f"{name}.conv")(
                x
            )
            x = nn.relu(batch_norm(train, f"{name}.bn")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
            acts[name] = x
        x = jnp.mean(x, axis=(1, 2))
        acts["pool"] = x
        logits = nn.Dense(self.num_classes, name="fc")(x)
        return logits, select_layers(acts, layers)
