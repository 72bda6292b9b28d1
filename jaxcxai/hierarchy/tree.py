"""Agglomerative binary tree over class centroids, node embeddings, leaf sets.

Reconstruction (xai.md 3.2, step 2; Schwalbe et al. 2026,
arXiv:2603.26798): scipy `linkage` over the n class centroids, average
linkage on cosine distance 1 - <mu_a, mu_b> by default, Ward on the
normalised vectors as an option. Each internal node v gets its leaf set L(v)
and embedding mu_v = normalize(mean_{c in L(v)} mu_c). Nodes follow scipy's
numbering: leaves 0..n-1 (class c is node c), linkage row t is node n + t,
root 2n - 2.

`from_parent` wraps any parent-array tree (an ontology, a planted tree) with
the same fields, so naming, consistency and UAES inference run on either.
"""

import dataclasses

import numpy as np
from scipy.cluster import hierarchy

from jaxcxai import checks
from jaxcxai.hierarchy import trees

__all__ = ["LINKAGES", "Tree", "build", "from_parent", "node_embeddings"]


@dataclasses.dataclass(frozen=True, eq=False)
class Tree:
    """A rooted tree over n classes with node embeddings.

    Attributes:
      parent: (M,) int32 parent array, -1 at the root.
      leaves: (n,) int32 node of each class.
      linkage: (n - 1, 4) scipy linkage matrix, or None (`from_parent`).
      node_emb: (M, D) float32 normalised mean of each node's class
        centroids (zero for a node without classes).
      leaf_sets: (M, n) bool, [v, c] = class c is in L(v).
      children: (M, K) int32 children of each node, padded with -1
        (K = 2 for `build`).
    """

    parent: np.ndarray
    leaves: np.ndarray
    linkage: np.ndarray | None
    node_emb: np.ndarray
    leaf_sets: np.ndarray
    children: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(self.leaves.shape[0])

    @property
    def internal(self) -> np.ndarray:
        """(n_internal,) indices of the nodes that have children."""
        return np.flatnonzero(self.children[:, 0] >= 0)

    @property
    def depth(self) -> np.ndarray:
        """(M,) depth of every node."""
        return trees.depths(self.parent)


def _check_centroids(centroids) -> np.ndarray:
    x = np.asarray(centroids)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"centroids must be (n >= 2, D) array, got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"centroids must be floating point, got dtype {x.dtype}")
    checks.check_finite({"centroids": x})
    x = x.astype(np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    if (norm == 0).any():
        raise ValueError(
            f"centroids row {int(np.flatnonzero(norm[:, 0] == 0)[0])} is zero; "
            "cosine distance needs non-zero vectors"
        )
    return x / norm


def _average_cosine(x):
    """Average (UPGMA) linkage on cosine distance 1 - <x_a, x_b>."""
    return hierarchy.linkage(x, method="average", metric="cosine")


def _ward_normalised(x):
    """Ward linkage on the normalised vectors (Euclidean)."""
    return hierarchy.linkage(x, method="ward", metric="euclidean")


def _complete_cosine(x):
    """Complete linkage on cosine distance."""
    return hierarchy.linkage(x, method="complete", metric="cosine")


# Swappable linkage rules: name -> f(normalised centroids (n, D)) -> linkage.
LINKAGES = {
    "average": _average_cosine,
    "ward": _ward_normalised,
    "complete": _complete_cosine,
}


def node_embeddings(leaf_sets, centroids) -> np.ndarray:
    """(M, D) float32 normalize(mean_{c in L(v)} mu_c) per node.

    Args:
      leaf_sets: (M, n) bool membership.
      centroids: (n, D) class centroids (normalised here).
    """
    x = _check_centroids(centroids)
    members = np.asarray(leaf_sets, np.float64)
    sums = members @ x  # the mean's direction: the count cancels on normalising
    norm = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def _leaf_sets(parent, leaves) -> np.ndarray:
    w = trees.walk(parent)
    nodes = np.arange(parent.size)
    return trees.is_ancestor(parent, nodes[:, None], leaves[None, :], w)


def from_parent(parent, leaves, centroids, linkage=None) -> Tree:
    """A `Tree` over an existing parent-array tree.

    Args:
      parent: (M,) parent array.
      leaves: (n,) distinct node of each class.
      centroids: (n, D) class centroids, in the order of `leaves`.
      linkage: optional scipy linkage the tree came from.
    """
    parent = trees.check_parent(parent)
    leaves = trees.check_leaves(leaves, parent.size)
    x = _check_centroids(centroids)
    if x.shape[0] != leaves.size:
        raise ValueError(
            f"centroids has {x.shape[0]} rows for {leaves.size} classes (leaves)"
        )
    sets = _leaf_sets(parent, leaves)
    return Tree(
        parent=parent,
        leaves=leaves,
        linkage=linkage,
        node_emb=node_embeddings(sets, x),
        leaf_sets=sets,
        children=trees.children(parent),
    )


def build(centroids, method: str = "average") -> Tree:
    """Agglomerative binary tree over class centroids.

    Args:
      centroids: (n, D) class centroids (normalised here), n >= 2.
      method: a key of `LINKAGES` ("average" on cosine distance, "ward" on
        the normalised vectors, "complete" on cosine distance).

    Returns:
      `Tree` with M = 2n - 1 nodes, classes at nodes 0..n-1.
    """
    if method not in LINKAGES:
        raise ValueError(f"unknown linkage {method!r}; valid: {sorted(LINKAGES)}")
    x = _check_centroids(centroids)
    z = LINKAGES[method](x)
    parent, leaves = trees.from_linkage(z)
    return from_parent(parent, leaves, x, linkage=z)
