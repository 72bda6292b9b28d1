"""Writers of the on-disk feature cache (``jaxcxai.feature_cache`` reads it).

``_CacheWriter`` appends whole chunks atomically and resumes a partial
cache; ``_MemoryWriter`` has the same interface, in memory; ``_Hosts`` is
the group of processes writing together. ``jaxcxai.features.extract``
drives them.

Resume identity: the index records the extraction settings and the caller's
fingerprint (``jaxcxai.checks``: backbone weights, data spec, seed);
resuming with any of them changed raises ``FingerprintError`` naming the field,
so a cache never mixes rows of two models. On opening, the writer deletes what
a killed run left behind: temporary files and chunk files the index does not
list.

Several hosts: the writer takes the group of processes writing together
(``_Hosts``; one process by default). Every host holds every chunk (the
extraction gathers them), chunk ``k`` is written by host ``k % count``, and
process 0 alone cleans up, writes the index and lists a chunk only after a
barrier that follows its files. The files are the same whatever the host
count, so a cache started by N hosts resumes on M; the index's
``chunk_writers`` records which host (of how many) wrote each chunk.
"""

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from jaxcxai.atomic_files import atomic_write, is_temporary
from jaxcxai.checks import check_fingerprint, fingerprint_record
from jaxcxai.feature_cache import _FORMAT, _INDEX, FeatureCache

_CHUNK_FILE = re.compile(r"^e\d+-.*\.(\d{5})\.npy$")
_SETTINGS = ("layers", "dtype", "pool", "keep_acts", "chunk_size")


class _Hosts:
    """The processes writing one cache together; this default is one process.

    ``jaxcxai.features`` passes a subclass over ``jax.distributed`` (this
    module stays free of JAX).

    Attributes:
      index: this process's index in ``[0, count)``.
      count: number of processes.
    """

    index = 0
    count = 1

    def sync(self, name: str) -> None:
        """Returns once every process has called ``sync(name)``."""

    def allgather(self, values: Sequence[int]) -> np.ndarray:
        """(count, len(values)) int64: every process's ``values``."""
        return np.asarray([values], np.int64)


class _CacheWriter:
    """Appends whole chunks to a cache directory; resumes an existing one.

    With several ``hosts`` every host calls every method with the same
    arrays; chunk ``k``'s files are written by host ``k % hosts.count``, the
    index by process 0 after a barrier (the module docstring).

    Args:
      path: the cache directory (the same shared directory on every host).
      config: the extraction settings (`_SETTINGS` and ``num_examples``).
      fingerprint: what produced the activations (weights, data, seed).
      hosts: the writing processes (default: this process alone).

    Raises:
      FingerprintError: the cache was written with other settings or inputs.
      ValueError: the input's size differs from the cache's, or the hosts
        do not see the same cache (``path`` not shared).
    """

    def __init__(
        self,
        path: Path,
        config: dict,
        fingerprint: Mapping,
        hosts: _Hosts | None = None,
    ):
        self.path = Path(path)
        self.hosts = hosts or _Hosts()
        self.path.mkdir(parents=True, exist_ok=True)
        self.index = {"format": _FORMAT, **config, "entries": {}, "chunks": []}
        self.index["fingerprint"] = fingerprint_record(fingerprint)
        self.index["chunk_writers"] = []
        self.index["complete"] = False
        if (self.path / _INDEX).is_file():
            self._resume(FeatureCache(self.path), fingerprint)
        if self.hosts.count > 1:
            self._check_hosts_agree()
        if self.hosts.index == 0:
            self._remove_orphans()
        # No host writes a chunk before process 0 has removed the orphans
        # (its next chunk's files would be among them).
        self.hosts.sync(f"feature cache {self.path}: opened")

    def _check_hosts_agree(self) -> None:
        """Raises unless every host resumes from the same cache state."""
        mine = [len(self.index["chunks"]), int(self.index["complete"])]
        seen = self.hosts.allgather(mine)
        if (seen != seen[0]).any():
            raise ValueError(
                f"the hosts see different caches at {self.path} (chunks, "
                f"complete per host: {seen.tolist()}); cache_dir must be one "
                "directory shared by every host"
            )

    def _resume(self, old: FeatureCache, fingerprint: Mapping) -> None:
        # The settings are checked as the field "extraction" of the record.
        recorded = old.fingerprint
        if recorded is not None:
            settings = {k: old.index.get(k) for k in _SETTINGS}
            recorded = {"extraction": fingerprint_record(settings), **recorded}
        check_fingerprint(
            recorded,
            {"extraction": {k: self.index[k] for k in _SETTINGS}, **fingerprint},
            path=str(self.path),
            what=f"feature cache {self.path}",
            fresh=f"delete {self.path} (or use another cache_dir)",
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
            self.index["chunk_writers"].append(old.chunk_writers[k])
        if len(self.index["chunks"]) == len(old.index["chunks"]):
            self.index["complete"] = old.complete

    def _remove_orphans(self) -> None:
        """Deletes temporary files and chunk files past the kept chunks.

        A kill between writing a chunk's files and the index leaves them; the
        next chunk write would replace them, but a run that stops earlier (or
        finds the cache complete) must not leave them behind either.
        """
        kept = len(self.index["chunks"])
        for f in self.path.iterdir():
            m = _CHUNK_FILE.match(f.name)
            if is_temporary(f.name) or (m and int(m[1]) >= kept):
                f.unlink()

    @property
    def num_done(self) -> int:
        return int(sum(self.index["chunks"]))

    def write(self, arrays: dict[str, np.ndarray]) -> None:
        """Appends one chunk: ``{entry: (chunk_len, ...) array}``.

        Every host passes the same arrays; only the chunk's writer host
        writes files.
        """
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
        writer = k % self.hosts.count
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
            if self.hosts.index == writer:
                path = self.path / f"{spec['file']}.{k:05d}.npy"
                # The folder was swept on open (`_remove_orphans`).
                atomic_write(path, lambda f, a=a: np.save(f, a), sweep=False)
        # The index lists the chunk only once its files exist, whoever wrote
        # them: a kill in between leaves orphans, never a listed hole.
        self.hosts.sync(f"feature cache {self.path}: chunk {k} written")
        self.index["chunks"].append(len(next(iter(arrays.values()))))
        record = {"process": writer, "num_processes": self.hosts.count}
        self.index["chunk_writers"].append(record)
        self._write_index()

    def finish(self) -> FeatureCache:
        self.index["complete"] = True
        self._write_index()
        # Every host returns a reader of the complete index.
        self.hosts.sync(f"feature cache {self.path}: complete")
        return FeatureCache(self.path)

    def _write_index(self) -> None:
        if self.hosts.index != 0:
            return
        text = json.dumps(self.index, indent=1, default=list).encode()
        atomic_write(self.path / _INDEX, lambda f: f.write(text))


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
