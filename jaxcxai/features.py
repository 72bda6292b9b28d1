"""Backbone activations over a dataset: sharded over devices, cached in chunks.

``extract`` runs a backbone ``apply_fn(images) -> (logits, {layer: act})`` over
a dataset with the batch split over the ``data`` axis of a mesh, and returns
(or caches) per requested layer the activations, stored as float16 or float32,
and their pooled features (mean over every axis between batch and channels,
i.e. H and W for (N, H, W, C) maps; always float32).

Entry names: ``layer`` for activations and ``pooled_name(layer)`` =
``"layer/pooled"`` for pooled features.

Cache layout (``cache_dir``): ``index.json`` plus one ``.npy`` per entry and
chunk. Chunk files are written to a temporary name and renamed, and the index
is rewritten (atomically) only after all files of a chunk exist, so an
interrupted run leaves only whole chunks; re-running resumes after the last
chunk the index lists. Single-host: outputs are gathered to this host.
"""

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxcxai import parallel

_FORMAT = "jaxcxai.features/1"
_INDEX = "index.json"


def pooled_name(layer: str) -> str:
    """Entry name of the pooled features of ``layer``."""
    return f"{layer}/pooled"


class FeatureCache:
    """Reader of a feature cache written by ``extract``.

    ``cache[name]`` loads one entry as a single (N, ...) array; ``iter_chunks``
    streams it chunk by chunk as read-only memory maps.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        index = self.path / _INDEX
        if not index.is_file():
            raise FileNotFoundError(f"no feature cache index at {index}")
        self.index = json.loads(index.read_text())
        if self.index.get("format") != _FORMAT:
            raise ValueError(f"{index} is not a {_FORMAT} index")

    @property
    def names(self) -> list[str]:
        """Entry names (activations and pooled features)."""
        return list(self.index["entries"])

    @property
    def layers(self) -> list[str]:
        return list(self.index["layers"])

    @property
    def complete(self) -> bool:
        return bool(self.index["complete"])

    @property
    def num_chunks(self) -> int:
        return len(self.index["chunks"])

    def __len__(self) -> int:
        return int(sum(self.index["chunks"]))

    def __contains__(self, name: str) -> bool:
        return name in self.index["entries"]

    def _entry(self, name: str) -> dict:
        if name not in self.index["entries"]:
            raise KeyError(f"no entry {name!r} in {self.path}; have {self.names}")
        return self.index["entries"][name]

    def shape(self, name: str) -> tuple[int, ...]:
        """Full shape (N, ...) of an entry."""
        return (len(self), *self._entry(name)["shape"])

    def dtype(self, name: str) -> np.dtype:
        return np.dtype(self._entry(name)["dtype"])

    def chunk_file(self, name: str, k: int) -> Path:
        return self.path / f"{self._entry(name)['file']}.{k:05d}.npy"

    def chunk(self, name: str, k: int) -> np.ndarray:
        """Chunk ``k`` of an entry as a read-only memory map, (chunk_len, ...)."""
        return np.load(self.chunk_file(name, k), mmap_mode="r")

    def iter_chunks(self, name: str) -> Iterator[np.ndarray]:
        """Yields the chunks of an entry in order (memory-mapped)."""
        for k in range(self.num_chunks):
            yield self.chunk(name, k)

    def __getitem__(self, name: str) -> np.ndarray:
        parts = list(self.iter_chunks(name))
        if not parts:
            return np.zeros(self.shape(name), self.dtype(name))
        return np.concatenate(parts)

    def pooled(self, layer: str) -> np.ndarray:
        return self[pooled_name(layer)]


def _atomic_write(path: Path, write: Callable) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


class _CacheWriter:
    """Appends whole chunks to a cache directory; resumes an existing one."""

    def __init__(self, path: Path, config: dict):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        for tmp in self.path.glob("*.tmp"):
            tmp.unlink()  # left by an interrupted write; never listed in the index
        self.index = {"format": _FORMAT, **config, "entries": {}, "chunks": []}
        self.index["complete"] = False
        if (self.path / _INDEX).is_file():
            self._resume(FeatureCache(self.path))

    def _resume(self, old: FeatureCache) -> None:
        for key, value in self.index.items():
            if key in ("entries", "chunks", "complete", "num_examples"):
                continue
            if old.index.get(key) != value:
                raise ValueError(
                    f"feature cache {self.path} was written with {key}="
                    f"{old.index.get(key)!r}, this call has {value!r}; use another "
                    "cache_dir or delete it"
                )
        n_old, n_new = old.index.get("num_examples"), self.index["num_examples"]
        if n_old is not None and n_new is not None and n_old != n_new:
            raise ValueError(
                f"cache {self.path} holds {n_old} examples, input has {n_new}"
            )
        self.index["entries"] = old.index["entries"]
        # Keep chunks up to the first one with a missing or truncated file.
        for k, count in enumerate(old.index["chunks"]):
            try:
                ok = all(old.chunk(n, k).shape[0] == count for n in old.names)
            except (OSError, ValueError):
                ok = False
            if not ok:
                break
            self.index["chunks"].append(count)
        if len(self.index["chunks"]) == len(old.index["chunks"]):
            self.index["complete"] = old.complete

    @property
    def num_done(self) -> int:
        return int(sum(self.index["chunks"]))

    def write(self, arrays: dict[str, np.ndarray]) -> None:
        entries = self.index["entries"]
        if not entries:
            for j, (name, a) in enumerate(arrays.items()):
                stem = f"e{j}-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)
                entries[name] = {
                    "file": stem,
                    "shape": a.shape[1:],
                    "dtype": a.dtype.name,
                }
        k = len(self.index["chunks"])
        for name, a in arrays.items():
            spec = entries[name]
            if (
                list(a.shape[1:]) != list(spec["shape"])
                or a.dtype.name != spec["dtype"]
            ):
                raise ValueError(
                    f"{name}: got {a.shape[1:]} {a.dtype}, cache {self.path} has "
                    f"{tuple(spec['shape'])} {spec['dtype']}"
                )
            path = self.path / f"{spec['file']}.{k:05d}.npy"
            _atomic_write(path, lambda f, a=a: np.save(f, a))
        self.index["chunks"].append(len(next(iter(arrays.values()))))
        self._write_index()

    def finish(self) -> FeatureCache:
        self.index["complete"] = True
        self._write_index()
        return FeatureCache(self.path)

    def _write_index(self) -> None:
        text = json.dumps(self.index, indent=1, default=list).encode()
        _atomic_write(self.path / _INDEX, lambda f: f.write(text))


class _MemoryWriter:
    """Same interface as ``_CacheWriter``, keeping chunks in memory."""

    num_done = 0

    def __init__(self):
        self.parts: dict[str, list[np.ndarray]] = {}

    def write(self, arrays):
        for name, a in arrays.items():
            self.parts.setdefault(name, []).append(a)

    def finish(self) -> dict[str, np.ndarray]:
        return {name: np.concatenate(p) for name, p in self.parts.items()}


def _check_batch(x, what: str) -> np.ndarray:
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) != 4:
        raise ValueError(
            f"{what} must be a 4-D batch of images (N, H, W, C); got {shape}"
        )
    return np.asarray(x)


def _array_batches(images, start: int, batch_size: int) -> Iterator[np.ndarray]:
    for i in range(start, images.shape[0], batch_size):
        yield np.asarray(images[i : i + batch_size])


def _iter_batches(
    batches: Iterable, start: int, batch_size: int
) -> Iterator[np.ndarray]:
    """Re-cuts an iterable of batches into batch_size pieces, skipping ``start``."""
    buf, n, skip, trailing = [], 0, start, None
    for k, b in enumerate(batches):
        b = _check_batch(b, f"batch {k} of the image iterable")
        if trailing is None:
            trailing = b.shape[1:]
        elif b.shape[1:] != trailing:
            raise ValueError(
                f"batch {k} has example shape {b.shape[1:]}, expected {trailing}"
            )
        if skip:  # already cached by an earlier run: read but not recomputed
            b, skip = b[skip:], max(0, skip - len(b))
        buf.append(b)
        n += len(b)
        while n >= batch_size:
            cat = np.concatenate(buf)
            yield cat[:batch_size]
            buf, n = [cat[batch_size:]], n - batch_size
    if n:
        yield np.concatenate(buf)


def _make_step(apply_fn, layers, dtype, pool: bool, keep_acts: bool):
    def step(x):
        logits, acts = apply_fn(x)
        out = {}
        for layer in layers:
            if layer in acts:
                a = acts[layer]
            elif layer == "logits":
                a = logits
            else:
                raise KeyError(
                    f"layer {layer!r} not returned by apply_fn; have {list(acts)}"
                )
            if keep_acts:
                out[layer] = a.astype(dtype)
            if pool:
                axes = tuple(range(1, a.ndim - 1))
                out[pooled_name(layer)] = a.astype(jnp.float32).mean(axis=axes)
        return out

    return jax.jit(step)


def extract(
    apply_fn: Callable,
    images,
    layers: Iterable[str],
    *,
    batch_size: int,
    mesh: jax.sharding.Mesh | None = None,
    dtype=np.float16,
    pool: bool = True,
    keep_acts: bool = True,
    cache_dir: str | os.PathLike | None = None,
    chunk_size: int | None = None,
    progress: bool = True,
) -> "dict[str, np.ndarray] | FeatureCache":
    """Runs ``apply_fn`` over a dataset and collects the requested layers.

    Args:
        apply_fn: ``images -> (logits, {layer: act})`` with variables closed over;
            it is jitted here. ``"logits"`` may be requested as a layer.
        images: (N, H, W, C) array-like (numpy, memmap, h5py: sliced lazily), or
            an iterable of (b, H, W, C) batches of any size.
        layers: names of the activations to keep.
        batch_size: global batch per call; a multiple of the mesh's ``data`` size.
            The last partial batch is zero-padded to a multiple of the device
            count and the padding dropped.
        mesh: mesh with a ``data`` axis (default ``parallel.make_mesh()``).
        dtype: storage dtype of activations, float16 or float32.
        pool: also return ``pooled_name(layer)``: float32 means over the axes
            between batch and channels, (N, C).
        keep_acts: return the full activations (False keeps only pooled ones).
        cache_dir: if given, write chunks there, resume a partial cache, and
            return a ``FeatureCache``; a complete cache returns at once.
        chunk_size: examples per cache chunk (a multiple of ``batch_size``;
            default about 1024).
        progress: show a tqdm bar.

    Returns:
        ``{entry: (N, ...) array}``, or a ``FeatureCache`` when ``cache_dir``.

    Raises:
        ValueError: images not 4-D, bad dtype/batch/chunk size, or a cache
            written with other settings. KeyError: unknown layer.
    """
    layers = [layers] if isinstance(layers, str) else list(layers)
    dtype = np.dtype(dtype)
    if dtype not in (np.float16, np.float32):
        raise ValueError(f"dtype must be float16 or float32, got {dtype}")
    if not layers or not (pool or keep_acts):
        raise ValueError("nothing to extract: give layers and pool or keep_acts")
    mesh = parallel.make_mesh() if mesh is None else mesh
    n_dev = mesh.shape[parallel.DATA_AXIS]
    parallel.check_batch_size(batch_size, mesh)
    chunk_size = chunk_size or batch_size * max(1, 1024 // batch_size)
    if chunk_size % batch_size:
        raise ValueError(
            f"chunk_size={chunk_size} is not a multiple of batch_size={batch_size}"
        )
    if hasattr(images, "shape") and hasattr(images, "__getitem__"):
        _check_batch(images, "images")
        num, batches = images.shape[0], _array_batches
    else:
        num, batches = None, _iter_batches
    config = {
        "layers": layers,
        "dtype": dtype.name,
        "pool": pool,
        "keep_acts": keep_acts,
        "chunk_size": chunk_size,
        "num_examples": num,
    }
    writer = _CacheWriter(Path(cache_dir), config) if cache_dir else _MemoryWriter()
    if cache_dir and writer.index["complete"]:
        cache = FeatureCache(cache_dir)
        if num is not None and len(cache) != num:
            raise ValueError(
                f"cache {cache_dir} holds {len(cache)} examples, input has {num}"
            )
        return cache
    step = _make_step(apply_fn, layers, dtype, pool, keep_acts)
    sharding = parallel.data_sharding(mesh)

    def outputs() -> Iterator[dict[str, np.ndarray]]:
        # Dispatch batch i+1 before fetching batch i so host I/O overlaps compute.
        pending = None
        for x in batches(images, writer.num_done, batch_size):
            b = len(x)
            padded = -(-b // n_dev) * n_dev
            if padded != b:
                x = np.concatenate([x, np.zeros((padded - b, *x.shape[1:]), x.dtype)])
            with jax.set_mesh(mesh):
                out = step(jax.device_put(x, sharding))
            if pending is not None:
                yield {
                    k: v[: pending[1]] for k, v in jax.device_get(pending[0]).items()
                }
            pending = (out, b)
        if pending is not None:
            yield {k: v[: pending[1]] for k, v in jax.device_get(pending[0]).items()}

    bar = tqdm(total=num, initial=writer.num_done, unit="img", disable=not progress)
    chunk, in_chunk, total = [], 0, writer.num_done
    for out in outputs():
        n = len(next(iter(out.values())))
        chunk.append(out)
        bar.update(n)
        in_chunk, total = in_chunk + n, total + n
        if in_chunk == chunk_size:
            writer.write({k: np.concatenate([c[k] for c in chunk]) for k in out})
            chunk, in_chunk = [], 0
    if chunk:
        writer.write({k: np.concatenate([c[k] for c in chunk]) for k in chunk[0]})
    bar.close()
    if total == 0:
        raise ValueError("no images to extract features from")
    return writer.finish()
