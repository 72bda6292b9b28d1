"""Centroids and dictionary naming: planted parents, leaf-name exclusion,
the ancestor constraint and margins against NumPy."""

import jax
import numpy as np
import pytest

from jaxcxai.checks import NonFiniteError
from jaxcxai.hierarchy import centroids, naming, synthetic, trees
from jaxcxai.hierarchy.tree import build, from_parent


def test_class_and_text_centroids_against_numpy_float64():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(20, 5)).astype(np.float32)
    labels = np.array([0, 1, 2] * 6 + [2, 0])
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    ref = np.stack([unit[labels == c].mean(0) for c in range(3)])
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    got = centroids.class_centroids(emb, labels, 3)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    raw = np.stack([emb[labels == c].mean(0) for c in range(3)])
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    got = centroids.class_centroids(emb, labels, 3, normalize_inputs=False)
    np.testing.assert_allclose(got, raw, atol=1e-6)
    prompts = emb.reshape(4, 5, 5)
    ref = (prompts / np.linalg.norm(prompts, axis=2, keepdims=True)).mean(1)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(centroids.text_centroids(prompts), ref, atol=1e-6)


def test_centroid_errors_are_named():
    emb = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="1 classes have no sample, e.g. class 2"):
        centroids.class_centroids(emb, np.array([0, 1, 0, 1]), 3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        centroids.class_centroids(emb, np.array([0, 1, 2, 1]), 2)
    with pytest.raises(ValueError, match=r"labels must be \(4,\)"):
        centroids.class_centroids(emb, np.array([0, 1]), 2)
    emb[1, 2] = np.nan
    with pytest.raises(NonFiniteError, match="emb has 1 non-finite"):
        centroids.class_centroids(emb, np.array([0, 1, 0, 1]), 2)


def _planted(seed=0):
    """A noise-free binary hierarchy: its tree, planted nodes and vectors."""
    key = jax.random.key(seed)
    k_tree, k_vec = jax.random.split(key)
    parent, leaves = synthetic.random_tree(k_tree, 16, 4, max_children=2)
    vec = synthetic.node_vectors(k_vec, parent, leaves, 32)
    return build(vec[leaves]), parent, leaves, vec


def _planted_lca(t, parent, leaves):
    depth = trees.depths(parent)
    out = {}
    for v in t.internal:
        common = set.intersection(
            *(
                set(trees.ancestors(parent, leaves[c]))
                for c in np.flatnonzero(t.leaf_sets[v])
            )
        )
        out[v] = max(common, key=lambda x: depth[x])
    return out


def test_naming_picks_the_planted_parent():
    t, parent, leaves, vec = _planted()
    rng = np.random.default_rng(1)
    names = [f"node{i}" for i in range(parent.size)] + [f"noun{i}" for i in range(20)]
    bank = np.concatenate([vec, rng.normal(size=(20, 32))])
    got, margins = naming.name_nodes(t, bank, names, exclude=[names[x] for x in leaves])
    for v, node in _planted_lca(t, parent, leaves).items():
        assert got[v] == f"node{node}"
        assert margins[v] > 0
    assert [got[c] for c in range(16)] == [names[x] for x in leaves]
    assert np.isnan(margins[:16]).all()


def test_leaf_exclusion_and_ancestor_constraint():
    t, parent, leaves, vec = _planted(2)
    lca = _planted_lca(t, parent, leaves)
    v = next(v for v in lca if t.leaf_sets[v].sum() == 2)  # a sibling pair
    a = int(np.flatnonzero(t.leaf_sets[v])[0])
    # Decoys: class a's own name on v's embedding (excluded inside L(v)),
    # and an off-ontology noun on v's embedding (removed by the constraint).
    names = [f"node{i}" for i in range(parent.size)]
    bank = np.concatenate([vec, t.node_emb[v][None], t.node_emb[v][None]])
    bank_names = names + [names[leaves[a]], "decoy"]
    exclude = [names[x] for x in leaves]
    got, _ = naming.name_nodes(t, bank[:-1], bank_names[:-1], exclude=exclude)
    assert got[v] == f"node{lca[v]}"
    # Without the planted parent in the bank, the class-name decoy wins
    # unless excluded.
    keep = np.arange(bank.shape[0] - 1) != lca[v]
    drop = [n for n, k in zip(bank_names[:-1], keep) if k]
    got, _ = naming.name_nodes(t, bank[:-1][keep], drop)
    assert got[v] == names[leaves[a]]
    got, _ = naming.name_nodes(t, bank[:-1][keep], drop, exclude=exclude)
    assert got[v] not in (names[leaves[a]], "")
    # Off-ontology decoy on v's embedding, planted parent removed: the decoy
    # wins unless the ancestor constraint keeps only ancestors of L(v).
    keep = np.arange(bank.shape[0]) != lca[v]
    drop = [n for n, k in zip(bank_names, keep) if k]
    got, _ = naming.name_nodes(t, bank[keep], drop, exclude=exclude)
    assert got[v] == "decoy"
    bank_onto = np.concatenate([np.arange(parent.size), [leaves[a], -1]])
    ok = naming.bank_ancestor_matrix(parent, bank_onto, leaves)
    got, _ = naming.name_nodes(
        t, bank[keep], drop, exclude=exclude, ancestor_ok=ok[keep]
    )
    above = [f"node{x}" for x in trees.ancestors(parent, lca[v])[1:]]
    assert got[v] in above
    ref = np.array(
        [[b in trees.ancestors(parent, c) for c in leaves] for b in range(parent.size)]
    )
    np.testing.assert_array_equal(ok[: parent.size], ref)
    assert not ok[-1].any()


def test_margins_and_indices_against_numpy():
    rng = np.random.default_rng(3)
    t = from_parent([4, 4, 5, 5, 6, 6, -1], np.arange(4), rng.normal(size=(4, 6)))
    bank = rng.normal(size=(5, 6))
    allowed = rng.random((7, 5)) < 0.6
    allowed[4] = [True, False, False, False, False]  # one candidate: margin NaN
    allowed[5] = False  # none: index -1
    sim = (
        t.node_emb.astype(float)
        @ (bank / np.linalg.norm(bank, axis=1, keepdims=True)).T
    )
    index, margin = map(np.asarray, naming.top2(sim.astype(np.float32), allowed))
    for v in range(7):
        s = np.sort(sim[v][allowed[v]])[::-1]
        assert index[v] == (np.flatnonzero(sim[v] == s[0])[0] if s.size else -1)
        if s.size >= 2:
            np.testing.assert_allclose(margin[v], s[0] - s[1], atol=1e-6)
        else:
            assert np.isnan(margin[v])


def test_naming_errors_are_named():
    t, parent, leaves, vec = _planted()
    with pytest.raises(ValueError, match=r"bank_emb must be \(B, 32\)"):
        naming.name_nodes(t, vec[:, :5], ["x"] * parent.size)
    with pytest.raises(ValueError, match="bank_names has 3 entries"):
        naming.name_nodes(t, vec, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"ancestor_ok must be \(B, n\)"):
        naming.name_nodes(
            t, vec, ["x"] * parent.size, ancestor_ok=np.ones((2, 2), bool)
        )
