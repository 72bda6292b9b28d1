"""Consistency of an extracted tree with an ontology: triplets, cophenetic
correlation, edge-level consistency and leaf cover.

Reconstruction (xai.md 3.2, step 4): the paper (Schwalbe et al. 2026,
arXiv:2603.26798) names "efficient tree-level and edge-level consistency
measures" without formulas; each measure below is a small function that can
be swapped.

Tree-level triplet agreement T (the fraction of the ontology's resolved
triplets on which the tree's closest pair is the ontology's) and its exact
counting from LCA depths live in `triplets`, re-exported here; this module
holds the cophenetic correlation and the edge-level measures.
"""

import numpy as np
import scipy.stats
from scipy.cluster.hierarchy import cophenet

from jaxcxai.hierarchy import trees
from jaxcxai.hierarchy.triplets import sample_classes as sample_classes
from jaxcxai.hierarchy.triplets import triplet_agreement as triplet_agreement
from jaxcxai.hierarchy.triplets import (
    triplet_agreement_bruteforce as triplet_agreement_bruteforce,
)
from jaxcxai.hierarchy.triplets import triplet_counts as triplet_counts
from jaxcxai.hierarchy.triplets import triplet_counts_lca as triplet_counts_lca

__all__ = [
    "cophenetic_correlation",
    "edge_consistency",
    "edge_flags",
    "leaf_cover",
    "ontology_distance",
    "sample_classes",
    "triplet_agreement",
    "triplet_agreement_bruteforce",
    "triplet_counts",
    "triplet_counts_lca",
]


def ontology_distance(parent, leaves, kind: str = "path") -> np.ndarray:
    """(n, n) ontology distance of every class pair.

    kind: "path" (edges between the two classes) or "lca" (max LCA depth
    minus LCA depth: the deeper the common ancestor, the closer).
    """
    if kind == "path":
        return trees.path_distance(parent, leaves).astype(np.float64)
    if kind == "lca":
        lca = trees.lca_depth(parent, leaves)
        return (lca.max() - lca).astype(np.float64)
    raise ValueError(f"unknown ontology distance {kind!r}; valid: 'path', 'lca'")


def cophenetic_correlation(
    tree, onto_parent, onto_leaves, *, onto_kind: str = "path"
) -> float:
    """Spearman correlation of the tree's cophenetic distances with the
    ontology's distances over all class pairs.

    Reconstruction (xai.md 3.2, step 4a, secondary). The tree's distance is
    the linkage merge height (`scipy.cluster.hierarchy.cophenet`) when the
    tree has a linkage, else its path distance.

    Args:
      tree: a `tree.Tree` (or any object with `parent`, `leaves`, `linkage`).
      onto_parent: (M',) ontology parent array.
      onto_leaves: (n,) ontology node of each class, tree leaf order.
      onto_kind: see `ontology_distance`.
    """
    n = len(tree.leaves)
    if np.shape(onto_leaves) != (n,):
        raise ValueError(f"onto_leaves must be ({n},), got {np.shape(onto_leaves)}")
    iu = np.triu_indices(n, 1)
    if getattr(tree, "linkage", None) is not None:
        tree_d = cophenet(tree.linkage)  # condensed, pairs (i < j) row-major
    else:
        tree_d = trees.path_distance(tree.parent, tree.leaves)[iu]
    onto_d = ontology_distance(onto_parent, onto_leaves, onto_kind)[iu]
    return float(scipy.stats.spearmanr(tree_d, onto_d).statistic)


def edge_flags(tree, node_onto_index, onto) -> np.ndarray:
    """(M,) bool: the edge into node u (parent p -> u) is consistent.

    Consistent iff name(p) is an ontology ancestor-or-self of name(u), both
    given as ontology node indices (-1: a name outside the ontology, never
    consistent). The root has no edge (False).

    Args:
      tree: object with `parent` (M,).
      node_onto_index: (M,) ontology node naming each tree node (for
        leaves, the class's node); see `naming.node_ontology_index`.
      onto: ontology parent array, or an object with `parent`.
    """
    parent = trees.check_parent(tree.parent, "tree.parent")
    onto_parent = trees.check_parent(getattr(onto, "parent", onto), "onto.parent")
    idx = np.asarray(node_onto_index)
    if idx.shape != parent.shape or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(
            f"node_onto_index must be ({parent.size},) integers, got "
            f"{idx.shape} {idx.dtype}"
        )
    if idx.max() >= onto_parent.size or idx.min() < -1:
        raise ValueError(f"node_onto_index must lie in [-1, {onto_parent.size})")
    p_idx = np.where(parent >= 0, idx[np.maximum(parent, 0)], -1)
    ok = (p_idx >= 0) & (idx >= 0)
    anc = trees.is_ancestor(onto_parent, np.maximum(p_idx, 0), np.maximum(idx, 0))
    return ok & anc


def edge_consistency(tree, node_onto_index, onto) -> float:
    """EdgeCons: fraction of the tree's M - 1 edges that are consistent.

    Reconstruction (xai.md 3.2, step 4b); see `edge_flags`.
    """
    flags = edge_flags(tree, node_onto_index, onto)
    return float(flags[np.asarray(tree.parent) >= 0].mean())


def leaf_cover(tree, node_onto_index, onto, per_node: bool = False):
    """LeafCover: share of L(v) that name(v) covers in the ontology, averaged
    over the internal nodes v.

    Reconstruction (xai.md 3.2, step 4b variant): LeafCover(v) =
    |{c in L(v): name(v) is an ontology ancestor-or-self of c}| / |L(v)|.

    Args:
      tree: a `tree.Tree` (uses `parent`, `leaves`, `leaf_sets`).
      node_onto_index: (M,) ontology node of each tree node's name.
      onto: ontology parent array, or an object with `parent`.
      per_node: also return the (M,) per-node scores (NaN at leaves).
    """
    onto_parent = trees.check_parent(getattr(onto, "parent", onto), "onto.parent")
    idx = np.asarray(node_onto_index)
    members = np.asarray(tree.leaf_sets, bool)  # (M, n)
    if idx.shape != (members.shape[0],):
        raise ValueError(
            f"node_onto_index must be ({members.shape[0]},), got {idx.shape}"
        )
    class_onto = idx[np.asarray(tree.leaves)]
    if (class_onto < 0).any():
        raise ValueError("every class (tree leaf) needs an ontology node, got -1")
    covered = (
        trees.is_ancestor(onto_parent, np.maximum(idx, 0)[:, None], class_onto[None, :])
        & (idx >= 0)[:, None]
    )
    internal = np.isin(np.arange(idx.size), np.asarray(tree.parent))
    score = np.full(idx.size, np.nan)
    sizes = members[internal].sum(1)
    score[internal] = (covered & members)[internal].sum(1) / np.maximum(sizes, 1)
    mean = float(np.nanmean(score)) if internal.any() else float("nan")
    return (mean, score) if per_node else mean
