"""On-disk store of extracted features: the ``FeatureCache`` reader.

Holds the entry naming (``pooled_name``) and ``FeatureCache`` (reads a cache
that ``jaxcxai.features.extract`` wrote; ``jaxcxai.feature_writers`` writes
it). The cache layout is described in ``jaxcxai.features``.
"""

import json
import os
from collections.abc import Iterator
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
    def fingerprint(self) -> dict | None:
        """The fingerprint record the cache was written with (None: older)."""
        return self.index.get("fingerprint")

    @property
    def num_chunks(self) -> int:
        return len(self.index["chunks"])

    @property
    def chunk_writers(self) -> list[dict | None]:
        """Per chunk, who wrote it: ``{"process": i, "num_processes": n}``
        (None for chunks of caches written before this was recorded)."""
        writers = self.index.get("chunk_writers") or []
        return writers + [None] * (self.num_chunks - len(writers))

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
