"""Triplet agreement (LCA counting vs enumeration), cophenetic correlation,
edge consistency and leaf cover; synthetic hierarchies in the noise-free
limit and with growing noise."""

import itertools

import jax
import numpy as np
import pytest
import scipy.stats
from scipy.cluster.hierarchy import cophenet

from jaxcxai.hierarchy import centroids, consistency, naming, synthetic, trees
from jaxcxai.hierarchy.tree import build, from_parent
from tests.hierarchy.test_trees import python_ancestors, random_parent


def test_lca_counting_equals_bruteforce_enumeration():
    rng = np.random.default_rng(0)
    seen = set()
    for trial in range(12):
        n = int(rng.integers(3, 21)) if trial else 40
        pa = random_parent(rng, int(rng.integers(n, 2 * n + 5)))
        pb = random_parent(rng, int(rng.integers(n, 2 * n + 5)))
        la = rng.choice(pa.size, n, replace=False)
        lb = rng.choice(pb.size, n, replace=False)
        ours = consistency.triplet_agreement(pa, la, pb, lb)
        ref = consistency.triplet_agreement_bruteforce(pa, la, pb, lb)
        assert ours == ref or (np.isnan(ours) and np.isnan(ref))
        seen.add(round(ref, 2) if not np.isnan(ref) else None)
    assert len(seen) > 5  # many different values, not a constant


def test_counts_on_a_hand_example():
    # Ontology ((0, 1), (2, 3)) under root 4 via nodes 5, 6; tree
    # ((0, 2), (1, 3)). Resolved triplets: all 4 (each has a sibling pair);
    # the tree's closest pair never agrees. Triplet (0, 1, 2): onto (0, 1),
    # tree (0, 2).
    onto = np.array([5, 5, 6, 6, -1, 4, 4])
    tree = np.array([5, 6, 5, 6, -1, 4, 4])
    leaves = np.arange(4)
    assert consistency.triplet_counts(tree, leaves, onto, leaves) == (0, 4)
    assert consistency.triplet_counts(onto, leaves, onto, leaves) == (4, 4)
    # A star ontology (a polytomy) resolves nothing.
    star = np.array([4, 4, 4, 4, -1])
    assert consistency.triplet_counts(tree, leaves, star, leaves) == (0, 0)
    assert np.isnan(consistency.triplet_agreement(tree, leaves, star, leaves))


def test_sampling_uses_a_random_subset_of_max_n_classes():
    rng = np.random.default_rng(1)
    pa, pb = random_parent(rng, 60), random_parent(rng, 50)
    la, lb = rng.choice(60, 30, replace=False), rng.choice(50, 30, replace=False)
    key = jax.random.key(3)
    got = consistency.triplet_agreement(pa, la, pb, lb, max_n=12, key=key)
    pick = consistency.sample_classes(key, 30, 12)
    assert pick.size == 12 and np.unique(pick).size == 12
    ref = consistency.triplet_agreement_bruteforce(pa, la[pick], pb, lb[pick])
    assert got == ref
    exact = consistency.triplet_agreement(pa, la, pb, lb, max_n=30)
    assert exact == consistency.triplet_agreement(pa, la, pb, lb)
    with pytest.raises(ValueError, match="key is required"):
        consistency.triplet_agreement(pa, la, pb, lb, max_n=12)


def _synthetic_scores(seed, noise):
    key = jax.random.key(seed)
    emb, labels, parent, leaves = synthetic.hierarchical_embeddings(
        key, 16, 4, 32, noise, n_per_class=4, max_children=2
    )
    t = build(centroids.class_centroids(emb, labels, 16))
    # Bank: the planted node vectors, named by node index.
    vec = synthetic.node_vectors(jax.random.split(key, 3)[1], parent, leaves, 32)
    names = [f"node{i}" for i in range(parent.size)]
    index, _ = naming.match_bank(
        t, vec, bank_names=names, exclude=[names[x] for x in leaves]
    )
    onto_index = naming.node_ontology_index(t, index, np.arange(parent.size), leaves)
    return (
        consistency.triplet_agreement(t.parent, t.leaves, parent, leaves),
        consistency.edge_consistency(t, onto_index, parent),
    )


def test_synthetic_noise_free_limit_is_fully_consistent_and_noise_lowers_it():
    scores = {
        noise: np.mean([_synthetic_scores(s, noise) for s in range(2)], 0)
        for noise in (0.0, 0.5, 2.0)
    }
    np.testing.assert_array_equal(scores[0.0], [1.0, 1.0])
    assert (scores[0.5] < 1).all()
    assert (scores[2.0] < scores[0.5]).all()
    assert scores[2.0][0] < 0.6  # near chance (1/3) for triplets


def _path_distance_python(parent, leaves):
    paths = [python_ancestors(parent, int(x)) for x in leaves]
    return np.array([[len(set(a) ^ set(b)) for b in paths] for a in paths], dtype=float)


def test_cophenetic_correlation_against_scipy():
    rng = np.random.default_rng(4)
    onto = random_parent(rng, 25)
    leaves = rng.choice(25, 10, replace=False)
    t = build(rng.normal(size=(10, 6)))
    iu = np.triu_indices(10, 1)
    ref = scipy.stats.spearmanr(
        cophenet(t.linkage), _path_distance_python(onto, leaves)[iu]
    ).statistic
    got = consistency.cophenetic_correlation(t, onto, leaves)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    # The ontology against itself (path distances on both sides): 1.
    same = from_parent(onto, leaves, rng.normal(size=(10, 6)))
    np.testing.assert_allclose(
        consistency.cophenetic_correlation(same, onto, leaves), 1.0, rtol=1e-12
    )


def test_edge_consistency_and_leaf_cover_on_a_hand_example():
    # Ontology: 0 root; 1 animal -> 3 cat, 4 dog; 2 vehicle -> 5 car, 6 bus.
    onto = np.array([-1, 0, 0, 1, 1, 2, 2])
    # Tree over classes (cat, dog, car, bus) = nodes 0..3; 4 = {cat, dog},
    # 5 = {car, bus}, 6 = root. Name 5 "animal" (wrong), 4 "animal", root
    # "entity" (0).
    tree = from_parent(
        [4, 4, 5, 5, 6, 6, -1], np.arange(4), np.eye(4, dtype=np.float32)
    )
    onto_index = np.array([3, 4, 5, 6, 1, 1, 0])
    flags = consistency.edge_flags(tree, onto_index, onto)
    # Edges into: cat ok, dog ok, car (animal -> car) no, bus no, 4 ok, 5 ok.
    np.testing.assert_array_equal(flags, [1, 1, 0, 0, 1, 1, 0])
    assert consistency.edge_consistency(tree, onto_index, onto) == 4 / 6
    # LeafCover: node 4 covers 2/2, node 5 covers 0/2, root covers 4/4.
    mean, per_node = consistency.leaf_cover(tree, onto_index, onto, per_node=True)
    np.testing.assert_allclose(per_node[4:], [1.0, 0.0, 1.0])
    assert mean == pytest.approx(2 / 3)
    # A name outside the ontology (-1) is never consistent.
    onto_index[4] = -1
    # Edges into cat, dog (from 4) and into 4 (from the root) now fail.
    assert consistency.edge_consistency(tree, onto_index, onto) == 1 / 6
    with pytest.raises(ValueError, match=r"node_onto_index must be \(7,\)"):
        consistency.edge_flags(tree, onto_index[:5], onto)


def test_bruteforce_reference_enumerates_every_triplet():
    # Independent of the LCA-matrix code: checks the reference's own count
    # on a caterpillar ontology (((0, 1), 2), 3) against itself, where every
    # one of the C(4, 3) = 4 triplets is resolved.
    cat = np.array([4, 4, 5, 6, 5, 6, -1])
    assert len(list(itertools.combinations(range(4), 3))) == 4
    assert consistency.triplet_counts(cat, np.arange(4), cat, np.arange(4)) == (4, 4)
    assert (
        consistency.triplet_agreement_bruteforce(cat, np.arange(4), cat, np.arange(4))
        == 1.0
    )
    assert trees.lca_depth(cat, np.arange(4))[0, 1] == 2
