"""Networks of DUCH and CHNR (as in the reference code), with PyTorch semantics.

* `HashNet`: Linear(D -> 4096) -> BatchNorm1d -> ReLU -> Linear(4096 -> K)
  -> tanh; the image net f and the text net g differ only in D.
* `HashDiscriminator` (DUCH D_h): Linear(K -> 2K) -> BatchNorm1d -> ReLU ->
  Linear(2K -> 1), a logit per code.
* `NoiseDetector` (CHNR D_N): three Linear(D -> D) -> ReLU -> Dropout(0.2)
  blocks and Linear(D -> 1) on the joint feature [x; y].

Every linear layer uses PyTorch's default initialisation, weight and bias
both U(-1/sqrt(fan_in), 1/sqrt(fan_in)), because the reference numbers were
produced with it and Flax's defaults differ. `TorchBatchNorm` reproduces
`nn.BatchNorm1d`: training normalises with the biased batch variance, the
running variance is updated with the unbiased one (momentum 0.1), and
evaluation uses the running statistics. The reference calls the nets once
per view, so each call has its own batch statistics; callers must not
concatenate views into one call.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = [
    "HashDiscriminator",
    "HashNet",
    "NoiseDetector",
    "TorchBatchNorm",
    "TorchDense",
    "running_update",
    "torch_uniform",
]


def torch_uniform(bound: float):
    """Initializer drawing U(-bound, bound), whatever the shape."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class TorchDense(nn.Module):
    """`torch.nn.Linear` with its default initialisation.

    Parameters are `kernel` (D, F), i.e. the transpose of torch's `weight`,
    and `bias` (F,), both U(-1/sqrt(D), 1/sqrt(D)).
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        bound = 1.0 / math.sqrt(x.shape[-1])
        return nn.Dense(
            self.features,
            kernel_init=torch_uniform(bound),
            bias_init=torch_uniform(bound),
            name="dense",
        )(x)


def running_update(running: dict, mean, var, n: int, momentum: float = 0.1) -> dict:
    """`nn.BatchNorm1d`'s running statistics after one training call.

    Args:
      running: {'mean', 'var'} (F,) running statistics before the call.
      mean, var: (F,) batch mean and biased batch variance of the call.
      n: batch size of the call (the running variance takes the unbiased
        variance, var * n / (n - 1)).
      momentum: weight of the batch statistic.
    """
    unbiased = var * (n / max(n - 1, 1))
    return {
        "mean": (1.0 - momentum) * running["mean"] + momentum * mean,
        "var": (1.0 - momentum) * running["var"] + momentum * unbiased,
    }


class TorchBatchNorm(nn.Module):
    """`torch.nn.BatchNorm1d` over axis 0 (training and eval semantics).

    Attributes:
      momentum: PyTorch convention, weight of the new batch statistic.
      epsilon: added to the variance.
    """

    momentum: float = 0.1
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,))
        bias = self.param("bias", nn.initializers.zeros, (features,))
        ra_mean = self.variable(
            "batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32)
        )
        ra_var = self.variable(
            "batch_stats", "var", lambda: jnp.ones((features,), jnp.float32)
        )
        if train:
            n = x.shape[0]
            mean = jnp.mean(x, axis=0)
            var = jnp.mean(jnp.square(x - mean[None]), axis=0)
            if not self.is_initializing():
                new = running_update(
                    {"mean": ra_mean.value, "var": ra_var.value},
                    mean, var, n, self.momentum,
                )  # fmt: skip
                ra_mean.value, ra_var.value = new["mean"], new["var"]
        else:
            mean, var = ra_mean.value, ra_var.value
        mul = jax.lax.rsqrt(var + self.epsilon) * scale
        return (x - mean[None]) * mul[None] + bias[None]


class HashNet(nn.Module):
    """Hash net f or g: (N, D) features -> (N, bits) codes in (-1, 1).

    Attributes:
      bits: code length K.
      hidden: hidden width (4096 in the reference).
    """

    bits: int
    hidden: int = 4096

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        h = TorchDense(self.hidden, name="fc1")(x)
        h = TorchBatchNorm(name="bn")(h, train)
        h = nn.relu(h)
        return jnp.tanh(TorchDense(self.bits, name="fc2")(h))


class HashDiscriminator(nn.Module):
    """DUCH D_h: (N, K) codes -> (N,) logits ("real" = text codes)."""

    bits: int

    @nn.compact
    def __call__(self, h: jax.Array, train: bool = True) -> jax.Array:
        z = TorchDense(2 * self.bits, name="fc1")(h)
        z = TorchBatchNorm(name="bn")(z, train)
        z = nn.relu(z)
        return TorchDense(1, name="fc2")(z)[..., 0]


class NoiseDetector(nn.Module):
    """CHNR D_N: (N, Di + Dt) joint features -> (N,) logits ("real" = clean).

    Attributes:
      hidden: block width; None uses the input width (1280 in the reference).
      num_blocks: Linear-ReLU-Dropout blocks before the output layer.
      dropout: drop probability; active when `train` (needs a `dropout` rng).
    """

    hidden: int | None = None
    num_blocks: int = 3
    dropout: float = 0.2

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        width = self.hidden or z.shape[-1]
        for i in range(self.num_blocks):
            z = nn.relu(TorchDense(width, name=f"fc{i + 1}")(z))
            z = nn.Dropout(self.dropout, deterministic=not train)(z)
        return TorchDense(1, name="out")(z)[..., 0]
