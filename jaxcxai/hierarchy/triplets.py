"""Tree-level triplet agreement of an extracted tree with an ontology: exact
counting from LCA depths, a sampled estimate, and a brute-force reference.

Reconstruction (xai.md 3.2, step 4a): the paper (Schwalbe et al. 2026,
arXiv:2603.26798) names "efficient tree-level and edge-level consistency
measures" without formulas; `consistency` holds the other measures.

For three classes a, b, c the closest pair of a tree is the pair with the
deepest lowest common ancestor (LCA). In any tree the two shallowest of the
three LCA depths are equal, so a triplet is *resolved* iff one pair is
strictly deeper than the other two. T is the fraction of triplets resolved by
the ontology on which the tree's closest pair (strictly deepest) is the
ontology's.

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

from jaxcxai.hierarchy import trees

__all__ = [
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
