"""The pre-LayerNorm transformer shared by OpenCLIP's image and text towers.

Module names follow open_clip's ``Transformer``/``ResidualAttentionBlock``
(``resblocks.{i}.ln_1``, ``.attn.in_proj_weight``, ``.attn.out_proj``,
``.ln_2``, ``.mlp.c_fc``, ``.mlp.c_proj``), so a linen parameter path joined
with ``"."`` is the state-dict key and
:func:`jaxcxai.models.convert.torch_to_linen` maps the weights. The attention
keeps PyTorch's ``nn.MultiheadAttention`` layout: one packed (3D, D) input
projection, applied as ``x @ W.T + b``.

References:
  Radford et al., "Learning Transferable Visual Models From Natural Language
  Supervision" (CLIP), ICML 2021. Vaswani et al., "Attention Is All You
  Need", NeurIPS 2017.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = [
    "LN_EPS",
    "Attention",
    "ResidualAttentionBlock",
    "Transformer",
    "activation",
    "quick_gelu",
]

LN_EPS = 1e-5  # torch.nn.LayerNorm's default, which open_clip keeps.


def quick_gelu(x: jax.Array) -> jax.Array:
    """x * sigmoid(1.702 x): the GELU approximation OpenAI's CLIP was trained with."""
    return x * jax.nn.sigmoid(1.702 * x)


def activation(use_quick_gelu: bool):
    """QuickGELU (OpenAI-trained weights) or exact erf GELU (open_clip's default)."""
    if use_quick_gelu:
        return quick_gelu
    return lambda x: jax.nn.gelu(x, approximate=False)


class Attention(nn.Module):
    """Multi-head self-attention in ``torch.nn.MultiheadAttention``'s layout.

    Attributes:
      num_heads: heads (must divide the width D).
    """

    num_heads: int

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """Args: x (B, N, D); mask (N, N) bool, True where attention is allowed."""
        b, n, d = x.shape
        if d % self.num_heads:
            raise ValueError(f"width {d} not divisible by num_heads {self.num_heads}")
        hd = d // self.num_heads
        w = self.param("in_proj_weight", nn.initializers.lecun_normal(), (3 * d, d))
        bias = self.param("in_proj_bias", nn.initializers.zeros, (3 * d,))
        qkv = jnp.einsum("bnd,ed->bne", x, w) + bias[None, None]
        qkv = qkv.reshape(b, n, 3, self.num_heads, hd)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, N, H, hd)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
        if mask is not None:
            # -inf, as open_clip's additive causal mask; the diagonal is always
            # allowed, so no row is all -inf.
            logits = jnp.where(mask[None, None], logits, -jnp.inf)
        weights = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, n, d)
        return nn.Dense(d, name="out_proj")(out)


class ResidualAttentionBlock(nn.Module):
    """x + attn(ln_1(x)), then + mlp(ln_2(x)): open_clip's pre-LN block.

    Attributes:
      num_heads: attention heads.
      mlp_width: hidden width of the MLP (``int(D * mlp_ratio)``).
      use_quick_gelu: QuickGELU instead of exact GELU in the MLP.
    """

    num_heads: int
    mlp_width: int
    use_quick_gelu: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        y = nn.LayerNorm(LN_EPS, name="ln_1")(x)
        x = x + Attention(self.num_heads, name="attn")(y, mask)
        y = nn.LayerNorm(LN_EPS, name="ln_2")(x)
        y = nn.Dense(self.mlp_width, name="mlp.c_fc")(y)
        y = nn.Dense(x.shape[-1], name="mlp.c_proj")(activation(self.use_quick_gelu)(y))
        return x + y


class Transformer(nn.Module):
    """A stack of ``layers`` residual attention blocks (``resblocks.{i}``).

    Attributes:
      layers: number of blocks.
      num_heads: attention heads per block.
      mlp_width: MLP hidden width.
      use_quick_gelu: QuickGELU instead of exact GELU.
    """

    layers: int
    num_heads: int
    mlp_width: int
    use_quick_gelu: bool = False

    @nn.compact
    def __call__(
        self, x: jax.Array, mask: jax.Array | None = None
    ) -> tuple[jax.Array, list[jax.Array]]:
        """Args: x (B, N, D); mask (N, N) bool or None.

        Returns:
          ``(x, outs)``: the last block's output (B, N, D) and every block's
          output, in order.
        """
        outs = []
        for i in range(self.layers):
            x = ResidualAttentionBlock(
                self.num_heads,
                self.mlp_width,
                self.use_quick_gelu,
                name=f"resblocks.{i}",
            )(x, mask)
            outs.append(x)
        return x, outs
