"""Building blocks shared by the backbones: PyTorch-equivalent BatchNorm, padding
helpers and the ``layers=`` selection of the ``(logits, acts)`` call contract.

Every backbone's ``__call__(images, train=False, layers=None)`` returns
``(logits, acts)``, with ``acts`` a dict of named intermediate activations. Modules
are named so that joining a parameter's module path with ``"."`` gives the PyTorch
module name (``features.3.conv.1.0``); :mod:`jaxcxai.models.convert` relies on it.
"""

from collections.abc import Iterable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = [
    "DepthwiseConv",
    "batch_norm",
    "depthwise_conv",
    "relu6",
    "select_layers",
    "tf_same_padding",
    "torch_padding",
]

Padding = tuple[tuple[int, int], tuple[int, int]]


def batch_norm(
    train: bool, name: str, *, eps: float = 1e-5, momentum: float = 0.9
) -> nn.BatchNorm:
    """BatchNorm with PyTorch semantics.

    Flax ``momentum`` is the running-average decay, so 0.9 equals PyTorch's default
    ``momentum=0.1``. One difference remains: PyTorch updates ``running_var`` with the
    unbiased batch variance, Flax with the biased one (a factor n/(n-1)).
    """
    return nn.BatchNorm(
        use_running_average=not train, momentum=momentum, epsilon=eps, name=name
    )


def relu6(x: jax.Array) -> jax.Array:
    return jnp.clip(x, 0.0, 6.0)


def torch_padding(kernel_size: int, dilation: int = 1) -> tuple[tuple[int, int], ...]:
    """Symmetric ``(k - 1) // 2`` padding, as PyTorch's ``padding=k // 2`` convs use.

    Unlike Flax's ``'SAME'`` (TF rule: the larger half after), this keeps the
    PyTorch alignment for stride-2 convs, which pretrained torchvision weights need.
    """
    p = dilation * (kernel_size - 1) // 2
    return ((p, p), (p, p))


def tf_same_padding(size: tuple[int, int], kernel: int, stride: int) -> Padding:
    """TF "same" padding: total max((ceil(n/s) - 1) s + k - n, 0), larger half after."""
    pads = []
    for n in size:
        total = max((-(-n // stride) - 1) * stride + kernel - n, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def depthwise_conv(
    x: jax.Array, kernel: jax.Array, stride: int, padding: Padding, impl: str = "auto"
) -> jax.Array:
    """Depthwise 2-D convolution, NHWC.

    Args:
      x: (B, H, W, C).
      kernel: (kh, kw, 1, C), the layout of ``nn.Conv(feature_group_count=C)``.
      stride: same stride for both spatial axes.
      padding: ((top, bottom), (left, right)).
      impl: ``"xla"`` (grouped ``conv_general_dilated``), ``"slices"`` (sum of
        kh*kw shifted, strided slices times per-channel weights) or ``"auto"``:
        slices on CPU, where XLA's grouped convolution is 10-60x slower forward
        and far slower still in the backward pass; xla elsewhere (cuDNN).

    Returns:
      (B, H', W', C).
    """
    if impl == "auto":
        impl = "slices" if jax.default_backend() == "cpu" else "xla"
    kernel = kernel.astype(x.dtype)
    if impl == "xla":
        return jax.lax.conv_general_dilated(
            x,
            kernel,
            (stride, stride),
            padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=x.shape[-1],
        )
    if impl != "slices":
        raise ValueError(f"impl must be 'auto', 'xla' or 'slices', got {impl!r}")
    kh, kw, _, c = kernel.shape
    x = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    b, h, w, _ = x.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    out = None
    for i in range(kh):
        for j in range(kw):
            patch = jax.lax.slice(
                x,
                (0, i, j, 0),
                (b, i + (oh - 1) * stride + 1, j + (ow - 1) * stride + 1, c),
                (1, stride, stride, 1),
            )
            term = patch * kernel[i, j].reshape(1, 1, 1, c)
            out = term if out is None else out + term
    return out


class DepthwiseConv(nn.Module):
    """Bias-free depthwise conv holding ``kernel`` (kh, kw, 1, C) like ``nn.Conv``.

    Attributes:
      kernel_size: square kernel side.
      stride: spatial stride.
      padding: ``"torch"`` (symmetric (k-1)/2) or ``"same"`` (TF rule).
    """

    kernel_size: int
    stride: int = 1
    padding: str = "torch"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (k, k, 1, x.shape[-1])
        )
        if self.padding == "torch":
            pads = torch_padding(k)
        elif self.padding == "same":
            pads = tf_same_padding(x.shape[1:3], k, self.stride)
        else:
            raise ValueError(f"padding must be 'torch' or 'same', got {self.padding!r}")
        return depthwise_conv(x, kernel, self.stride, pads)


def select_layers(
    acts: Mapping[str, Any], layers: Iterable[str] | None
) -> dict[str, Any]:
    """Keeps the requested activations (all when ``layers`` is None).

    Raises:
      KeyError: a requested name is not a layer of the model; lists the valid ones.
    """
    if layers is None:
        return dict(acts)
    if isinstance(layers, str):
        layers = (layers,)
    layers = tuple(layers)
    unknown = [name for name in layers if name not in acts]
    if unknown:
        raise KeyError(f"unknown layer name(s) {unknown}; valid names: {list(acts)}")
    return {name: acts[name] for name in layers}
