"""Parent-array utilities against Python walks and scipy's cluster trees."""

import numpy as np
import pytest
from scipy.cluster import hierarchy

from jaxcxai.hierarchy import trees
from jaxcxai.hierarchy.tree import build, from_parent


def random_parent(rng, m):
    """A random tree on m nodes, numbered in a random order."""
    perm = rng.permutation(m)
    parent = np.full(m, -1)
    for k in range(1, m):
        parent[perm[k]] = perm[rng.integers(0, k)]
    return parent


def python_ancestors(parent, i):
    out = [i]
    while parent[out[-1]] >= 0:
        out.append(int(parent[out[-1]]))
    return out


def test_depths_ancestors_and_ancestor_matrix_match_python_walks():
    rng = np.random.default_rng(0)
    for m in (1, 2, 7, 30):
        parent = random_parent(rng, m)
        paths = [python_ancestors(parent, i) for i in range(m)]
        np.testing.assert_array_equal(trees.depths(parent), [len(p) - 1 for p in paths])
        assert [trees.ancestors(parent, i) for i in range(m)] == paths
        ref = np.array([[a in paths[b] for b in range(m)] for a in range(m)])
        np.testing.assert_array_equal(trees.is_ancestor_matrix(parent), ref)
        kids = trees.children(parent)
        for v in range(m):
            ref_kids = sorted(np.flatnonzero(parent == v).tolist())
            assert kids[v][kids[v] >= 0].tolist() == ref_kids


def test_lca_depth_matches_common_ancestor_count():
    # Classes may sit on internal nodes (a class above another class).
    rng = np.random.default_rng(1)
    for _ in range(20):
        m = int(rng.integers(2, 40))
        parent = random_parent(rng, m)
        leaves = rng.choice(m, int(rng.integers(1, m + 1)), replace=False)
        paths = [set(python_ancestors(parent, int(x))) for x in leaves]
        ref = np.array([[len(a & b) - 1 for b in paths] for a in paths])
        got = trees.lca_depth(parent, leaves)
        np.testing.assert_array_equal(got, ref)
        assert got.dtype == np.int32
        d = np.diag(ref)
        np.testing.assert_array_equal(
            trees.path_distance(parent, leaves), d[:, None] + d[None] - 2 * ref
        )


def test_from_linkage_leaf_sets_match_scipy_to_tree():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(12, 5))
    z = hierarchy.linkage(x, method="average", metric="cosine")
    parent, leaves = trees.from_linkage(z)
    np.testing.assert_array_equal(leaves, np.arange(12))
    assert parent[-1] == -1 and parent.size == 23
    _, nodes = hierarchy.to_tree(z, rd=True)
    t = from_parent(parent, leaves, x)
    for v in range(23):
        ref = np.zeros(12, bool)
        ref[nodes[v].pre_order()] = True
        np.testing.assert_array_equal(t.leaf_sets[v], ref)
    # Node embeddings: the normalised mean of the normalised class vectors.
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    mean = t.leaf_sets.astype(float) @ unit
    np.testing.assert_allclose(
        t.node_emb, mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-6
    )


def test_build_methods_use_scipy_linkage_on_normalised_centroids():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(9, 4)) * rng.uniform(0.5, 3, size=(9, 1))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    avg = build(x)
    np.testing.assert_allclose(
        avg.linkage, hierarchy.linkage(unit, "average", metric="cosine")
    )
    np.testing.assert_allclose(
        build(x, "ward").linkage, hierarchy.linkage(unit, "ward")
    )
    assert avg.children.shape == (17, 2) and avg.internal.tolist() == list(range(9, 17))
    with pytest.raises(ValueError, match="unknown linkage 'single'"):
        build(x, "single")


@pytest.mark.parametrize(
    "parent, match",
    [
        ([0, -1, 1], r"cycle: 1 nodes never reach the root, e.g. node 0"),
        ([1, 0], r"exactly one root"),
        ([-1, -1], r"exactly one root"),
        ([-1, 5], r"must lie in \[-1, 2\)"),
        ([-1.0, 0.0], r"must hold integers"),
        ([[-1, 0]], r"\(M,\) array"),
        ([-1, 2, 1], r"cycle"),
    ],
)
def test_bad_parent_arrays_are_named(parent, match):
    with pytest.raises(ValueError, match=match):
        trees.depths(np.asarray(parent))


def test_bad_leaves_and_linkage_are_named():
    parent = np.array([-1, 0, 0])
    with pytest.raises(ValueError, match="distinct"):
        trees.lca_depth(parent, [1, 1])
    with pytest.raises(ValueError, match="index the tree's 3 nodes"):
        trees.lca_depth(parent, [1, 3])
    with pytest.raises(ValueError, match=r"\(n - 1, 4\)"):
        trees.from_linkage(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="centroids row 1 is zero"):
        build(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="non-finite"):
        build(np.array([[1.0, 0.0], [np.nan, 1.0]]))
