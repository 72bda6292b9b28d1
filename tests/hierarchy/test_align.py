"""Ontology-guided alignment: target distances, UMAP graph, loss, fits.

References are independent: brute-force LCA depths and triplet agreement,
a float64 NumPy bisection of UMAP's per-point bandwidth, float64 NumPy
losses, and UMAP's documented default kernel parameters. umap-learn's numba
compile is paid once, in the module-scoped `graph` fixture.
"""

import itertools

import jax
import numpy as np
import pytest
from scipy.cluster.hierarchy import cophenet, linkage
from scipy.spatial.distance import pdist, squareform
from scipy.special import logsumexp

from jaxcxai.checks import NonFiniteError
from jaxcxai.hierarchy import align, fuzzy

DEPTH, DIM = 4, 32
N = 2**DEPTH


def _ancestors(parent, i):
    out = [i]
    while parent[out[-1]] >= 0:
        out.append(parent[out[-1]])
    return out


def _lca_depth(parent, leaves):
    """Brute force: depth of the deepest common node of two root paths."""
    depth = [len(_ancestors(parent, i)) - 1 for i in range(len(parent))]
    paths = [set(_ancestors(parent, int(i))) for i in leaves]
    return np.array([[max(depth[c] for c in pa & pb) for pb in paths] for pa in paths])


def _triplet_agreement(emb, lca):
    """Share of resolved leaf triplets whose closest pair in the average-link
    tree of `emb` (cosine) is the ontology's (deepest LCA)."""
    coph = squareform(cophenet(linkage(pdist(emb, "cosine"), "average")))
    hits = total = 0
    for a, b, c in itertools.combinations(range(len(lca)), 3):
        depth = [lca[a, b], lca[a, c], lca[b, c]]
        if sorted(depth)[1] == max(depth):  # unresolved (polytomy)
            continue
        total += 1
        hits += np.argmax(depth) == np.argmin([coph[a, b], coph[a, c], coph[b, c]])
    return hits / total


@pytest.fixture(scope="module")
def tree():
    """Complete binary tree (16 leaves, depth 4) and a scrambled space: the
    leaves get the hierarchical embeddings of a random permutation."""
    parent = np.array([-1] + [(i - 1) // 2 for i in range(1, 2 * N - 1)])
    leaves = np.arange(N - 1, 2 * N - 1)
    lca = _lca_depth(parent, leaves)
    rng = np.random.default_rng(0)
    depth = np.array([len(_ancestors(parent, i)) - 1 for i in range(len(parent))])
    vec = rng.normal(size=(len(parent), DIM)) * 0.7 ** depth[:, None]
    clean = np.stack([vec[_ancestors(parent, int(i))].sum(0) for i in leaves])
    z = clean[rng.permutation(N)] + 0.05 * rng.normal(size=(N, DIM))
    return lca, (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def graph(tree):
    target = fuzzy.target_distances(tree[0])
    return target, fuzzy.fuzzy_graph(target, n_neighbors=8)


def test_target_distances_closed_forms(tree):
    lca = tree[0]
    off = ~np.eye(N, dtype=bool)
    np.testing.assert_allclose(fuzzy.target_distances(lca), (4 - lca) / 4 * off)
    path = fuzzy.target_distances(lca, kind="path")
    np.testing.assert_allclose(path, (8 - 2 * lca) / 8 * off)
    # Unbalanced: root -> {A, X}, X -> {B, C}; leaf depths 1, 2, 2.
    small = np.array([[1, 0, 0], [0, 2, 1], [0, 1, 2]])
    np.testing.assert_allclose(
        fuzzy.target_distances(small), [[0, 1, 1], [1, 0, 0.5], [1, 0.5, 0]]
    )
    np.testing.assert_allclose(
        fuzzy.target_distances(small, kind="path"),
        [[0, 1, 1], [1, 0, 2 / 3], [1, 2 / 3, 0]],
    )
    mu = np.random.default_rng(1).normal(size=(3, 5))
    unit = mu / np.linalg.norm(mu, axis=1, keepdims=True)
    cos = (1 - unit @ unit.T) * ~np.eye(3, dtype=bool)
    blend = fuzzy.target_distances(small, beta=0.3, centroids=mu)
    ref = 0.7 * np.array([[0, 1, 1], [1, 0, 0.5], [1, 0.5, 0]]) + 0.3 * cos
    np.testing.assert_allclose(blend, ref, atol=1e-12)


def test_target_distances_reject_bad_input(tree):
    lca = tree[0]
    with pytest.raises(ValueError, match="lca_depth must be a square"):
        fuzzy.target_distances(lca[:3])
    with pytest.raises(NonFiniteError, match="lca_depth"):
        fuzzy.target_distances(np.where(np.eye(N) > 0, np.nan, lca))
    with pytest.raises(ValueError, match="negative"):
        fuzzy.target_distances(-lca)
    with pytest.raises(ValueError, match="not symmetric"):
        fuzzy.target_distances(np.triu(lca))
    with pytest.raises(ValueError, match="deeper than one of its leaves"):
        fuzzy.target_distances(lca + 2 - 2 * np.eye(N, dtype=int))
    with pytest.raises(ValueError, match="needs the class centroids"):
        fuzzy.target_distances(lca, beta=0.5)
    with pytest.raises(ValueError, match="unknown kind 'height'"):
        fuzzy.target_distances(lca, kind="height")


def _umap_directed_reference(d, k):
    """Float64 NumPy: kNN (self first), rho = nearest other, sigma bisected
    so that sum over the k-1 others of exp(-(d - rho)/sigma) = log2 k."""
    n = len(d)
    out = np.zeros((n, n))
    for i in range(n):
        nn = np.argsort(d[i], kind="stable")[:k]
        others = d[i, nn[1:]]
        rho = others.min()
        lo, hi = 1e-9, 1e3
        for _ in range(200):
            mid = np.sqrt(lo * hi)
            if np.exp(-(others - rho) / mid).sum() > np.log2(k):
                hi = mid
            else:
                lo = mid
        out[i, nn[1:]] = np.exp(-(others - rho) / mid)
    return out


@pytest.mark.parametrize("k", [4, 7])
def test_fuzzy_graph_matches_umap_definition(graph, k):
    x = np.random.default_rng(2).normal(size=(12, 3))
    d = squareform(pdist(x))
    ref = _umap_directed_reference(d, k)
    directed = fuzzy.fuzzy_graph(d, k, symmetrize=False)
    np.testing.assert_allclose(directed, ref, atol=2e-4)
    union = fuzzy.fuzzy_graph(d, k)
    np.testing.assert_allclose(union, ref + ref.T - ref * ref.T, atol=4e-4)
    inter = fuzzy.fuzzy_graph(d, k, set_op_mix_ratio=0.0)
    np.testing.assert_allclose(inter, ref * ref.T, atol=4e-4)


def test_fuzzy_graph_of_tree_targets(tree, graph):
    lca, (_, p) = tree[0], graph
    np.testing.assert_array_equal(p, p.T)
    assert p.min() >= 0 and p.max() <= 1 and not np.diag(p).any()
    np.testing.assert_allclose(p[lca == DEPTH - 1], 1.0)  # siblings: nearest
    # k = 8: the 7 others of a depth-1 subtree, nothing across the root.
    assert ((p > 0) == ((lca >= 1) & ~np.eye(N, dtype=bool))).all()


def test_fuzzy_graph_rejects_bad_input(graph):
    target = graph[0]
    with pytest.raises(ValueError, match="dist must be a square"):
        fuzzy.fuzzy_graph(target[:, :5])
    bad = target.copy()
    bad[0, 0] = np.nan
    with pytest.raises(NonFiniteError, match="dist has 1 non-finite"):
        fuzzy.fuzzy_graph(bad)
    with pytest.raises(ValueError, match="negative distances"):
        fuzzy.fuzzy_graph(-target)
    with pytest.raises(ValueError, match="zero diagonal"):
        fuzzy.fuzzy_graph(target + 1)
    with pytest.raises(ValueError, match="not symmetric"):
        fuzzy.fuzzy_graph(np.triu(target))
    with pytest.raises(ValueError, match="n_neighbors must lie in"):
        fuzzy.fuzzy_graph(target, N + 1)


def test_curve_params_are_umaps_defaults():
    # umap-learn's documented defaults for spread 1, min_dist 0.1.
    np.testing.assert_allclose(fuzzy.curve_params(1.0, 0.1), (1.577, 0.8951), rtol=1e-3)
    a, b = fuzzy.curve_params(1.0, 0.5)
    d = np.linspace(0, 3, 301)
    curve = np.where(d < 0.5, 1.0, np.exp(-(d - 0.5)))
    assert np.abs(1 / (1 + a * d ** (2 * b)) - curve).max() < 0.1
    with pytest.raises(ValueError, match="min_dist"):
        fuzzy.curve_params(1.0, 2.0)


def _loss_reference(y, z, p, lam, a, b, images=None, labels=None, temp=0.01):
    """Float64 NumPy: mean off-diagonal fuzzy CE + lam * fidelity + CE."""
    n = len(y)
    d2 = ((y[:, None, :] - y[None, :, :]) ** 2).sum(-1) + 1e-12
    q = 1 / (1 + a * d2**b)
    ce = -(p * np.log(q) + (1 - p) * np.log(1 - q))
    nbr = ce[~np.eye(n, dtype=bool)].mean()
    fid = ((y - z) ** 2).sum(-1).mean()
    zs = 0.0
    if images is not None:
        logits = images @ y.T / temp
        zs = (logsumexp(logits, axis=1) - logits[np.arange(len(labels)), labels]).mean()
    return nbr + lam * fid + zs, nbr, fid, zs


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_loss_matches_float64_numpy(tree, graph, kind):
    z, p = tree[1], graph[1]
    params, apply = align.init_transform(jax.random.key(0), DIM, kind, hidden=8)
    rng = np.random.default_rng(3)
    params = jax.tree.map(lambda t: t + 0.1 * rng.normal(size=t.shape), params)
    params = jax.tree.map(lambda t: np.asarray(t, np.float32), params)
    p64 = {k: np.float64(v) for k, v in params.items()}
    if kind == "linear":
        y = z @ p64["w"]
    else:
        h = np.maximum(z @ p64["w1"] + p64["b1"], 0) @ p64["w2"] + p64["b2"]
        y = z + h
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    labels = rng.integers(0, N, 40)
    images = z[labels] + 0.3 * rng.normal(size=(40, DIM))
    a, b = 1.577, 0.895
    zero_shot = align.ZeroShot(images.astype(np.float32), labels)
    loss = jax.jit(align.alignment_loss, static_argnums=1)
    total, terms = loss(params, apply, z, p, 0.7, a, b, zero_shot)
    ref = _loss_reference(y, z, p, 0.7, a, b, images, labels)
    got = (total, terms["nbr"], terms["fidelity"], terms["zero_shot"])
    np.testing.assert_allclose(np.array(got, np.float64), ref, rtol=2e-4)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_identity_at_init_and_infinite_lambda(tree, graph, kind):
    z, p = tree[1], graph[1]
    params, apply = align.init_transform(jax.random.key(0), DIM, kind)
    np.testing.assert_allclose(apply(params, z), z, atol=1e-6)
    fit, apply = align.fit_transform(jax.random.key(0), z, p, kind, np.inf, steps=5)
    jax.tree.map(np.testing.assert_array_equal, fit, params)
    fit, _ = align.fit_transform(jax.random.key(0), z, p, kind, 1.0, steps=0)
    jax.tree.map(np.testing.assert_array_equal, fit, params)


def test_linear_sweep_raises_consistency_on_scrambled_space(tree, graph):
    (lca, z), (target, p) = tree, graph

    def evaluate(aligned, transform):
        # The transform handed over is the one that produced `aligned`.
        np.testing.assert_allclose(transform(z), aligned, atol=1e-6)
        return {
            "triplets": _triplet_agreement(aligned, lca),
            "cophenetic": align.cophenetic_score(aligned, target),
        }

    sweep = align.lambda_sweep(jax.random.key(1), z, p, [0.0, 0.1, 1.0, np.inf],
                               evaluate=evaluate, steps=300, lr=1e-2)  # fmt: skip
    assert set(sweep.metrics) == {"nbr", "fidelity", "zero_shot", "triplets",
                                  "cophenetic"}  # fmt: skip
    for i, lam in enumerate(sweep.lams):  # the stacked params are each lam's
        one = jax.tree.map(lambda t, i=i: t[i], sweep.params)
        agree = _triplet_agreement(np.asarray(sweep.apply(one, z)), lca)
        assert agree == sweep.metrics["triplets"][i], lam
    # lam = inf is the scrambled space itself; small lam recovers the tree.
    agree = sweep.metrics["triplets"]
    assert agree[-1] == pytest.approx(_triplet_agreement(z, lca))
    assert agree[-1] < 0.4 and agree[0] > 0.95 and agree[1] > 0.95, agree
    cophen = sweep.metrics["cophenetic"]
    assert cophen[-1] < 0.2 and cophen[0] > 0.9, cophen
    # The fidelity weight trades plausibility for staying near z.
    fid = sweep.metrics["fidelity"]
    assert np.all(np.diff(fid) < 0) and fid[-1] < 1e-10, fid
    assert np.all(np.diff(sweep.metrics["nbr"]) > 0), sweep.metrics["nbr"]


def test_mlp_fit_raises_consistency_on_scrambled_space(tree, graph):
    (lca, z), p = tree, graph[1]
    params, apply = align.fit_transform(jax.random.key(1), z, p, "mlp", 0.0, 300)
    before, after = (
        _triplet_agreement(z, lca),
        _triplet_agreement(apply(params, z), lca),
    )
    assert before < 0.4 and after > 0.95, (before, after)


def test_zero_shot_term_keeps_accuracy(tree, graph):
    (lca, z), p = tree, graph[1]
    rng = np.random.default_rng(5)
    labels = rng.integers(0, N, 200)
    images = z[labels] + 0.15 * rng.normal(size=(200, DIM))
    images = (images / np.linalg.norm(images, axis=1, keepdims=True)).astype(np.float32)

    def fit(zero_shot):
        params, apply = align.fit_transform(jax.random.key(0), z, p, "linear", 0.0,
                                            300, zero_shot=zero_shot)  # fmt: skip
        classes = np.asarray(apply(params, z))
        acc = (np.argmax(images @ classes.T, axis=1) == labels).mean()
        return acc, _triplet_agreement(classes, lca)

    plain = fit(None)
    kept = fit(align.ZeroShot(images, labels, weight=0.1, temperature=0.01))
    # Aligning the class embeddings alone breaks zero-shot classification;
    # the zero-shot term keeps it while the tree is still recovered.
    assert plain[0] < 0.3 and plain[1] > 0.95, plain
    assert kept[0] > 0.9 and kept[1] > 0.95, kept


def _average_ranks(v):
    ranks = np.empty(len(v))
    ranks[np.argsort(v, kind="stable")] = np.arange(len(v))
    for u in np.unique(v):  # ties share their mean rank
        ranks[v == u] = ranks[v == u].mean()
    return ranks


def test_default_evaluate_is_cophenetic_spearman(tree, graph):
    z, (target, p) = tree[1], graph
    sweep = align.lambda_sweep(jax.random.key(1), z, p, [np.inf], target=target,
                               steps=3)  # fmt: skip
    coph = cophenet(linkage(pdist(z.astype(np.float64), "cosine"), "average"))
    ref = np.corrcoef(_average_ranks(coph), _average_ranks(squareform(target)))
    np.testing.assert_allclose(sweep.metrics["cophenetic"], [ref[0, 1]], rtol=1e-5)


def test_fit_rejects_bad_input(tree, graph):
    z, p = tree[1], graph[1]
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"p must be \(16, 16\)"):
        align.fit_transform(key, z, p[:4, :4])
    with pytest.raises(ValueError, match=r"memberships in \[0, 1\]"):
        align.fit_transform(key, z, p * 2)
    bad = z.copy()
    bad[0, 0] = np.nan
    with pytest.raises(NonFiniteError, match="z has 1 non-finite"):
        align.fit_transform(key, bad, p)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        align.fit_transform(key, z, p, lam=-1.0)
    with pytest.raises(ValueError, match="unknown transform kind 'rbf'"):
        align.fit_transform(key, z, p, kind="rbf")
    with pytest.raises(ValueError, match="zero_shot.labels"):
        align.fit_transform(key, z, p, zero_shot=align.ZeroShot(z, np.full(N, N)))
    with pytest.raises(ValueError, match="needs target distances"):
        align.lambda_sweep(key, z, p, [1.0])
