"""A small Vision Transformer (pre-norm, class token, learned positions).

Parameter names follow the timm layout (``patch_embed.proj``, ``cls_token``,
``pos_embed``, ``blocks.{i}.norm1``, ``blocks.{i}.attn.qkv``, ``blocks.{i}.attn.proj``,
``blocks.{i}.norm2``, ``blocks.{i}.mlp.fc1``/``fc2``, ``norm``, ``head``), so such a
state dict maps through :func:`jaxcxai.models.convert.torch_to_linen`.

Named activations for an input (B, H, W, 3) with patch size p, grid h = H/p,
w = W/p and width D:

=====================  =================  =========================================
name                   shape              what
=====================  =================  =========================================
``patch_embed``        (B, h, w, D)       patch embeddings (before positions)
``blocks.{i}``         (B, h, w, D)       block i's patch tokens as a spatial grid
``blocks.{i}.cls``     (B, D)             block i's class token
``pre_logits``         (B, D)             final-norm class token fed to ``head``
=====================  =================  =========================================

The position table is sized at ``init`` from the input resolution; applying the
model at another resolution raises a ValueError.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcxai.models.common import select_layers

__all__ = ["VisionTransformer", "vit_small", "vit_tiny"]

_LN_EPS = 1e-6  # timm's ViT LayerNorm epsilon.


class Attention(nn.Module):
    num_heads: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, n, d = x.shape
        head_dim = d // self.num_heads
        qkv = nn.Dense(3 * d, name="qkv")(x).reshape(b, n, 3, self.num_heads, head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, N, heads, hd)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(head_dim).astype(
            x.dtype
        )
        weights = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, n, d)
        return nn.Dense(d, name="proj")(out)


class Block(nn.Module):
    num_heads: int
    mlp_dim: int
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        drop = nn.Dropout(self.dropout, deterministic=not train)
        y = nn.LayerNorm(_LN_EPS, name="norm1")(x)
        x = x + drop(Attention(self.num_heads, name="attn")(y))
        y = nn.LayerNorm(_LN_EPS, name="norm2")(x)
        y = nn.gelu(nn.Dense(self.mlp_dim, name="mlp.fc1")(y), approximate=False)
        y = nn.Dense(x.shape[-1], name="mlp.fc2")(drop(y))
        return x + drop(y)


class VisionTransformer(nn.Module):
    """ViT classifier.

    Attributes:
      num_classes: size of the logits.
      patch_size: side of the square patches.
      hidden_dim: token width D.
      depth: number of transformer blocks.
      num_heads: attention heads (must divide D).
      mlp_dim: hidden width of the MLPs.
      dropout: dropout rate in the blocks (needs a ``'dropout'`` rng when training).
    """

    num_classes: int = 1000
    patch_size: int = 16
    hidden_dim: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_dim: int = 768
    dropout: float = 0.0

    @nn.compact
    def __call__(
        self,
        images: jax.Array,
        train: bool = False,
        layers: Sequence[str] | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Args: images (B, H, W, 3), H and W divisible by the patch size."""
        b, height, width, _ = images.shape
        p, d = self.patch_size, self.hidden_dim
        if height % p or width % p:
            raise ValueError(f"image size {height}x{width} not divisible by patch {p}")
        if d % self.num_heads:
            raise ValueError(
                f"hidden_dim {d} not divisible by num_heads {self.num_heads}"
            )
        acts = {}
        x = nn.Conv(d, (p, p), p, "VALID", name="patch_embed.proj")(images)
        h, w = x.shape[1:3]
        acts["patch_embed"] = x
        cls = self.param("cls_token", nn.initializers.zeros, (1, 1, d))
        if self.has_variable("params", "pos_embed"):
            # Checked here to name the cause; flax's own error only names shapes.
            table = self.get_variable("params", "pos_embed").shape[1]
            if table != h * w + 1:
                raise ValueError(
                    f"position table holds {table - 1} patches but the input has "
                    f"{h}x{w}={h * w}; apply at the resolution used for init"
                )
        pos = self.param("pos_embed", nn.initializers.normal(0.02), (1, h * w + 1, d))
        x = jnp.concatenate(
            [jnp.broadcast_to(cls, (b, 1, d)), x.reshape(b, h * w, d)], 1
        )
        x = x + pos
        for i in range(self.depth):
            x = Block(self.num_heads, self.mlp_dim, self.dropout, name=f"blocks.{i}")(
                x, train
            )
            acts[f"blocks.{i}"] = x[:, 1:].reshape(b, h, w, d)
            acts[f"blocks.{i}.cls"] = x[:, 0]
        x = nn.LayerNorm(_LN_EPS, name="norm")(x)[:, 0]
        acts["pre_logits"] = x
        logits = nn.Dense(self.num_classes, name="head")(x)
        return logits, select_layers(acts, layers)


def vit_tiny(num_classes: int = 1000, **kwargs) -> VisionTransformer:
    """ViT-Ti/16: D=192, 12 blocks, 3 heads."""
    kwargs = {
        "patch_size": 16,
        "hidden_dim": 192,
        "depth": 12,
        "num_heads": 3,
        "mlp_dim": 768,
    } | kwargs
    return VisionTransformer(num_classes=num_classes, **kwargs)


def vit_small(num_classes: int = 1000, **kwargs) -> VisionTransformer:
    """ViT-S/16: D=384, 12 blocks, 6 heads."""
    kwargs = {
        "patch_size": 16,
        "hidden_dim": 384,
        "depth": 12,
        "num_heads": 6,
        "mlp_dim": 1536,
    } | kwargs
    return VisionTransformer(num_classes=num_classes, **kwargs)
