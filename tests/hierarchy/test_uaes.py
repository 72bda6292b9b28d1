"""UAES inference against a float64 Python walk; perfect and degenerate
trees; calibration, metrics and the coverage curve."""

import numpy as np
import pytest

from jaxcxai.hierarchy import uaes
from jaxcxai.hierarchy.tree import build, from_parent

T = 0.05


def python_uaes(z, tree, temperature, h_star):
    """Per-sample float64 walk: (stop node, probs taken, entropies seen)."""
    out = []
    root = int(np.flatnonzero(np.asarray(tree.parent) == -1)[0])
    emb = np.asarray(tree.node_emb, np.float64)
    for x in np.asarray(z, np.float64):
        v, probs, ents = root, [], []
        while True:
            kids = [k for k in tree.children[v] if k >= 0]
            if not kids:
                break
            logits = emb[kids] @ x / temperature
            p = np.exp(logits - logits.max())
            p /= p.sum()
            h = -sum(q * np.log(q) for q in p if q > 0)
            ents.append(h)
            if h > h_star:
                break
            j = int(np.argmax(p))
            probs.append(p[j])
            v = kids[j]
        out.append((v, probs, ents))
    return out


def _random_tree_and_samples(seed=0):
    rng = np.random.default_rng(seed)
    # A non-binary tree: root 0 -> 1, 2, 3; 1 -> 4, 5; 3 -> 6, 7, 8; classes
    # 2, 4..8.
    parent = np.array([-1, 0, 0, 0, 1, 1, 3, 3, 3])
    leaves = np.array([2, 4, 5, 6, 7, 8])
    tree = from_parent(parent, leaves, rng.normal(size=(6, 5)))
    return tree, rng.normal(size=(40, 5)).astype(np.float32)


@pytest.mark.parametrize("h_star", [0.3, 0.8, np.inf])
def test_infer_matches_python_walk(h_star):
    tree, z = _random_tree_and_samples()
    got = uaes.infer(z, tree, T, h_star)
    ref = python_uaes(z, tree, T, h_star)
    depth = tree.depth
    for i, (stop, probs, ents) in enumerate(ref):
        assert int(got.stop_node[i]) == stop
        assert int(got.depth[i]) == depth[stop]
        np.testing.assert_allclose(got.probs[i][: len(probs)], probs, rtol=1e-4)
        assert np.isnan(got.probs[i][len(probs) :]).all()
        np.testing.assert_allclose(got.entropy[i][: len(ents)], ents, atol=1e-5)
        path = np.asarray(got.path[i])
        assert path[len(probs)] == stop and (path[len(probs) + 1 :] == -1).all()
    stops = {s for s, _, _ in ref}
    assert len(stops) > 2  # the walk stops at several different nodes


def test_trees_of_one_shape_share_a_program_across_heights():
    tree, z = _random_tree_and_samples()  # height 2
    # Same node count and fan-out, height 3: 0 -> 1, 2, 3; 1 -> 4, 5, 6; 4 -> 7, 8.
    parent = np.array([-1, 0, 0, 0, 1, 1, 1, 4, 4])
    leaves = np.array([2, 3, 5, 6, 7, 8])
    rng = np.random.default_rng(1)
    deep = from_parent(parent, leaves, rng.normal(size=(6, 5)))
    uaes.infer(z, tree, T)
    before = uaes._descend._cache_size()
    for t, height in ((tree, 2), (deep, 3)):
        got = uaes.infer(z, t, T)
        assert got.path.shape == (len(z), height + 1)
        assert got.probs.shape == (len(z), height)
        ref = python_uaes(z, t, T, np.inf)
        assert [int(s) for s in got.stop_node] == [s for s, _, _ in ref]
    assert uaes._descend._cache_size() == before  # no new compilation


def test_perfect_tree_with_separable_leaves_reaches_every_leaf():
    centroids = np.eye(8, dtype=np.float32)
    tree = build(centroids)
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(8), 3)
    z = centroids[labels] + 0.05 * rng.normal(size=(24, 8)).astype(np.float32)
    inf = uaes.infer(z, tree, 0.01, h_star=0.5)
    m = uaes.metrics(inf, labels, tree)
    assert m["leaf_accuracy"] == 1.0 and m["coverage"] == 1.0
    assert m["hierarchical_correctness"] == 1.0
    assert m["stop_depth"] == tree.depth[:8][labels].mean()
    assert np.isnan(m["mistake_severity"])
    assert uaes.flat_accuracy(z, centroids, labels) == 1.0


def test_coinciding_leaves_stop_at_the_root():
    tree = build(np.ones((6, 4), np.float32))
    z = np.random.default_rng(2).normal(size=(5, 4)).astype(np.float32)
    inf = uaes.infer(z, tree, 0.01, h_star=0.69)  # just below log 2
    np.testing.assert_array_equal(inf.stop_node, [10] * 5)
    np.testing.assert_array_equal(inf.depth, 0)
    np.testing.assert_allclose(inf.entropy[:, 0], np.log(2), rtol=1e-6)
    m = uaes.metrics(inf, np.arange(5), tree)
    assert m["coverage"] == 0.0 and m["hierarchical_correctness"] == 1.0


def test_calibration_curve_and_metrics_agree():
    tree, z = _random_tree_and_samples(3)
    labels = np.random.default_rng(4).integers(0, 6, size=40)
    h = uaes.calibrate(z, tree, T, target_coverage=0.6)
    cov = uaes.metrics(uaes.infer(z, tree, T, h), labels, tree)["coverage"]
    just_below = np.nextafter(np.float32(h), np.float32(0))  # entropies are f32
    below = uaes.metrics(uaes.infer(z, tree, T, just_below), labels, tree)
    assert cov >= 0.6 > below["coverage"]  # the smallest such threshold
    thresholds = np.array([0.0, 0.2, h, 0.9, np.inf], np.float32)
    curve = uaes.coverage_curve(z, labels, tree, T, thresholds)
    for k, t in enumerate(thresholds):
        m = uaes.metrics(uaes.infer(z, tree, T, t), labels, tree)
        for name in ("coverage", "leaf_accuracy", "hierarchical_correctness"):
            np.testing.assert_allclose(curve[name][k], m[name], atol=1e-6)
        np.testing.assert_allclose(curve["stop_depth"][k], m["stop_depth"], rtol=1e-6)
    assert curve["coverage"][0] == 0.0 and curve["coverage"][-1] == 1.0


def test_mistake_severity_is_the_ontology_lca_height():
    # Tree: classes 0..3 at nodes 0..3; onto ((0, 1), (2, 3)) of depth 2.
    tree = from_parent([4, 4, 5, 5, 6, 6, -1], np.arange(4), np.eye(4))
    onto = (np.array([-1, 0, 0, 1, 1, 2, 2]), np.array([3, 4, 5, 6]))
    z = np.eye(4, dtype=np.float32)[[1, 2, 0]]  # predicts 1, 2, 0
    inf = uaes.infer(z, tree, 0.01)
    m = uaes.metrics(inf, np.array([0, 0, 0]), tree, onto)
    # Mistakes 1 vs 0 (LCA height 1) and 2 vs 0 (height 2).
    assert m["mistake_severity"] == 1.5 and m["leaf_accuracy"] == pytest.approx(1 / 3)


def test_bad_inputs_are_named():
    tree, z = _random_tree_and_samples()
    with pytest.raises(ValueError, match=r"z must be a non-empty \(N, 5\)"):
        uaes.infer(z[:, :3], tree)
    with pytest.raises(ValueError, match="temperature must be positive"):
        uaes.infer(z, tree, 0.0)
    with pytest.raises(ValueError, match=r"target_coverage must lie in \(0, 1\]"):
        uaes.calibrate(z, tree, T, 1.5)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 6\)"):
        uaes.metrics(uaes.infer(z, tree, T), np.full(40, 6), tree)
