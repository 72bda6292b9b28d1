"""Tiny linen models shared by the foundation tests (not part of the library)."""

import flax.linen as nn
import jax.numpy as jnp


class TinyConvNet(nn.Module):
    """Conv-BN-ReLU, pool, dense: exercises params and batch_stats."""

    num_classes: int = 4

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(8, (3, 3))(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.relu(x)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes)(x)
