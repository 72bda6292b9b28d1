"""A small CLIP-style two-tower model over frozen image and text features.

The semantic-hierarchies study (Schwalbe et al. 2026, arXiv:2603.26798)
needs a vision-language model whose image and text embeddings share one
space. Offline, no VLM weights ship in a package, so the project trains one
on SynthAerial image-caption pairs: frozen packaged features (pooled
MobileNetV2 for images, mean-pooled MiniLM for captions,
`jaxcxai.hashing.aerial.synthaerial_features`), a linear or one-hidden-layer
MLP projection head per tower, and CLIP's symmetric InfoNCE with a learned
temperature (Radford et al. 2021, "Learning Transferable Visual Models From
Natural Language Supervision", §2.3 and Fig. 3): logits = exp(t) <z_i, z_t>
over the global batch, cross-entropy over rows and columns averaged, t
clipped at log 100 as in CLIP.

Training (`heads_training.fit`) follows the repo's contract
`train_step(state, batch, key) -> (state, metrics)`, data-parallel over the
`data` axis of a `jax.sharding` mesh.

Zero-shot classification: a class is the template-averaged, normalised text
embedding of its prompts; an image goes to the class of largest cosine.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcxai.checks import check_finite

__all__ = [
    "FeatureNorm",
    "HeadsFit",
    "TwoTower",
    "encode",
    "info_nce",
    "prompt_embeddings",
    "zero_shot",
]

MAX_LOGIT_SCALE = 100.0  # CLIP clips exp(t) here


class _Head(nn.Module):
    """Linear projection, or Dense-GELU-Dense when `hidden` > 0."""

    dim: int
    hidden: int = 0

    @nn.compact
    def __call__(self, x):
        if self.hidden:
            x = nn.gelu(nn.Dense(self.hidden, name="hidden")(x))
        return nn.Dense(self.dim, name="out")(x)


def _normalize(x):
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class TwoTower(nn.Module):
    """Image and text projection heads into one unit-norm space.

    Attributes:
      dim: shared embedding width E.
      hidden: hidden width of each head (0: linear heads).
      init_temperature: initial softmax temperature (CLIP: 0.07).
    """

    dim: int = 128
    hidden: int = 0
    init_temperature: float = 0.07

    def setup(self):
        self.image_head = _Head(self.dim, self.hidden)
        self.text_head = _Head(self.dim, self.hidden)
        self.log_scale = self.param(
            "log_scale",
            nn.initializers.constant(math.log(1.0 / self.init_temperature)),
            (),
        )

    def encode_image(self, x):
        """(B, Di) standardised image features -> (B, E) unit embeddings."""
        return _normalize(self.image_head(x))

    def encode_text(self, x):
        """(B, Dt) standardised text features -> (B, E) unit embeddings."""
        return _normalize(self.text_head(x))

    def logit_scale(self):
        """exp(t), clipped to [1, 100] (CLIP)."""
        return jnp.exp(jnp.clip(self.log_scale, 0.0, math.log(MAX_LOGIT_SCALE)))

    def __call__(self, image, text):
        """Returns (z_image (B, E), z_text (B, E), logit scale ())."""
        return self.encode_image(image), self.encode_text(text), self.logit_scale()


def info_nce(z_image: jax.Array, z_text: jax.Array, scale) -> jax.Array:
    """CLIP's symmetric InfoNCE of B matched pairs (row i matches row i).

    Args:
      z_image, z_text: (B, E) unit embeddings.
      scale: logit scale exp(t) (1 / temperature).

    Returns:
      () mean of the image->text and text->image cross-entropies.
    """
    logits = scale * z_image @ z_text.T
    labels = jnp.arange(logits.shape[0])
    i2t = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    t2i = optax.softmax_cross_entropy_with_integer_labels(logits.T, labels)
    return 0.5 * (i2t.mean() + t2i.mean())


class FeatureNorm(NamedTuple):
    """Standardisation of frozen features: (x - mean) / std.

    mean (D,) per feature, std a scalar over all centred entries, so that
    near-constant features are not blown up (as DUCH standardises)."""

    mean: np.ndarray
    std: float

    @staticmethod
    def of(x) -> FeatureNorm:
        x = np.asarray(x, np.float64).reshape(-1, np.shape(x)[-1])
        mean = x.mean(0)
        return FeatureNorm(mean.astype(np.float32), float((x - mean).std()) or 1.0)

    def __call__(self, x) -> np.ndarray:
        return ((np.asarray(x, np.float32) - self.mean) / self.std).astype(np.float32)


class HeadsFit(NamedTuple):
    """A trained two-tower model.

    Attributes:
      model: the `TwoTower` module. params: its parameters.
      image_norm, text_norm: input standardisation (`FeatureNorm`).
      losses: (steps,) training InfoNCE per step.
      logit_scale: final exp(t).
    """

    model: TwoTower
    params: Any
    image_norm: FeatureNorm
    text_norm: FeatureNorm
    losses: np.ndarray
    logit_scale: float


def encode(heads: HeadsFit, x, modality: str) -> np.ndarray:
    """(..., D) frozen features -> (..., E) unit embeddings of one tower.

    Args:
      modality: "image" or "text".
    """
    if modality not in ("image", "text"):
        raise ValueError(f"modality must be 'image' or 'text', got {modality!r}")
    norm = heads.image_norm if modality == "image" else heads.text_norm
    x = np.asarray(x)
    if x.shape[-1] != norm.mean.shape[0]:
        raise ValueError(
            f"{modality} features have width {x.shape[-1]}, the heads were "
            f"trained on {norm.mean.shape[0]}"
        )
    check_finite({f"{modality} features": x})
    flat = norm(x.reshape(-1, x.shape[-1]))
    method = TwoTower.encode_image if modality == "image" else TwoTower.encode_text
    z = _apply(heads.model, method, heads.params, flat)
    return np.asarray(z).reshape(*x.shape[:-1], -1)


@functools.cache
def _encoder(model: TwoTower, method):
    """One jitted tower per (model, tower): repeated encodes reuse it."""
    return jax.jit(lambda p, v: model.apply({"params": p}, v, method=method))


def _apply(model, method, params, x):
    return _encoder(model, method)(params, x)


def prompt_embeddings(heads: HeadsFit, prompt_features) -> np.ndarray:
    """(n, T, Dt) features of T prompts per class -> (n, E) class embeddings:
    the normalised mean of the normalised prompt embeddings (CLIP's prompt
    ensembling)."""
    z = encode(heads, prompt_features, "text")
    if z.ndim != 3:
        raise ValueError(
            f"prompt_features must be (n, T, Dt), got {np.shape(prompt_features)}"
        )
    m = z.mean(1)
    return (m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)).astype(
        np.float32
    )


def zero_shot(image_emb, class_emb) -> np.ndarray:
    """(N,) zero-shot class of each image: argmax_c <z, class_emb_c>.

    Args:
      image_emb: (N, E) image embeddings. class_emb: (n, E) class embeddings.
    """
    z, c = np.asarray(image_emb, np.float32), np.asarray(class_emb, np.float32)
    if z.ndim != 2 or c.ndim != 2 or z.shape[1] != c.shape[1]:
        raise ValueError(f"need (N, E) and (n, E) embeddings, got {z.shape}, {c.shape}")
    return np.argmax(z @ c.T, axis=1).astype(np.int32)
