"""LoCE analyses: distances, separation/overlap, retrieval, clustering, GMMs,
outliers, centroids and figures, against brute force and planted structure."""

import functools
import io

import numpy as np
import pytest

from jaxcxai.concepts.loce import analysis as la
from jaxcxai.concepts.loce import clustering as lc
from jaxcxai.concepts.loce import fit as loce
from jaxcxai.concepts.loce import plots as loce_plots
from jaxcxai.data.resample import interpolation_matrix


def _d(x, metric="euclidean"):
    x = np.asarray(x, np.float64)
    if metric == "cosine":
        n = np.linalg.norm(x, axis=1, keepdims=True)
        xn = x / np.where(n > 0, n, 1)
        return 1 - xn @ xn.T
    return np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))


def _data(seed=0, sizes=(7, 5, 9), c=4, spread=1.0):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([[k] * n for k, n in enumerate(sizes)])
    x = (
        rng.normal(size=(len(labels), c)) * spread
        + rng.normal(size=(len(sizes), c))[labels] * 2
    )
    return x.astype(np.float32), labels


def test_distances_match_numpy():
    x, _ = _data()
    x[3] = 0.0  # zero vector: cosine distance 1 to everything, as sklearn
    for metric in ("euclidean", "cosine"):
        want = _d(x, metric)
        if metric == "cosine":
            want[3, :], want[:, 3] = 1.0, 1.0
        got = np.asarray(la.pairwise_distances(x, metric=metric))
        np.testing.assert_allclose(
            got[~np.eye(len(x), dtype=bool)],
            want[~np.eye(len(x), dtype=bool)],
            atol=2e-5,
        )


def test_separation_and_overlap_match_brute_force():
    x, y = _data(1)
    d = _d(x)
    classes, si, intra, inter = la.separation_index(x, y)
    _, sep = la.pairwise_separation(x, y)
    _, ov = la.overlap_ratio(x, y)
    for c in classes:
        pc, oc = np.flatnonzero(y == c), np.flatnonzero(y != c)
        n = len(pc)
        want_intra = d[np.ix_(pc, pc)].sum() / (n * (n - 1))
        want_inter = d[np.ix_(pc, oc)].min()
        np.testing.assert_allclose(
            [intra[c], inter[c], si[c]],
            [want_intra, want_inter, want_inter / want_intra],
            rtol=1e-4,
        )
        for e in classes:
            pe = np.flatnonzero(y == e)
            both = np.concatenate([pc, pe])
            want_sep = (
                0.0
                if c == e
                else d[np.ix_(pc, pe)].min() / (d[np.ix_(both, both)].max() + 1e-6)
            )
            np.testing.assert_allclose(sep[c, e], want_sep, rtol=1e-4, atol=1e-6)
            hits = 0
            for i in pc:
                own = min(d[i, k] for k in pc if k != i)
                hits += c != e and d[i, pe].min() < own
            np.testing.assert_allclose(ov[c, e], hits / n, atol=1e-7)
    np.testing.assert_allclose(sep, np.asarray(sep).T, atol=1e-7)


def _np_retrieval(x, y, k):
    d = _d(x, "cosine")
    np.fill_diagonal(d, np.inf)
    prec, ap = [], []
    for i in range(len(x)):
        order = np.argsort(d[i], kind="stable")[: len(x) - 1]
        rel = (y[order] == y[i]).astype(float)
        prec.append(rel[:k].mean())
        p = np.cumsum(rel) / np.arange(1, len(rel) + 1)
        r = rel.sum()
        ap.append((p * rel).sum() / r if r else np.nan)
    return np.array(prec), np.array(ap)


def test_retrieval_matches_brute_force():
    x, y = _data(2, sizes=(6, 4, 8, 1))
    prec, ap = _np_retrieval(x, y, 5)
    classes = np.unique(y)
    got = la.mean_precision_at_k(x, y, ks=(1, 5))
    np.testing.assert_allclose(
        got[5], np.mean([prec[y == c].mean() for c in classes]), rtol=1e-5
    )
    np.testing.assert_allclose(
        la.mean_precision_at_k(x, y, ks=(5,), average="query")[5],
        prec.mean(),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="must be in"):
        la.mean_precision_at_k(x, y, ks=(len(x),))
    mean_ap, per = la.average_precision(x, y)
    np.testing.assert_allclose(
        np.asarray(per), ap, rtol=1e-5
    )  # NaN for the singleton class
    valid = ~np.isnan(ap)
    np.testing.assert_allclose(
        mean_ap, np.mean([ap[valid & (y == c)].mean() for c in classes[:3]]), rtol=1e-5
    )


def test_retrieval_sanity_separated_and_random_labels():
    rng = np.random.default_rng(3)
    centers = np.eye(8)[:4] * 10
    y = np.repeat(np.arange(4), 10)
    x = centers[y] + rng.normal(size=(40, 8)) * 0.1
    assert la.mean_precision_at_k(x, y, ks=(1, 5, 9)) == {1: 1.0, 5: 1.0, 9: 1.0}
    assert la.average_precision(x, y)[0] == pytest.approx(1.0)
    # Random labels: E[P@k] = sum_c (n_c - 1)/(N - 1) * n_c / N over queries.
    x = rng.normal(size=(200, 6))
    sizes = np.array([100, 60, 40])
    base = np.repeat(np.arange(3), sizes)
    expected = np.sum((sizes - 1) / 199 * sizes / 200)
    got = np.mean(
        [
            la.mean_precision_at_k(x, rng.permutation(base), ks=(5,), average="query")[
                5
            ]
            for _ in range(10)
        ]
    )
    assert got == pytest.approx(expected, abs=0.015)


def _clouds(rng, centers, labels, noise, c):
    """LoCE-like vectors whose noise lives in a 2-D subspace (thin clouds)."""
    basis = np.linalg.qr(rng.normal(size=(c, 2)))[0]
    return centers[labels] + (rng.normal(size=(len(labels), 2)) * noise) @ basis.T


def test_planted_confusion_bus_truck():
    rng = np.random.default_rng(4)
    c = 16
    u = rng.choice([-1.0, 1.0], (2, c))  # u_bus == u_truck, u_cat distinct
    y = np.repeat(np.array(["bus", "truck", "cat"]), 100)
    centers = np.stack([u[0], u[0], u[1]])
    x = _clouds(rng, centers, np.repeat(np.arange(3), 100), 0.3, c)
    classes, sep = la.pairwise_separation(x, y)
    b, t, k = (list(classes).index(n) for n in ("bus", "truck", "cat"))
    assert sep[b, t] < 0.02 and sep[b, k] > 0.3
    _, ov = la.overlap_ratio(x, y)
    assert 0.35 < ov[b, t] < 0.65 and 0.35 < ov[t, b] < 0.65 and ov[k, b] == 0
    prec = la.mean_precision_at_k(x[:200], y[:200], ks=(10,), average="query")[10]
    assert prec == pytest.approx(99 / 199, abs=0.08)


@functools.cache
def _planted_loces(seed=5, n=50, c=16):
    """Fitted LoCEs: car has modes u1 (60%) / u2 (40%); cat has u3 close to u2."""
    rng = np.random.default_rng(seed)
    u1, u3 = rng.choice([-1.0, 1.0], (2, c))
    u2 = u3.copy()
    u2[:4] *= -1  # cos(u2, u3) = 0.5, u1 unrelated: u2 merges with cat first
    modes = np.concatenate([rng.choice([0, 1], n, p=[0.6, 0.4]), np.full(n, 2)])
    dirs = np.stack([u1, u2, u3])[modes] / np.sqrt(c)
    yy, xx = np.mgrid[:8, :8]
    m = np.stack(
        [
            (
                ((yy - rng.uniform(2, 6)) ** 2 + (xx - rng.uniform(2, 6)) ** 2) < 6
            ).astype(float)
            for _ in modes
        ]
    )
    acts = (
        0.5 * rng.normal(size=(len(modes), c, 8, 8))
        + 3 * (2 * m[:, None] - 1) * dirs[:, :, None, None]
    )
    a = interpolation_matrix(8, 16)
    t = np.einsum("Hh,nhw,Ww->nHW", a, m, a)
    v = np.asarray(loce.fit_batch(acts.astype(np.float32), t.astype(np.float32)))
    labels = np.where(modes < 2, "car", "cat")
    return v, labels, modes


def test_planted_subconcepts_bic_and_clustering():
    v, labels, modes = _planted_loces()
    emb = lc.embed_2d(v, "pca")
    gmms = lc.category_gmms(emb, labels)
    assert gmms["car"].gmm.n_components == 2 and gmms["cat"].gmm.n_components == 1
    assert sorted(np.round(gmms["car"].population, 1)) == sorted(
        np.round(np.bincount(modes[modes < 2]) / np.sum(modes < 2), 1)
    )
    p_min, s_max = lc.adaptive_settings(len(v))
    z = lc.hac(v)
    p, k = lc.purity(lc.extract_clusters(z, modes, p_min=p_min, s_max=s_max), modes)
    assert p > 0.98
    car_clusters = lc.extract_clusters(z, labels, p_min=p_min, s_max=s_max)[
        labels == "car"
    ]
    assert len(np.unique(car_clusters)) >= 2
    runs = lc.purity_over_seeds(v, modes, n_per_class=20, seeds=range(3))
    assert min(runs["purity"]) > 0.95 and len(runs["n_clusters"]) == 3
    gmm, assign = lc.label_agnostic_gmm(emb, k_max=5)
    assert gmm.n_components == 3 and lc.purity(assign, modes)[0] > 0.95
    xs, ys, region = lc.decision_regions(emb, gmms, grid=20)
    assert region.shape == (20, 20) and set(np.unique(region)) == {0, 1}


@pytest.mark.slow
def test_planted_subconcepts_bic_on_umap():
    pytest.importorskip("umap")
    v, labels, _ = _planted_loces()
    emb = lc.embed_2d(v, "umap", n_neighbors=lc.adaptive_settings(len(v))[1])
    assert lc.category_gmms(emb, labels)["car"].gmm.n_components == 2


def test_adaptive_extraction_and_purity_by_hand():
    # Points on a line: {0, 1} tight, {10, 11} tight, 30 far away.
    x = np.array([[0.0], [1.0], [10.0], [11.0], [30.0]])
    labels = np.array(["a", "b", "b", "b", "b"])
    z = lc.hac(x, "single")
    # Root: 4/5 "b" = 0.8 >= 0.8 -> one cluster; strict 0.9 -> descend.
    assert lc.purity(lc.extract_clusters(z, labels, p_min=0.8), labels) == (0.8, 1)
    assign = lc.extract_clusters(z, labels, p_min=0.9, s_max=1)
    # Root splits into {0,1,10,11} (3/4 b) and {30}; then {0,1} (impure) and {10,11} (pure).
    assert lc.purity(assign, labels) == (1.0, 4)
    assert len(set(assign[[2, 3]])) == 1 and assign[0] != assign[1]
    assert lc.purity(lc.extract_clusters(z, labels, "size", s_max=2), labels) == (
        0.8,
        3,
    )
    assert lc.purity(
        lc.extract_clusters(z, labels, "linkage", threshold=5.0), labels
    ) == (0.8, 3)
    idx = lc.sample_per_class(np.repeat([0, 1], [5, 3]), 2, seed=0)
    assert len(idx) == 4 and np.bincount(np.repeat([0, 1], [5, 3])[idx]).tolist() == [
        2,
        2,
    ]


def test_outlier_recall():
    rng = np.random.default_rng(6)
    u, w = rng.choice([-1.0, 1.0], (2, 32))
    x = np.concatenate(
        [u + 0.3 * rng.normal(size=(95, 32)), w + 0.3 * rng.normal(size=(5, 32))]
    )
    planted = set(range(95, 100))
    for scores in (la.cosine_outlier_scores(x), la.lof_scores(x), la.iforest_scores(x)):
        top = set(np.argsort(-np.asarray(scores))[:5].tolist())
        assert len(top & planted) >= 4


def test_centroids_prediction_and_projection_segmentation():
    x, y = _data(7)
    classes, cents = la.centroids(x, y)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(cents, [xn[y == c].mean(0) for c in classes], rtol=1e-5)
    from sklearn.neighbors import KNeighborsClassifier

    q = np.random.default_rng(8).normal(size=(6, 4)) * 2
    _, proba = la.knn_predict_proba(x, y, q, k=3)
    np.testing.assert_allclose(
        proba, KNeighborsClassifier(3).fit(x, y).predict_proba(q), atol=1e-6
    )
    assign = np.arange(len(y)) % 4
    cc, probs, _ = lc.cluster_centroids(x, assign, y, normalized=False)
    got = la.nearest_centroid_proba(q, cc, probs)
    np.testing.assert_allclose(
        got, probs[np.argmin(_d(np.concatenate([q, cc]))[:6, 6:], 1)], atol=1e-6
    )
    # A planted direction segments its blob from two layers of different size.
    rng = np.random.default_rng(9)
    u = rng.choice([-1.0, 1.0], 8)
    m = np.zeros((16, 16))
    m[4:12, 2:9] = 1
    down = interpolation_matrix(16, 8, "area")
    acts = {
        "fine": (2 * m - 1)[None] * u[:, None, None],
        "coarse": (2 * down @ m @ down.T - 1)[None] * u[:, None, None],
    }
    mask, soft = la.project_segmentation({"fine": u, "coarse": u}, acts, (32, 32))
    big = np.kron(m, np.ones((2, 2))) > 0
    assert (mask & big).sum() / (mask | big).sum() > 0.9 and soft.shape == (32, 32)


def test_figures_render():
    import matplotlib

    matplotlib.use("Agg")
    v, labels, modes = _planted_loces()
    emb = lc.embed_2d(v, "pca")
    gmms = lc.category_gmms(emb, labels, k_max=2)
    z = lc.hac(v)
    figs = [
        loce_plots.plot_embedding(
            emb, labels, gmms, lc.decision_regions(emb, gmms, grid=10)
        ),
        loce_plots.plot_dendrogram(z, labels, title="purity"),
        loce_plots.plot_separation_heatmap(
            *reversed(la.pairwise_separation(v, labels))
        ),
        loce_plots.plot_retrieval_curves(
            {"mid": la.mean_precision_at_k(v, labels, ks=(1, 5))}
        ),
        loce_plots.plot_outlier_tiles(
            [np.zeros((4, 4))] * 3, np.arange(3.0), boxes=[(0, 0, 2, 2)] * 3
        ),
        loce_plots.plot_projection_overlay(
            np.zeros((8, 8, 3)), np.eye(8), threshold=0.5, truth=np.eye(8) > 0
        ),
    ]
    for fig in figs:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert buf.tell() > 1000
