"""The all-MiniLM-L6-v2 network as a flax.linen BERT, and its sentence poolings.

``MiniLM`` returns ``(pooled, hidden)`` with named hidden states; ``POOLINGS``
maps a pooling name (``"mean"``, ``"duch"``) to its function. Weight loading
is in ``minilm_weights``, the tokenising encoder in ``minilm``.
"""

import math

import jax
import jax.numpy as jnp
from flax import linen as nn


def _mean_pool(hidden, mask):
    """sentence-transformers mean pooling + L2 normalisation: (B, L, E) -> (B, E)."""
    h = list(hidden.values())[-1]  # the last layer (dict keeps layer order)
    m = mask[..., None].astype(h.dtype)
    # Same clamps as sentence-transformers (counts >= 1e-9, norm >= 1e-12).
    mean = (h * m).sum(1) / jnp.maximum(m.sum(1), 1e-9)
    return mean / jnp.maximum(jnp.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)


def _duch_pool(hidden, mask):
    """DUCH pooling (the DUCH reference's `captions_embed.py`): sum of the last
    four hidden states, then a mean over ALL positions, padding included (the
    reference ignores the mask)."""
    del mask
    n = len(hidden) - 1  # hidden holds the embeddings plus one entry per layer
    if n < 4:
        raise ValueError(f"DUCH pooling needs >= 4 layers, model has {n}")
    return sum(hidden[f"layer_{i}"] for i in range(n - 4, n)).mean(1)


POOLINGS = {"mean": _mean_pool, "duch": _duch_pool}


class _BertLayer(nn.Module):
    """One post-LayerNorm BERT encoder layer."""

    num_heads: int
    intermediate_size: int
    eps: float

    @nn.compact
    def __call__(self, x, bias):
        b, length, e = x.shape
        d = e // self.num_heads
        q, k, v = (
            nn.Dense(e, name=n)(x).reshape(b, length, self.num_heads, d)
            for n in ("query", "key", "value")
        )
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d) + bias
        ctx = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
        ctx = nn.Dense(e, name="attention_output")(ctx.reshape(b, length, e))
        x = nn.LayerNorm(self.eps, name="attention_LayerNorm")(x + ctx)
        ff = nn.Dense(self.intermediate_size, name="intermediate")(x)
        ff = nn.Dense(e, name="output")(jax.nn.gelu(ff, approximate=False))
        return nn.LayerNorm(self.eps, name="output_LayerNorm")(x + ff)


class MiniLM(nn.Module):
    """BERT encoder (all-MiniLM-L6-v2 sizes by default) with named hidden states.

    Attributes:
        pooling: a key of ``POOLINGS``: ``"mean"`` (masked mean + L2 norm, the
            sentence-transformers output) or ``"duch"`` (the DUCH reference's
            ``captions_embed.py``: sum of the last four hidden states, mean
            over all positions).
    """

    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_position: int = 512
    type_vocab_size: int = 2
    eps: float = 1e-12
    pooling: str = "mean"

    @nn.compact
    def __call__(self, input_ids, attention_mask):
        """Encodes token ids.

        Args:
            input_ids: (B, L) int token ids.
            attention_mask: (B, L) 1 for real tokens, 0 for padding.

        Returns:
            ``(pooled, hidden)``: pooled (B, E) per ``pooling``, and hidden, a dict
            ``{"embeddings": (B, L, E), "layer_0": ..., "layer_{n-1}": ...}``.
        """
        if self.pooling not in POOLINGS:
            raise ValueError(
                f"unknown pooling {self.pooling!r}; valid: {list(POOLINGS)}"
            )
        if input_ids.shape != attention_mask.shape or input_ids.ndim != 2:
            raise ValueError(
                f"input_ids {input_ids.shape} and attention_mask "
                f"{attention_mask.shape} must both be (B, L)"
            )
        if input_ids.shape[1] > self.max_position:
            raise ValueError(
                f"sequence length {input_ids.shape[1]} > max_position {self.max_position}"
            )
        e = self.hidden_size
        positions = jnp.arange(input_ids.shape[1])[None]
        x = (
            nn.Embed(self.vocab_size, e, name="word_embeddings")(input_ids)
            + nn.Embed(self.max_position, e, name="position_embeddings")(positions)
            # Single-segment input: token type 0 everywhere.
            + nn.Embed(self.type_vocab_size, e, name="token_type_embeddings")(
                jnp.zeros_like(input_ids)
            )
        )
        x = nn.LayerNorm(self.eps, name="embeddings_LayerNorm")(x)
        hidden = {"embeddings": x}
        # Padding keys get a large negative bias so softmax gives them ~0 weight.
        bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0, -1e9).astype(
            x.dtype
        )
        for i in range(self.num_layers):
            x = _BertLayer(
                self.num_heads, self.intermediate_size, self.eps, name=f"layer_{i}"
            )(x, bias)
            hidden[f"layer_{i}"] = x
        return POOLINGS[self.pooling](hidden, attention_mask), hidden
