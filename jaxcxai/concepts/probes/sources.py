"""Chunk sources for the bulk Net2Vec fit (`bulk`).

A source is called once per epoch and yields chunks (acts (L, n, h, w, C),
masks (n, K, H, W), weights (n, K) or None): `array_source` over in-memory or
memory-mapped arrays, `cache_source` over a `FeatureCache`, one cache chunk at
a time.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

__all__ = ["Chunk", "array_source", "cache_source"]


# (acts (L, n, h, w, C), masks (n, K, H, W), weights (n, K) or None)
Chunk = tuple[np.ndarray, np.ndarray, np.ndarray | None]


def array_source(
    acts: np.ndarray | Mapping[str, np.ndarray],
    masks: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    chunk_size: int | None = None,
    shuffle_seed: int | None = 0,
) -> Callable[..., Iterator[Chunk]]:
    """A chunk source over in-memory (or memory-mapped) arrays.

    Args:
      acts: (N, h, w, C) array, or {layer: (N, h, w, C)}.
      masks: (N, K, H, W) labels; weights: optional (N, K).
      chunk_size: examples per chunk (default: all N at once).
      shuffle_seed: examples are permuted per epoch with this seed (None: no
        shuffling); the permutation is shared by all layers and runs.

    Returns:
      `source(epoch, layers=None)` yielding (acts (L, n, ...), masks, weights);
      `layers` picks (and stacks) named layers from a mapping.
    """
    n = masks.shape[0]
    chunk_size = n if chunk_size is None else chunk_size

    def source(epoch: int, layers: Sequence[str] | None = None) -> Iterator[Chunk]:
        order = np.arange(n)
        if shuffle_seed is not None:
            order = np.random.default_rng([shuffle_seed, epoch]).permutation(n)
        for start in range(0, n, chunk_size):
            idx = order[start : start + chunk_size]
            if isinstance(acts, Mapping):
                names = list(acts) if layers is None else layers
                a = np.stack([np.asarray(acts[name][idx]) for name in names])
            else:
                a = np.asarray(acts[idx])[None]
            yield a, masks[idx], None if weights is None else weights[idx]

    return source


def cache_source(
    cache,
    masks: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    shuffle_seed: int | None = 0,
) -> Callable[..., Iterator[Chunk]]:
    """A chunk source over a `jaxcxai.features.FeatureCache`, chunk by chunk.

    Only one cache chunk of the requested layers is read (memory-mapped) at a
    time. Per epoch the chunk order and the examples inside each chunk are
    permuted with `shuffle_seed` (None: file order).

    Args:
      cache: a `FeatureCache` whose layer entries are (N, h, w, C).
      masks: (N, K, H, W) labels aligned with the cache's examples.
      weights: optional (N, K).
    """
    sizes = list(cache.index["chunks"])
    if sum(sizes) != masks.shape[0]:
        raise ValueError(f"cache has {sum(sizes)} examples but masks {masks.shape[0]}")
    starts = np.cumsum([0] + sizes[:-1])

    def source(epoch: int, layers: Sequence[str]) -> Iterator[Chunk]:
        rng = (
            None
            if shuffle_seed is None
            else np.random.default_rng([shuffle_seed, epoch])
        )
        order = range(len(sizes)) if rng is None else rng.permutation(len(sizes))
        for k in order:
            perm = np.arange(sizes[k]) if rng is None else rng.permutation(sizes[k])
            idx = starts[k] + perm
            a = np.stack([np.asarray(cache.chunk(name, k))[perm] for name in layers])
            yield a, masks[idx], None if weights is None else weights[idx]

    return source
