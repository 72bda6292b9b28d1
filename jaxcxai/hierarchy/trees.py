"""Parent-array trees: checks, depths, ancestors, LCA depths, linkage import.

Every tree of `jaxcxai.hierarchy` is a parent array `parent (M,) int32` with
-1 at the single root; a set of n classes maps to node indices
`leaves (n,) int32` (distinct; a class may sit on an internal node, as in
WordNet where one class can be a hypernym of another). The agglomerative
trees of `tree.build` number their nodes as scipy does: leaves 0..n-1, the
merge of linkage row t is node n + t, the root is 2n - 2.

Everything here is host-side NumPy: trees are small integer structures
(M ~ 2n), walked once in pre-order; the per-pair work (LCA depths of all
n^2 leaf pairs) is done with contiguous block writes, O(n^2) in total and
independent of the depth of the tree.
"""

from typing import NamedTuple

import numpy as np

__all__ = [
    "Walk",
    "ancestors",
    "check_leaves",
    "check_parent",
    "children",
    "depths",
    "from_linkage",
    "height",
    "is_ancestor",
    "is_ancestor_matrix",
    "lca_depth",
    "path_distance",
    "walk",
]


def check_parent(parent, name: str = "parent") -> np.ndarray:
    """Returns `parent` as (M,) int32 after checking it is a rooted tree.

    Raises:
      ValueError: not a non-empty 1-D integer array, entries outside
        [-1, M), not exactly one root (-1), or nodes that never reach the
        root (a cycle).
    """
    p = np.asarray(parent)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"{name} must be a non-empty (M,) array, got {p.shape}")
    if not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {p.dtype}")
    bad = (p < -1) | (p >= p.size)
    if bad.any():
        raise ValueError(
            f"{name} entries must lie in [-1, {p.size}); "
            f"node {int(np.flatnonzero(bad)[0])} has {int(p[bad][0])}"
        )
    roots = np.flatnonzero(p == -1)
    if roots.size != 1:
        raise ValueError(f"{name} must have exactly one root (-1), got {roots.size}")
    return p.astype(np.int32)


def check_leaves(leaves, n_nodes: int, name: str = "leaves") -> np.ndarray:
    """Returns `leaves` as (n,) int32: distinct node indices in [0, n_nodes)."""
    x = np.asarray(leaves)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty (n,) array, got {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {x.dtype}")
    if x.min() < 0 or x.max() >= n_nodes:
        raise ValueError(
            f"{name} must index the tree's {n_nodes} nodes, got range "
            f"[{int(x.min())}, {int(x.max())}]"
        )
    if np.unique(x).size != x.size:
        raise ValueError(f"{name} must be distinct node indices (one per class)")
    return x.astype(np.int32)


class Walk(NamedTuple):
    """One pre-order walk of a tree (children visited in index order).

    Attributes:
      order: (M,) nodes in pre-order (root first).
      pre: (M,) position of each node in `order`.
      size: (M,) number of nodes in each node's subtree (itself included);
        the subtree of v is order[pre[v] : pre[v] + size[v]].
      depth: (M,) edges from the root (root 0).
    """

    order: np.ndarray
    pre: np.ndarray
    size: np.ndarray
    depth: np.ndarray


def walk(parent) -> Walk:
    """Pre-order walk of a parent array; raises ValueError on a cycle."""
    p = check_parent(parent)
    m = p.size
    kids = children(p, padded=False)
    order, depth = [], [0] * m
    stack = [int(np.flatnonzero(p == -1)[0])]
    while stack:  # O(M) Python steps on ints; trees here have M ~ 2n nodes
        v = stack.pop()
        order.append(v)
        dv = depth[v] + 1
        for c in reversed(kids[v]):
            depth[c] = dv
            stack.append(c)
    if len(order) != m:
        seen = np.zeros(m, bool)
        seen[order] = True
        raise ValueError(
            f"parent has a cycle: {m - len(order)} nodes never reach the root, "
            f"e.g. node {int(np.flatnonzero(~seen)[0])}"
        )
    order = np.asarray(order, np.int32)
    depth = np.asarray(depth, np.int32)
    pre = np.empty(m, np.int32)
    pre[order] = np.arange(m, dtype=np.int32)
    # Subtree sizes by depth level, deepest first: one add.at per level.
    size = np.ones(m, np.int64)
    has_parent = p >= 0
    for d in range(int(depth.max()), 0, -1):
        at = np.flatnonzero((depth == d) & has_parent)
        np.add.at(size, p[at], size[at])
    return Walk(order, pre, size.astype(np.int32), depth)


def children(parent, padded: bool = True):
    """Children of every node, in index order.

    Args:
      parent: (M,) parent array.
      padded: return an (M, K) int32 array padded with -1 (K the largest
        number of children, at least 1); else a list of M lists.
    """
    p = np.asarray(parent)
    order = np.argsort(p, kind="stable")  # groups children by parent
    counts = np.bincount(p[p >= 0], minlength=p.size)
    starts = np.concatenate([[0], np.cumsum(counts)]) + np.sum(p < 0)
    if not padded:
        flat, bounds = order.tolist(), starts.tolist()
        return [flat[bounds[v] : bounds[v + 1]] for v in range(p.size)]
    out = np.full((p.size, max(1, int(counts.max(initial=0)))), -1, np.int32)
    child = order[np.sum(p < 0) :]
    rank = np.arange(child.size) - starts[p[child]] + np.sum(p < 0)
    out[p[child], rank] = child
    return out


def depths(parent) -> np.ndarray:
    """(M,) int32 depth of every node (edges from the root)."""
    return walk(parent).depth


def height(parent) -> int:
    """Largest depth of any node."""
    return int(depths(parent).max())


def ancestors(parent, i: int) -> list[int]:
    """Node `i` and its ancestors, from `i` up to the root."""
    p = check_parent(parent)
    if not 0 <= int(i) < p.size:
        raise ValueError(f"node {i} is not in a tree of {p.size} nodes")
    out = [int(i)]
    while p[out[-1]] >= 0:
        out.append(int(p[out[-1]]))
        if len(out) > p.size:
            raise ValueError("parent has a cycle")
    return out


def is_ancestor(parent, a, b, tree_walk: Walk | None = None) -> np.ndarray:
    """Whether node a is node b or above it, elementwise (broadcasting).

    Uses pre-order intervals: a is an ancestor-or-self of b iff
    pre[a] <= pre[b] < pre[a] + size[a]. Pass `tree_walk` to reuse a walk.
    """
    w = tree_walk if tree_walk is not None else walk(parent)
    a, b = np.asarray(a), np.asarray(b)
    pa, pb = w.pre[a], w.pre[b]
    return (pa <= pb) & (pb < pa + w.size[a])


def is_ancestor_matrix(parent, nodes=None) -> np.ndarray:
    """(K, K) bool: [i, j] = nodes[i] is nodes[j] or above it.

    Args:
      parent: (M,) parent array.
      nodes: (K,) node indices (default all M nodes).
    """
    w = walk(parent)
    nodes = np.arange(w.pre.size) if nodes is None else np.asarray(nodes)
    return is_ancestor(parent, nodes[:, None], nodes[None, :], w)


def lca_depth(parent, leaves) -> np.ndarray:
    """(n, n) int32 depth of the lowest common ancestor of every leaf pair.

    The diagonal holds each leaf's own depth. Each pair is written exactly
    once: in pre-order the classes under a node are contiguous, so for node
    v the pairs split between two of its child subtrees (or v itself) form
    rectangles that take depth(v). O(n^2 + M) time, independent of depth.

    Args:
      parent: (M,) parent array.
      leaves: (n,) distinct node index of each class.
    """
    w = walk(parent)
    p = check_parent(parent)
    leaves = check_leaves(leaves, p.size)
    n = leaves.size
    srt = np.argsort(w.pre[leaves], kind="stable")  # classes in pre-order
    keys = w.pre[leaves][srt]
    out = np.empty((n, n), np.int32)
    lo = np.searchsorted(keys, w.pre)  # class range of every subtree
    hi = np.searchsorted(keys, w.pre + w.size)
    kids = children(p, padded=False)
    # Python ints: this loop runs once per node, numpy scalars cost 10x more.
    lo_l, hi_l, depth_l = lo.tolist(), hi.tolist(), w.depth.tolist()
    own = (keys[np.minimum(lo, n - 1)] == w.pre).tolist()  # v is a class
    for v in np.flatnonzero(hi - lo >= 2).tolist():
        # Segments: v itself (if a class), then each child's classes.
        start, end_v, d = lo_l[v], hi_l[v], depth_l[v]
        bounds = [start + own[v]]
        bounds += [hi_l[c] for c in kids[v] if hi_l[c] > lo_l[c]]
        for end in bounds:
            if end > start:
                out[start:end, end:end_v] = d
                out[end:end_v, start:end] = d
            start = end
    out[np.arange(n), np.arange(n)] = w.depth[leaves][srt]
    inv = np.empty(n, np.int64)
    inv[srt] = np.arange(n)
    return out[np.ix_(inv, inv)]


def path_distance(parent, leaves) -> np.ndarray:
    """(n, n) int32 edges on the path between every leaf pair."""
    lca = lca_depth(parent, leaves)
    d = np.diag(lca)
    return d[:, None] + d[None, :] - 2 * lca


def from_linkage(linkage) -> tuple[np.ndarray, np.ndarray]:
    """Parent array of a scipy linkage matrix.

    Args:
      linkage: (n - 1, 4) scipy linkage; row t merges clusters Z[t, 0] and
        Z[t, 1] into node n + t.

    Returns:
      (parent (2n - 1,) int32 with the root 2n - 2, leaves = arange(n)).
    """
    z = np.asarray(linkage)
    if z.ndim != 2 or z.shape[1] != 4:
        raise ValueError(f"linkage must be an (n - 1, 4) array, got {z.shape}")
    n = z.shape[0] + 1
    merged = z[:, :2].astype(np.int64)
    if (merged < 0).any() or (merged >= n + np.arange(n - 1)[:, None]).any():
        raise ValueError("linkage row t may only merge nodes created before it")
    parent = np.full(2 * n - 1, -1, np.int32)
    parent[merged.ravel()] = np.repeat(n + np.arange(n - 1, dtype=np.int32), 2)
    return check_parent(parent, "linkage tree"), np.arange(n, dtype=np.int32)
