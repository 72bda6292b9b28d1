"""Consistency of an extracted tree with an ontology: triplets, cophenetic
correlation, edge-level consistency and leaf cover.

Reconstruction (xai.md 3.2, step 4): the paper (Schwalbe et al. 2026,
arXiv:2603.26798) names "efficient tree-level and edge-level consistency
measures" without formulas; each measure below is a small function that can
be swapped.

Tree-level triplet agreement. For three classes a, b, c the closest pair of a
tree is the pair with the deepest lowest common ancestor (LCA). In any tree
the two shallowest of the three LCA depths are equal, so a triplet is
*resolved* iff one pair is strictly deeper than the other two. T is the
fraction of triplets resolved by the ontology on which the tree's closest
pair (strictly deepest) is the ontology's.

Exact counting without enumerating the O(n^3) triplets: (a, b) is the
strictly deepest pair of {a, b, c} iff L[a, b] > L[a, c] (then L[a, c] =
L[b, c]). So for each ordered pair (a, b) the agreeing c's are those with
L_onto[a, c] < L_onto[a, b] and L_tree[a, c] < L_tree[a, b]: a 2-D dominance
count over row a. Row a's values form a small (depth_onto + 1) x
(depth_tree + 1) histogram whose 2-D prefix sums answer every b at once:
O(n^2 + n * depth_onto * depth_tree) in a few NumPy calls (bincount, cumsum,
one gather). Each triplet is seen from both rows a and b, so the ordered sums
are twice the triplet counts.
"""

import itertools

import jax
import numpy as np
import scipy.stats
from scipy.cluster.hierarchy import cophenet

from jaxcxai.hierarchy import trees

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

_CHUNK = 1 << 22  # histogram cells per block of rows (memory bound)


def _check_lca(lca, name):
    x = np.asarray(lca)
    if x.ndim != 2 or x.shape[0] != x.shape[1] or not x.size:
        raise ValueError(f"{name} must be a square (n, n) array, got {x.shape}")
    if not np.issubdtype(x.dtype, np.integer) or x.min() < 0:
        raise ValueError(f"{name} must hold non-negative integer LCA depths")
    return x.astype(np.int64, copy=False)


def triplet_counts_lca(lca_tree, lca_onto) -> tuple[int, int]:
    """(agreeing, resolved) triplet counts from two LCA-depth matrices.

    Args:
      lca_tree: (n, n) LCA depths of the extracted tree (`trees.lca_depth`).
      lca_onto: (n, n) LCA depths of the ontology, same class order.

    Returns:
      Python ints: triplets the ontology resolves, and those of them whose
      tree closest pair is the ontology's.
    """
    lt, lo = _check_lca(lca_tree, "lca_tree"), _check_lca(lca_onto, "lca_onto")
    if lt.shape != lo.shape:
        raise ValueError(f"lca_tree {lt.shape} and lca_onto {lo.shape} differ")
    n = lt.shape[0]
    u, v = int(lo.max()) + 1, int(lt.max()) + 1
    agree = resolved = 0
    rows = max(1, _CHUNK // ((u + 1) * (v + 1)))
    for r0 in range(0, n, rows):
        a_lo, a_lt = lo[r0 : r0 + rows], lt[r0 : r0 + rows]
        k = a_lo.shape[0]
        row = np.arange(k, dtype=np.int64)[:, None]
        cell = (row * u + a_lo) * v + a_lt
        base = row * (u + 1) + a_lo  # row a of prefix, onto level L_onto[a, b]
        hist = np.bincount(cell.ravel(), minlength=k * u * v).reshape(k, u, v)
        # prefix[a, i, j] = #{c: L_onto[a, c] < i and L_tree[a, c] < j}.
        prefix = np.zeros((k, u + 1, v + 1), np.int64)
        np.cumsum(hist, 1, out=prefix[:, 1:, 1:])
        np.cumsum(prefix[:, 1:, 1:], 2, out=prefix[:, 1:, 1:])
        flat = prefix.reshape(k * (u + 1), v + 1)
        # Sum over every b, then take away b = a (the diagonal).
        hit = np.take(flat.ravel(), base * (v + 1) + a_lt)
        below = np.take(flat[:, v], base)
        diag = (np.arange(k), np.arange(r0, r0 + k))
        agree += int(hit.sum() - hit[diag].sum())
        resolved += int(below.sum() - below[diag].sum())
    return agree // 2, resolved // 2


def triplet_counts(tree_parent, tree_leaves, onto_parent, onto_leaves):
    """(agreeing, resolved) triplet counts of a tree against an ontology.

    Args:
      tree_parent: (M,) parent array of the extracted tree.
      tree_leaves: (n,) tree node of each class.
      onto_parent: (M',) parent array of the ontology.
      onto_leaves: (n,) ontology node of each class (same class order).
    """
    if np.shape(tree_leaves) != np.shape(onto_leaves):
        raise ValueError(
            f"tree_leaves {np.shape(tree_leaves)} and onto_leaves "
            f"{np.shape(onto_leaves)} must list the same classes"
        )
    return triplet_counts_lca(
        trees.lca_depth(tree_parent, tree_leaves),
        trees.lca_depth(onto_parent, onto_leaves),
    )


def sample_classes(key, n: int, k: int) -> np.ndarray:
    """(k,) sorted distinct class indices drawn uniformly from n with a JAX
    key (on the host: a NumPy generator seeded by the key's data, so no
    device program is compiled for a one-off permutation)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    rng = np.random.default_rng(np.asarray(key).ravel().tolist())
    return np.sort(rng.choice(n, k, replace=False))


def triplet_agreement(
    tree_parent, tree_leaves, onto_parent, onto_leaves, max_n=None, key=None
) -> float:
    """Tree-level triplet agreement T on the ontology's resolved triplets.

    Reconstruction (xai.md 3.2, step 4a). Exact; with `max_n` and more than
    `max_n` classes, T is estimated on a uniformly random subset of `max_n`
    classes drawn with `key` (O(max_n^2) memory instead of O(n^2)).

    Args:
      tree_parent, tree_leaves, onto_parent, onto_leaves: as in
        `triplet_counts`.
      max_n: largest class count computed exactly (None: always exact).
      key: JAX PRNG key for the subset (required when sampling).

    Returns:
      T in [0, 1]; NaN when the ontology resolves no triplet.
    """
    tree_leaves, onto_leaves = np.asarray(tree_leaves), np.asarray(onto_leaves)
    n = tree_leaves.shape[0] if tree_leaves.ndim else 0
    if max_n is not None and n > max_n:
        if max_n < 3:
            raise ValueError(f"max_n must be at least 3, got {max_n}")
        if key is None:
            raise ValueError(f"key is required to sample {max_n} of {n} classes")
        pick = sample_classes(key, n, max_n)
        tree_leaves, onto_leaves = tree_leaves[pick], onto_leaves[pick]
    agree, resolved = triplet_counts(tree_parent, tree_leaves, onto_parent, onto_leaves)
    return agree / resolved if resolved else float("nan")


def _pair_lca_depth_python(ancestor_lists, depth, i, j):
    common = set(ancestor_lists[i]).intersection(ancestor_lists[j])
    return max(depth[x] for x in common)


def triplet_agreement_bruteforce(tree_parent, tree_leaves, onto_parent, onto_leaves):
    """Reference T: every triplet enumerated in Python, LCAs from ancestor
    sets (no LCA matrices). For tests on small n (O(n^3))."""
    sides = []
    for parent, leaves in ((tree_parent, tree_leaves), (onto_parent, onto_leaves)):
        depth = trees.depths(parent)
        anc = [trees.ancestors(parent, int(x)) for x in np.asarray(leaves)]
        sides.append((anc, depth))
    agree = resolved = 0
    for a, b, c in itertools.combinations(range(len(sides[0][0])), 3):
        closest = []
        for anc, depth in sides:
            pairs = {(a, b), (a, c), (b, c)}
            lca = {pq: _pair_lca_depth_python(anc, depth, *pq) for pq in pairs}
            best = max(lca.values())
            top = [pq for pq, d in lca.items() if d == best]
            closest.append(top[0] if len(top) == 1 else None)
        if closest[1] is not None:
            resolved += 1
            agree += closest[0] == closest[1]
    return agree / resolved if resolved else float("nan")


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
