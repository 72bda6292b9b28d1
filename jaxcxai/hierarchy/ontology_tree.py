"""The :class:`Ontology` type: a checked rooted tree of named concepts, and
its structural queries (depths, ancestors, leaves, the concept bank).

``parent[i]`` is node ``i``'s parent, ``-1`` at the one root; nodes carry a
human-readable name and a unique id. Building ontologies (subtrees, root
paths, JSON files, the SynthAerial taxonomy) is in `ontology`, which
re-exports the names here. Host-side NumPy only: nothing here is traced.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np

__all__ = [
    "Ontology", "ancestors", "concept_bank", "depth", "is_ancestor", "leaf_nodes",
]  # fmt: skip


@dataclasses.dataclass(frozen=True, eq=False)
class Ontology:
    """A rooted tree of named concepts.

    Attributes:
      names: (M,) labels ('tabby cat', 'feline'), not necessarily unique.
      ids: (M,) unique keys ('n02123045', 'scene:airport').
      parent: (M,) int32 parent index, -1 at the single root; read-only.

    Raises:
      ValueError: mismatched lengths, a parent out of range, not exactly one
        root, a cycle, or a repeated id.
    """

    names: tuple[str, ...]
    ids: tuple[str, ...]
    parent: np.ndarray
    _depth: np.ndarray = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        names, ids, parent = tuple(self.names), tuple(self.ids), np.asarray(self.parent)
        if parent.ndim != 1 or not np.issubdtype(parent.dtype, np.integer):
            raise ValueError(
                f"parent must be 1-D integer, got {parent.dtype}{parent.shape}"
            )
        m = parent.shape[0]
        if not len(names) == len(ids) == m:
            raise ValueError(f"{len(names)} names, {len(ids)} ids, {m} parents")
        if ((parent < -1) | (parent >= m)).any() or (parent == -1).sum() != 1:
            raise ValueError(
                f"parent must hold indices in [0, {m}) and exactly one -1 (the "
                f"root), got {(parent == -1).sum()} roots, range "
                f"[{parent.min(initial=0)}, {parent.max(initial=0)}]"
            )
        if len(set(ids)) != m:
            dup = next(k for i, k in enumerate(ids) if k in ids[:i])
            raise ValueError(f"ids must be unique; {dup!r} repeats")
        parent = parent.astype(np.int32)
        parent.setflags(write=False)
        for key, value in dict(names=names, ids=ids, parent=parent).items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_depth", _depths(parent, ids))

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.ids)}

    def index(self, node: int | str) -> int:
        """Node index of an id (or a checked index passed through)."""
        if isinstance(node, str):
            if node not in self._index:
                raise KeyError(f"unknown ontology id {node!r}")
            return self._index[node]
        i = int(node)
        if not 0 <= i < len(self):
            raise IndexError(f"node {i} outside [0, {len(self)})")
        return i


def _depths(parent: np.ndarray, ids: Sequence[str]) -> np.ndarray:
    """(M,) int32 root distance by pointer chasing; a cycle never reaches -1."""
    depth, cur = np.zeros(parent.shape, np.int32), parent.copy()
    for _ in range(len(parent)):
        up = cur >= 0
        if not up.any():
            depth.setflags(write=False)
            return depth
        depth += up
        cur = np.where(up, parent[np.maximum(cur, 0)], -1)
    stuck = int(np.flatnonzero(cur >= 0)[0])
    raise ValueError(
        f"parent array has a cycle (node {ids[stuck]!r} never reaches the root)"
    )


def depth(onto: Ontology) -> np.ndarray:
    """(M,) int32 number of edges from each node up to the root (root: 0)."""
    return onto._depth.copy()


def ancestors(onto: Ontology, node: int | str) -> list[int]:
    """Node indices from ``node`` itself up to the root (inclusive)."""
    i = onto.index(node)
    path = [i]
    while onto.parent[i] >= 0:
        i = int(onto.parent[i])
        path.append(i)
    return path


def is_ancestor(onto: Ontology, a: int | str, b: int | str) -> bool:
    """True iff ``a`` is ``b`` or lies on the path from ``b`` to the root."""
    a, b = onto.index(a), onto.index(b)
    for _ in range(int(onto._depth[b] - onto._depth[a])):
        b = int(onto.parent[b])
    return a == b


def leaf_nodes(onto: Ontology) -> np.ndarray:
    """(n,) int32 indices of the nodes without children, in node order."""
    has_child = np.zeros(len(onto), bool)
    has_child[onto.parent[onto.parent >= 0]] = True
    return np.flatnonzero(~has_child).astype(np.int32)


def concept_bank(onto: Ontology, include_leaves: bool = False) -> list[str]:
    """Candidate names for tree nodes (xai.md section 3.2, bank B): the
    internal nodes' names (and the leaves' if asked), node order, each once."""
    leaf = np.zeros(len(onto), bool)
    leaf[leaf_nodes(onto)] = True
    keep = (onto.names[i] for i in range(len(onto)) if include_leaves or not leaf[i])
    return list(dict.fromkeys(keep))
