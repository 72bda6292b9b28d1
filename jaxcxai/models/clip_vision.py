"""OpenCLIP's image towers in flax.linen: the ViT and the ModifiedResNet.

Module names follow open_clip's ``visual`` submodule (``conv1``,
``class_embedding``, ``positional_embedding``, ``ln_pre``,
``transformer.resblocks.{i}``, ``ln_post``, ``proj``; ``layer{k}.{j}.conv1``,
``bn1``, ``downsample.0``/``.1``, ``attnpool.q_proj``...), so the keys under
``visual.`` map through :func:`jaxcxai.models.convert.torch_to_linen`.
Images are NHWC. Both towers return ``(embedding (B, E), acts)``.

Named activations (B images, ViT patch p, grid h = H/p, w = W/p, width D):

================================  ===============  ==============================
name                              shape            what
================================  ===============  ==============================
``conv1``                         (B, h, w, D)     ViT patch embeddings
``transformer.resblocks.{i}``     (B, h, w, D)     ViT block i, patch tokens
``transformer.resblocks.{i}.cls`` (B, D)           ViT block i, class token
``ln_post``                       (B, D)           ViT pooled token before ``proj``
``stem``                          (B, H/4, W/4, C) ResNet stem (C = width)
``layer{k}``                      (B, h, w, C_k)   ResNet stage k = 1..4
================================  ===============  ==============================

References:
  Radford et al., "Learning Transferable Visual Models From Natural Language
  Supervision", ICML 2021 (ModifiedResNet: 3-conv stem, anti-aliased strided
  blocks, attention pooling). Dosovitskiy et al., "An Image is Worth 16x16
  Words", ICLR 2021 (ViT).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcxai.models.clip_transformer import LN_EPS, Transformer
from jaxcxai.models.common import batch_norm, torch_padding

__all__ = ["AttentionPool2d", "Bottleneck", "ModifiedResNet", "VisionTransformer"]


def _check_table(table: int, needed: int, what: str) -> None:
    # Named here: flax's own shape error does not say which input is wrong.
    if table != needed:
        raise ValueError(
            f"{what} position table holds {table} tokens but the input needs "
            f"{needed}; apply the model at the image size it was built for"
        )


class VisionTransformer(nn.Module):
    """CLIP ViT: patch conv, class token, ln_pre, transformer, ln_post, proj.

    Attributes:
      image_size: input side (H = W).
      patch_size: patch side p.
      width: token width D.
      layers: transformer blocks.
      num_heads: attention heads.
      mlp_width: MLP hidden width.
      output_dim: embedding size E.
      use_quick_gelu: QuickGELU in the MLPs.
    """

    image_size: int
    patch_size: int
    width: int
    layers: int
    num_heads: int
    mlp_width: int
    output_dim: int
    use_quick_gelu: bool = False

    @nn.compact
    def __call__(self, images: jax.Array) -> tuple[jax.Array, dict]:
        """Args: images (B, H, W, 3), normalised. Returns (emb (B, E), acts)."""
        b, height, width, _ = images.shape
        p, d = self.patch_size, self.width
        if height % p or width % p:
            raise ValueError(f"image size {height}x{width} not divisible by patch {p}")
        acts = {}
        x = nn.Conv(d, (p, p), p, "VALID", use_bias=False, name="conv1")(images)
        h, w = x.shape[1:3]
        acts["conv1"] = x
        scale = d**-0.5
        cls = self.param("class_embedding", nn.initializers.normal(scale), (d,))
        n_pos = (self.image_size // p) ** 2 + 1
        pos = self.param(
            "positional_embedding", nn.initializers.normal(scale), (n_pos, d)
        )
        _check_table(n_pos, h * w + 1, "ViT")
        x = jnp.concatenate(
            [jnp.broadcast_to(cls[None, None], (b, 1, d)), x.reshape(b, h * w, d)],
            axis=1,
        )
        x = nn.LayerNorm(LN_EPS, name="ln_pre")(x + pos[None])
        x, outs = Transformer(
            self.layers,
            self.num_heads,
            self.mlp_width,
            self.use_quick_gelu,
            name="transformer",
        )(x)
        for i, out in enumerate(outs):
            acts[f"transformer.resblocks.{i}"] = out[:, 1:].reshape(b, h, w, d)
            acts[f"transformer.resblocks.{i}.cls"] = out[:, 0]
        pooled = nn.LayerNorm(LN_EPS, name="ln_post")(x[:, 0])
        acts["ln_post"] = pooled
        proj = self.param("proj", nn.initializers.normal(scale), (d, self.output_dim))
        return pooled @ proj, acts


def _avg_pool(x: jax.Array, k: int) -> jax.Array:
    """torch ``AvgPool2d(k)``: window k, stride k, no padding, floor."""
    return x if k == 1 else nn.avg_pool(x, (k, k), (k, k), "VALID")


def _conv(features: int, k: int, name: str, stride: int = 1) -> nn.Conv:
    return nn.Conv(
        features,
        (k, k),
        stride,
        torch_padding(k),
        use_bias=False,
        name=name,
    )


class Bottleneck(nn.Module):
    """Anti-aliased bottleneck: strides are average pools, convs have stride 1.

    Attributes:
      planes: bottleneck width (output has 4 * planes channels).
      stride: downsampling factor of the block.
    """

    planes: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        out_ch = 4 * self.planes
        y = nn.relu(batch_norm(False, "bn1")(_conv(self.planes, 1, "conv1")(x)))
        y = nn.relu(batch_norm(False, "bn2")(_conv(self.planes, 3, "conv2")(y)))
        y = _avg_pool(y, self.stride)
        y = batch_norm(False, "bn3")(_conv(out_ch, 1, "conv3")(y))
        if self.stride > 1 or x.shape[-1] != out_ch:
            x = _avg_pool(x, self.stride)
            x = batch_norm(False, "downsample.1")(_conv(out_ch, 1, "downsample.0")(x))
        return nn.relu(y + x)


class AttentionPool2d(nn.Module):
    """QKV attention pooling: the spatial mean token attends to all tokens.

    Attributes:
      num_heads: attention heads.
      output_dim: size of the pooled output.
      grid: side of the feature map the position table is built for.
    """

    num_heads: int
    output_dim: int
    grid: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Args: x (B, h, w, C). Returns (B, output_dim)."""
        b, h, w, c = x.shape
        if c % self.num_heads:
            raise ValueError(f"width {c} not divisible by num_heads {self.num_heads}")
        n_pos = self.grid**2 + 1
        pos = self.param(
            "positional_embedding", nn.initializers.normal(c**-0.5), (n_pos, c)
        )
        _check_table(n_pos, h * w + 1, "attnpool")
        x = x.reshape(b, h * w, c)
        x = jnp.concatenate([x.mean(axis=1, keepdims=True), x], axis=1) + pos[None]
        hd = c // self.num_heads
        # Only the mean token's output is kept, so only its query is computed;
        # each query's softmax is independent of the others.
        q = nn.Dense(c, name="q_proj")(x[:, :1]).reshape(b, 1, self.num_heads, hd)
        k = nn.Dense(c, name="k_proj")(x).reshape(b, h * w + 1, self.num_heads, hd)
        v = nn.Dense(c, name="v_proj")(x).reshape(b, h * w + 1, self.num_heads, hd)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
        out = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)
        return nn.Dense(self.output_dim, name="c_proj")(out.reshape(b, c))


class ModifiedResNet(nn.Module):
    """CLIP's ResNet: 3-conv stem + avg pool, four bottleneck stages, attnpool.

    Inference only: BatchNorm uses its running statistics (``batch_stats``).

    Attributes:
      layers: bottleneck blocks per stage, 4 ints.
      width: stem width C; stage k has 4 * C * 2**(k-1) output channels.
      num_heads: attention-pool heads.
      output_dim: embedding size E.
      image_size: input side; the attention pool's table is (image_size/32)^2+1.
    """

    layers: tuple[int, int, int, int]
    width: int
    num_heads: int
    output_dim: int
    image_size: int

    @nn.compact
    def __call__(self, images: jax.Array) -> tuple[jax.Array, dict]:
        """Args: images (B, H, W, 3), normalised. Returns (emb (B, E), acts)."""
        if len(self.layers) != 4:
            raise ValueError(f"layers must hold 4 stage depths, got {self.layers}")
        c = self.width
        acts = {}
        x = images
        for i, (ch, stride) in enumerate(((c // 2, 2), (c // 2, 1), (c, 1)), 1):
            x = _conv(ch, 3, f"conv{i}", stride)(x)
            x = nn.relu(batch_norm(False, f"bn{i}")(x))
        x = _avg_pool(x, 2)
        acts["stem"] = x
        for k, depth in enumerate(self.layers, 1):
            planes = c * 2 ** (k - 1)
            for j in range(depth):
                stride = 2 if k > 1 and j == 0 else 1
                x = Bottleneck(planes, stride, name=f"layer{k}.{j}")(x)
            acts[f"layer{k}"] = x
        emb = AttentionPool2d(
            self.num_heads, self.output_dim, self.image_size // 32, name="attnpool"
        )(x)
        return emb, acts
