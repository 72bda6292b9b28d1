"""Hamming codes and label relevance: +-1 code packing, Hamming distances.

`hamming_distance` is the jit-able JAX form (one matrix product); the NumPy
helpers pack codes and multi-hot labels into uint64 words so that distances
are XOR + popcount and relevance (L_q . L_j > 0) is AND != 0, one query chunk
at a time (see `evaluation`).
"""

import jax
import jax.numpy as jnp
import numpy as np


def hamming_distance(query_codes: jax.Array, db_codes: jax.Array) -> jax.Array:
    """Hamming distances of +-1 codes via one matrix product: (b - Q D^T) / 2.

    Exact: the products are integers <= b, accumulated in float32 (exact up to
    2**24). Works under `jax.jit` and on sharded inputs.

    Args:
      query_codes: (Q, b) +-1 codes, any real dtype.
      db_codes: (N, b) +-1 codes.

    Returns:
      (Q, N) int32 distances in [0, b].
    """
    if query_codes.shape[-1] != db_codes.shape[-1]:
        raise ValueError(
            f"Code lengths differ: queries {query_codes.shape}, db {db_codes.shape}."
        )
    nbits = query_codes.shape[-1]
    dots = jnp.matmul(
        jnp.asarray(query_codes, jnp.float32),
        jnp.asarray(db_codes, jnp.float32).T,
        preferred_element_type=jnp.float32,
    )
    return ((nbits - dots) * 0.5).astype(jnp.int32)


def pack_codes(codes, name: str = "codes") -> np.ndarray:
    """Packs +-1 codes (N, b) into (N, ceil(b/64)) uint64 words (bit = code > 0)."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"{name} must be (num_items, nbits); got {codes.shape}.")
    if not np.all(np.abs(codes) == 1):
        raise ValueError(
            f"{name} must contain only -1 and +1 (binarise with "
            "np.where(x >= 0, 1, -1)); got other values."
        )
    return _pack_bool(codes > 0)


def _pack_bool(bits: np.ndarray) -> np.ndarray:
    packed = np.packbits(bits, axis=1, bitorder="little")
    pad = (-packed.shape[1]) % 8
    packed = np.pad(packed, ((0, 0), (0, pad)))
    return np.ascontiguousarray(packed).view(np.uint64)


def _pack_labels(labels, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(
            f"{name} must be multi-hot (num_items, num_classes); got {labels.shape}."
        )
    if np.any(labels < 0):
        raise ValueError(f"{name} must be non-negative (multi-hot).")
    return _pack_bool(labels != 0)


def _packed_hamming(q: np.ndarray, d: np.ndarray, nbits: int) -> np.ndarray:
    """(Qc, N) distances of packed codes by XOR + popcount, uint8 or uint16."""
    out = np.bitwise_count(q[:, None, 0] ^ d[None, :, 0])
    if nbits > 255:
        out = out.astype(np.uint16)
    for w in range(1, q.shape[1]):
        out += np.bitwise_count(q[:, None, w] ^ d[None, :, w])
    return out


def _packed_relevance(q: np.ndarray, d: np.ndarray) -> np.ndarray:
    rel = (q[:, None, 0] & d[None, :, 0]) != 0
    for w in range(1, q.shape[1]):
        rel |= (q[:, None, w] & d[None, :, w]) != 0
    return rel


def relevance(query_labels, db_labels) -> np.ndarray:
    """(Q, N) bool: query and item share at least one label (L_q . L_j > 0)."""
    return _packed_relevance(
        _pack_labels(query_labels, "query_labels"), _pack_labels(db_labels, "db_labels")
    )
