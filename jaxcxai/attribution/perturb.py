"""Shared pieces of the sampling explainers (KernelSHAP, LIME, RISE, occlusion).

- `target_classes`: the `target` argument checked against C outputs.
- `sample_keys`: one PRNG key per explained sample, from one key or given
  per sample (so that explaining sample i alone with its key reproduces its
  row of a batched call).
- `uniform`: U[0, 1) draws at half the hashing cost of `jax.random.uniform`,
  one fused kernel, optionally in transposed layout.
- `model_outputs`, `host_outputs`: the (rows, C) outputs that are explained,
  from a jax-traceable `f` (logits, or softmax of them) or from a host
  (NumPy) function such as scikit-learn's `predict_proba`.
- `batch_score`: the explained scalar of each perturbed copy in a batch.
- `host_map`: a host function over the rows of a big array, at most
  `rows_per_call` rows per call.
- `weighted_gram`, `ridge_solve`, `weighted_ridge` (from `lime_fit`):
  ridge regression with an unpenalised intercept and sample weights, as
  scikit-learn's `Ridge(alpha).fit(X, y, sample_weight=w)` that LIME fits.
- `map_sample_chunks`: vmap over samples in chunks, sharded over a mesh.
- `pad_samples`: pads the sample axis to a multiple of a mesh's `data` axis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxcxai.attribution.core import check_key, logits_of, map_samples, resolve_target
from jaxcxai.attribution.lime_fit import ridge_solve as ridge_solve
from jaxcxai.attribution.lime_fit import weighted_gram as weighted_gram
from jaxcxai.attribution.lime_fit import weighted_ridge as weighted_ridge
from jaxcxai.parallel import DATA_AXIS

__all__ = [
    "sample_keys",
    "target_classes",
    "uniform",
    "model_outputs",
    "batch_score",
    "host_outputs",
    "host_map",
    "weighted_gram",
    "ridge_solve",
    "weighted_ridge",
    "map_sample_chunks",
    "pad_samples",
    "check_features",
]


def sample_keys(key: Any, n: int) -> jax.Array:
    """(n,) typed keys: `split(key, n)` for one key, or the n keys given.

    Raises:
      ValueError: naming `key` when it is neither one key nor n keys.
    """
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape == ():
            return jax.random.split(key, n)
        if key.shape == (n,):
            return key
        raise ValueError(
            f"key must be one PRNG key or ({n},) keys, got shape {key.shape}"
        )
    arr = np.asarray(key)
    if arr.ndim == 2 and arr.shape == (n, 2) and arr.dtype == np.uint32:
        return jax.random.wrap_key_data(jnp.asarray(arr))
    check_key("key", key)
    return jax.random.split(jax.random.wrap_key_data(jnp.asarray(arr)), n)


def uniform(
    key: jax.Array,
    shape: tuple[int, ...],
    dtype: Any = jnp.float32,
    *,
    transpose: bool = False,
) -> jax.Array:
    """U[0, 1) draws, both words of every threefry block used.

    Partitionable threefry (jax's default) spends one 2x32 block per 32-bit
    draw of `jax.random.uniform`. For a threefry key, draw i of `size` is
    word 0 of block i (i < half) or word 1 of block i - half, block k
    hashing the counters (k, k + half) with the key's data: the stream of
    `jax.extend.random.threefry_2x32(key_data, arange(2 half))`, bit for
    bit, at half the hashing. The hash is unrolled (jax's CPU lowering is a
    rolled loop that stores its state every 4 rounds) and evaluated from
    each draw's index: one fused kernel, ~3x faster on XLA:CPU. Other key
    implementations fall back to `jax.random.uniform`.

    Args:
      key: one PRNG key; shape: of the draws; dtype: floating result dtype.
      transpose: the draws with their axes reversed (`u.T` in 2-D),
        generated in that layout (the same numbers).
    """
    size = int(np.prod(shape))
    impl = (
        jax.random.key_impl(key)
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        else None
    )
    if size < 2 or "threefry" not in str(impl):
        u = jax.random.uniform(key, shape, dtype)
        return jnp.transpose(u) if transpose else u
    half, r = np.uint32(-(-size // 2)), len(shape)
    out_shape = tuple(shape[::-1]) if transpose else tuple(shape)
    strides = np.cumprod((1,) + tuple(shape[::-1]))[:-1][::-1]  # C order
    i = sum(  # each draw's index in the C-order stream
        jax.lax.broadcasted_iota(jnp.uint32, out_shape, r - 1 - a if transpose else a)
        * np.uint32(st)
        for a, st in enumerate(strides)
    )
    upper = i >= half
    block = jnp.where(upper, i - half, i)
    k = jax.random.key_data(key)
    w0, w1 = _threefry2x32(k[0], k[1], block, block + half)
    bits = jnp.where(upper, w1, w0)
    # The top 24 bits as a float in [0, 1): exact in float32.
    u = (bits >> 8).astype(jnp.float32) * (1.0 / (1 << 24))
    return u.astype(dtype)


def _threefry2x32(k0, k1, x0, x1):
    """Threefry-2x32, 20 rounds (Salmon et al. 2011), unrolled (jax's words)."""
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for r in range(5):
        for rot in rotations[r % 2]:
            x0 = x0 + x1
            x1 = (x1 << np.uint32(rot)) | (x1 >> np.uint32(32 - rot))
            x1 = x0 ^ x1
        x0 = x0 + ks[(r + 1) % 3]
        x1 = x1 + ks[(r + 2) % 3] + np.uint32(r + 1)
    return x0, x1


def model_outputs(f: Callable, z: jax.Array, softmax: bool) -> jax.Array:
    """`f(z)` as (rows, C): its logits (or softmax of them); 1-D -> (rows, 1)."""
    out = logits_of(f(z))
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2 or out.shape[0] != z.shape[0]:
        raise ValueError(f"f must return (rows, C) outputs, got {out.shape}")
    return jax.nn.softmax(out, axis=-1) if softmax else out


def batch_score(
    f: Callable,
    batch: jax.Array,
    t: jax.Array,
    target_fn: Callable | None,
    softmax: bool,
) -> jax.Array:
    """The explained scalar of every row of a batch of perturbed copies: (B,).

    Output `t` of `f(batch)` (after a softmax if asked), or
    `target_fn(f(batch))` for a custom score (then `t` is ignored).
    """
    outputs = f(batch)
    if target_fn is not None:
        return jnp.reshape(target_fn(outputs), (batch.shape[0],))
    return model_outputs(lambda _: outputs, batch, softmax)[:, t]


def host_outputs(f: Callable, z: np.ndarray) -> np.ndarray:
    """A host function's outputs as a (rows, C) float NumPy array."""
    out = np.asarray(logits_of(f(z)))
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2 or out.shape[0] != z.shape[0]:
        raise ValueError(f"f must return (rows, C) outputs, got {out.shape}")
    return out.astype(np.result_type(out.dtype, np.float32))


def host_map(fn: Callable, rows: np.ndarray, rows_per_call: int) -> np.ndarray:
    """`fn` over the leading axis of `rows`, `rows_per_call` rows at a time."""
    if rows_per_call < 1:
        raise ValueError(f"rows_per_call must be >= 1, got {rows_per_call}")
    parts = [
        fn(rows[i : i + rows_per_call]) for i in range(0, len(rows), rows_per_call)
    ]
    return np.concatenate(parts, axis=0)


def map_sample_chunks(
    fn: Callable, args: tuple, batch_size: int, mesh: Mesh | None
) -> Any:
    """`vmap(fn)(*args)` over samples, `batch_size` samples per loop step.

    Each step's batch is split over the mesh's `data` axis (`map_samples`);
    the batch is rounded up to a multiple of the shard count and the tail
    padded with copies of sample 0 (dropped from the result).
    """
    n = args[0].shape[0]
    shards = 1 if mesh is None else mesh.shape[DATA_AXIS]
    b = -(-min(int(batch_size), n) // shards) * shards
    steps = -(-n // b)
    pad = steps * b - n

    def chunks(a):
        if pad:
            a = jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)], axis=0)
        return a.reshape((steps, b) + a.shape[1:])

    split = jax.tree.map(chunks, args)
    if steps == 1:
        out = map_samples(fn, *jax.tree.map(lambda a: a[0], split), mesh=mesh)
        return jax.tree.map(lambda o: o[:n], out)
    out = jax.lax.map(lambda c: map_samples(fn, *c, mesh=mesh), split)
    return jax.tree.map(lambda o: o.reshape((steps * b,) + o.shape[2:])[:n], out)


def pad_samples(n: int, mesh: Mesh | None) -> int:
    """Rows to append so that n divides over the mesh's `data` axis."""
    return 0 if mesh is None else (-n) % mesh.shape[DATA_AXIS]


def check_features(name: str, x: Any, d: int | None = None) -> np.ndarray | jax.Array:
    """A 2-D (rows, d) floating-point array with at least one row.

    Raises:
      ValueError: naming `name` for a wrong rank, dtype, empty array or
        feature count.
    """
    x = x if isinstance(x, jax.Array) else np.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (rows, features), got {x.shape}")
    if d is not None and x.shape[1] != d:
        raise ValueError(f"{name} must have {d} features, got {x.shape[1]}")
    return x


def target_classes(target: Any, n: int, num_classes: int) -> Any:
    """None (predicted class, resolved later), "all", or (N,) int32 classes.

    Raises:
      ValueError: naming `target` (wrong type, shape or out of [0, C)).
    """
    if target is None:
        return None
    if isinstance(target, str):
        if target != "all":
            raise ValueError(
                f'target must be None, an int, (N,) ints or "all", got {target!r}'
            )
        return target
    stub = lambda z: jnp.zeros((z.shape[0], num_classes))
    return resolve_target(stub, jax.ShapeDtypeStruct((n, 1), jnp.float32), target)
