"""OpenCLIP's ``CLIP`` model in flax.linen: image tower, text tower, logit scale.

The parameter tree mirrors the ``open_clip.CLIP`` state dict: the image tower
under ``visual`` (a ViT or a ModifiedResNet, :mod:`jaxcxai.models.clip_vision`)
and the text tower at the top level (``token_embedding.weight``,
``positional_embedding``, ``transformer.resblocks.{i}``, ``ln_final``,
``text_projection``), plus the scalar ``logit_scale``. Weights load with
:func:`jaxcxai.models.clip_weights.load_clip`; text is tokenised with
:class:`jaxcxai.models.clip_tokenizer.ClipTokenizer`.

``encode_image`` and ``encode_text`` return ``(embedding (B, E), acts)``;
``__call__(images, text)`` returns ``(logits_per_image (Bi, Bt), acts)``.
Image activation names are those of :mod:`jaxcxai.models.clip_vision` with the
prefix ``visual.``; the text tower's (B texts, L tokens, width W) are:

=============================  ===========  =====================================
name                           shape        what
=============================  ===========  =====================================
``transformer.resblocks.{i}``  (B, L, W)    text block i (causal: token t sees <= t)
``ln_final``                   (B, L, W)    final LayerNorm, all tokens
``ln_final.pooled``            (B, W)       the end-of-text token, before projection
=============================  ===========  =====================================

References:
  Radford et al., "Learning Transferable Visual Models From Natural Language
  Supervision", ICML 2021. Cherti et al., "Reproducible scaling laws for
  contrastive language-image learning" (OpenCLIP), CVPR 2023.
"""

import dataclasses
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.models.clip_transformer import LN_EPS, Transformer
from jaxcxai.models.clip_vision import ModifiedResNet, VisionTransformer
from jaxcxai.models.common import select_layers

__all__ = [
    "CLIP",
    "IMAGE_MEAN",
    "IMAGE_STD",
    "CLIPConfig",
    "TextConfig",
    "VisionConfig",
    "normalize",
]

# open_clip's OPENAI_DATASET_MEAN / STD: RGB in [0, 1] -> model input.
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)


def _mlp_width(width: int, ratio: float) -> int:
    # open_clip truncates int(width * ratio); the epsilon keeps a ratio read
    # back from the weights (6144 / 1408) from truncating to one less.
    return int(width * ratio + 1e-6)


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    """Image tower. ``layers`` an int: ViT; 4 ints: ModifiedResNet.

    Attributes:
      image_size: input side (square).
      width: ViT token width, or the ResNet stem width.
      layers: ViT depth, or bottleneck blocks per ResNet stage.
      patch_size: ViT patch side (None for the ResNet).
      head_width: channels per attention head (open_clip's default 64).
      mlp_ratio: ViT MLP width / token width.
    """

    image_size: int
    width: int
    layers: int | tuple[int, int, int, int]
    patch_size: int | None = None
    head_width: int = 64
    mlp_ratio: float = 4.0

    @property
    def is_resnet(self) -> bool:
        return isinstance(self.layers, tuple)

    @property
    def num_heads(self) -> int:
        # The ResNet's attention pool runs on the 32 * width stage-4 features.
        dim = self.width * 32 if self.is_resnet else self.width
        if self.head_width <= 0 or dim % self.head_width:
            raise ValueError(
                f"vision width {dim} is not a multiple of head_width {self.head_width}"
            )
        return dim // self.head_width

    @property
    def mlp_width(self) -> int:
        return _mlp_width(self.width, self.mlp_ratio)


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """Text tower (open_clip's ``CLIPTextCfg`` defaults)."""

    context_length: int = 77
    vocab_size: int = 49408
    width: int = 512
    heads: int = 8
    layers: int = 12
    mlp_ratio: float = 4.0

    @property
    def mlp_width(self) -> int:
        return _mlp_width(self.width, self.mlp_ratio)


@dataclasses.dataclass(frozen=True)
class CLIPConfig:
    """A CLIP model: embedding size, towers, activation.

    Attributes:
      embed_dim: joint embedding size E.
      vision: image tower.
      text: text tower.
      quick_gelu: QuickGELU in the transformers (OpenAI-trained weights) instead
        of exact GELU (open_clip's default); the weights do not record it.
    """

    embed_dim: int
    vision: VisionConfig
    text: TextConfig = TextConfig()
    quick_gelu: bool = False


def normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """L2-normalises the last axis (``torch.nn.functional.normalize``)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


class _Embedding(nn.Module):
    """A lookup table named ``weight`` (torch's ``nn.Embedding`` key)."""

    num: int
    features: int

    @nn.compact
    def __call__(self, ids: jax.Array) -> jax.Array:
        table = self.param(
            "weight", nn.initializers.normal(0.02), (self.num, self.features)
        )
        return jnp.take(table, ids, axis=0)


def _check_text(text: jax.Array, context_length: int, vocab_size: int) -> None:
    if text.ndim != 2 or not jnp.issubdtype(text.dtype, jnp.integer):
        raise ValueError(
            f"text must be (B, L) integer token ids, got {text.dtype} {text.shape}"
        )
    if text.shape[1] > context_length:
        raise ValueError(
            f"text has {text.shape[1]} tokens, the model's context_length is "
            f"{context_length}"
        )
    if not isinstance(text, jax.core.Tracer) and text.size:
        lo, hi = int(np.min(text)), int(np.max(text))
        if lo < 0 or hi >= vocab_size:
            raise ValueError(
                f"token ids span [{lo}, {hi}], outside the vocabulary "
                f"[0, {vocab_size}); was the text tokenised for this model?"
            )


class CLIP(nn.Module):
    """The OpenCLIP ``CLIP`` model (ViT or ModifiedResNet image tower).

    Attributes:
      config: the architecture, e.g. from
        :func:`jaxcxai.models.clip_config.infer_config`.
    """

    config: CLIPConfig

    def setup(self):
        cfg, v, t = self.config, self.config.vision, self.config.text
        if v.is_resnet:
            self.visual = ModifiedResNet(
                v.layers, v.width, v.num_heads, cfg.embed_dim, v.image_size
            )
        else:
            if v.patch_size is None:
                raise ValueError("a ViT vision config needs patch_size")
            self.visual = VisionTransformer(
                v.image_size,
                v.patch_size,
                v.width,
                v.layers,
                v.num_heads,
                v.mlp_width,
                cfg.embed_dim,
                cfg.quick_gelu,
            )
        self.token_embedding = _Embedding(t.vocab_size, t.width)
        self.positional_embedding = self.param(
            "positional_embedding",
            nn.initializers.normal(0.01),
            (t.context_length, t.width),
        )
        self.transformer = Transformer(t.layers, t.heads, t.mlp_width, cfg.quick_gelu)
        self.ln_final = nn.LayerNorm(LN_EPS)
        self.text_projection = self.param(
            "text_projection",
            nn.initializers.normal(t.width**-0.5),
            (t.width, cfg.embed_dim),
        )
        self.logit_scale = self.param(
            "logit_scale", nn.initializers.constant(math.log(1 / 0.07)), ()
        )

    def encode_image(
        self,
        images: jax.Array,
        layers: Sequence[str] | None = None,
        normalize_output: bool = False,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Image embeddings.

        Args:
          images: (B, H, W, 3) float, normalised with ``IMAGE_MEAN``/``IMAGE_STD``
            at the config's ``image_size``.
          layers: activation names to keep (None: all).
          normalize_output: L2-normalise the embeddings.

        Returns:
          ``(emb (B, E), acts)``, acts named ``visual.<name>``.
        """
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be (B, H, W, 3), got {images.shape}")
        emb, acts = self.visual(images)
        acts = {f"visual.{k}": a for k, a in acts.items()}
        emb = normalize(emb) if normalize_output else emb
        return emb, select_layers(acts, layers)

    def encode_text(
        self,
        text: jax.Array,
        layers: Sequence[str] | None = None,
        normalize_output: bool = False,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Text embeddings, read at the end-of-text token (the largest id).

        Args:
          text: (B, L) token ids, L <= context_length, zero-padded. Padding
            after the end-of-text token does not change the result (causal
            mask), so L may be shorter than the context.
          layers: activation names to keep (None: all).
          normalize_output: L2-normalise the embeddings.

        Returns:
          ``(emb (B, E), acts)``.
        """
        t = self.config.text
        _check_text(text, t.context_length, t.vocab_size)
        length = text.shape[1]
        x = self.token_embedding(text) + self.positional_embedding[None, :length]
        causal = jnp.tril(jnp.ones((length, length), bool))
        x, outs = self.transformer(x, causal)
        acts = {f"transformer.resblocks.{i}": o for i, o in enumerate(outs)}
        x = self.ln_final(x)
        acts["ln_final"] = x
        pooled = x[jnp.arange(x.shape[0]), jnp.argmax(text, axis=-1)]
        acts["ln_final.pooled"] = pooled
        emb = pooled @ self.text_projection
        emb = normalize(emb) if normalize_output else emb
        return emb, select_layers(acts, layers)

    def __call__(
        self,
        images: jax.Array,
        text: jax.Array,
        layers: Sequence[str] | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Image-text logits ``exp(logit_scale) * <img, txt>`` of unit embeddings.

        Returns:
          ``(logits_per_image (Bi, Bt), acts)``; acts hold both towers'
          activations plus ``image_embeds`` and ``text_embeds`` (unnormalised).
        """
        img, img_acts = self.encode_image(images)
        txt, txt_acts = self.encode_text(text)
        logits = jnp.exp(self.logit_scale) * normalize(img) @ normalize(txt).T
        acts = img_acts | txt_acts | {"image_embeds": img, "text_embeds": txt}
        return logits, select_layers(acts, layers)
