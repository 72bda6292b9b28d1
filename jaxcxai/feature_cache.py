"""On-disk store of extracted features: the ``FeatureCache`` reader and writers.

Holds the entry naming (``pooled_name``), ``FeatureCache`` (reads a cache that
``jaxcxai.features.extract`` wrote), ``_CacheWriter`` (appends whole chunks
atomically and resumes a partial cache) and ``_MemoryWriter`` (the same
interface, in memory). The cache layout is described in ``jaxcxai.features``.
"""

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

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
