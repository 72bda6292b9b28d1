"""Hierarchical clustering with adaptive cluster extraction and purity, and
GMM/BIC sub-concept analysis over a low-dimensional embedding (as in the LoCE
reference code's `loce_clusterer.py` and `loce_dimension_reducer.py`).

Linkage uses scipy (exact tie-breaking, as the reference); GMMs use sklearn's
`GaussianMixture` (full covariance, k-means init, random_state=0); the 2-D
embedding is UMAP (umap-learn, optional) with a PCA / t-SNE fallback.
"""

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy.cluster import hierarchy

__all__ = [
    "RELAXED",
    "STRICT",
    "CategoryGmm",
    "adaptive_settings",
    "category_gmms",
    "cluster_centroids",
    "decision_regions",
    "embed_2d",
    "extract_clusters",
    "filtered_log_density",
    "fit_gmm_bic",
    "hac",
    "label_agnostic_gmm",
    "purity",
    "purity_over_seeds",
    "sample_per_class",
]

# (P_min, S_max coefficient): S_max = floor(coef * N_total).
RELAXED = (0.80, 0.05)
STRICT = (0.90, 0.025)


def adaptive_settings(n_total: int, strict: bool = False) -> tuple[float, int]:
    """(P_min, S_max) for N_total loaded LoCEs (relaxed or strict)."""
    p_min, coef = STRICT if strict else RELAXED
    return p_min, int(np.floor(coef * n_total))


def hac(x, method: str = "ward", metric: str = "euclidean") -> np.ndarray:
    """scipy linkage matrix (N-1, 4) of the rows of x (float64)."""
    return hierarchy.linkage(np.asarray(x, np.float64), method=method, metric=metric)


def _node_counts(z: np.ndarray, inv: np.ndarray, k: int) -> np.ndarray:
    """(2N-1, K) label counts under every node of the linkage tree."""
    n = len(inv)
    counts = np.zeros((2 * n - 1, k), np.int64)
    counts[np.arange(n), inv] = 1
    for i, (a, b) in enumerate(z[:, :2].astype(np.int64)):
        counts[n + i] = counts[a] + counts[b]
    return counts


def extract_clusters(
    z: np.ndarray,
    labels,
    mode: str = "adaptive",
    *,
    p_min: float = 0.8,
    s_max: int = 0,
    threshold: float | None = None,
) -> np.ndarray:
    """Cluster assignment (N,) from a linkage tree.

    Modes: "adaptive" walks down from the root; a node becomes a cluster if
    it is a leaf, has <= s_max leaves, or its purity max_c p(c) >= p_min,
    else both children are visited. "size" uses only s_max. "linkage" cuts at
    merge height `threshold` (scipy fcluster, criterion "distance").
    """
    if mode == "linkage":
        if threshold is None:
            raise ValueError("mode='linkage' needs a threshold")
        return hierarchy.fcluster(z, threshold, criterion="distance") - 1
    if mode not in ("adaptive", "size"):
        raise ValueError(f"mode must be adaptive|size|linkage, got {mode!r}")
    _, inv = np.unique(np.asarray(labels), return_inverse=True)
    n = len(inv)
    counts = _node_counts(z, inv, inv.max() + 1)
    assign = np.full(n, -1, np.int64)
    stack, cluster = [2 * n - 2], 0
    while stack:
        node = stack.pop()
        size = counts[node].sum()
        pure = mode == "adaptive" and counts[node].max() / size >= p_min
        if node < n or size <= s_max or pure:
            assign[_leaves(z, node, n)] = cluster
            cluster += 1
        else:
            a, b = z[node - n, :2].astype(np.int64)
            stack.extend((int(b), int(a)))  # visit the left child first
    return assign


def _leaves(z: np.ndarray, node: int, n: int) -> list[int]:
    out, stack = [], [node]
    while stack:
        m = stack.pop()
        if m < n:
            out.append(m)
        else:
            stack.extend(int(c) for c in z[m - n, :2])
    return out


def purity(assign, labels) -> tuple[float, int]:
    """(sum over clusters of the majority count / N, number of clusters)."""
    _, inv = np.unique(np.asarray(labels), return_inverse=True)
    assign = np.asarray(assign)
    table = np.zeros((assign.max() + 1, inv.max() + 1), np.int64)
    np.add.at(table, (assign, inv), 1)
    table = table[table.sum(1) > 0]
    return float(table.max(1).sum() / len(inv)), int(len(table))


def cluster_centroids(x, assign, labels, normalized: bool = True):
    """Cluster centroids and category distributions p(c | cluster).

    Returns:
      (centroids (M, C), probs (M, K), classes (K,)); clusters in id order.
    """
    classes, inv = np.unique(np.asarray(labels), return_inverse=True)
    x = np.asarray(x, np.float64)
    if normalized:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    m = np.asarray(assign).max() + 1
    cents = np.stack([x[assign == i].mean(0) for i in range(m)])
    probs = np.zeros((m, len(classes)))
    np.add.at(probs, (np.asarray(assign), inv), 1.0)
    return cents, probs / probs.sum(1, keepdims=True), classes


def sample_per_class(labels, n_per_class: int, seed: int) -> np.ndarray:
    """Indices of the first n_per_class of each class after a seeded shuffle."""
    labels = np.asarray(labels)
    order = np.random.default_rng(seed).permutation(len(labels))
    keep = [order[labels[order] == c][:n_per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def purity_over_seeds(
    x,
    labels,
    *,
    n_per_class: int = 100,
    seeds: Iterable[int] = range(50),
    method: str = "ward",
    metric: str = "euclidean",
    strict: bool = False,
    mode: str = "adaptive",
) -> dict[str, list]:
    """Purity and #clusters of HAC on seeded per-class subsets (the reference's
    `evaluate_many_purities`).

    S_max is floor(coef * N_total) with N_total = all loaded LoCEs (len(x)),
    not the subset size, as the reference.
    """
    p_min, s_max = adaptive_settings(len(np.asarray(labels)), strict)
    out: dict[str, list] = {"purity": [], "n_clusters": []}
    for seed in seeds:
        idx = sample_per_class(labels, n_per_class, seed)
        sub_labels = np.asarray(labels)[idx]
        z = hac(np.asarray(x)[idx], method, metric)
        p, k = purity(
            extract_clusters(z, sub_labels, mode, p_min=p_min, s_max=s_max), sub_labels
        )
        out["purity"].append(p)
        out["n_clusters"].append(k)
    return out


def embed_2d(
    x,
    method: str = "umap",
    *,
    n_neighbors: int = 15,
    metric: str = "euclidean",
    random_state: int = 42,
) -> np.ndarray:
    """2-D embedding: "umap" (umap-learn; PCA if not installed), "pca", "tsne"."""
    x = np.asarray(x, np.float64)
    if method == "umap":
        try:
            import umap
        except ImportError:
            method = "pca"
        else:
            reducer = umap.UMAP(
                n_components=2,
                n_neighbors=n_neighbors,
                metric=metric,
                random_state=random_state,
            )
            return reducer.fit_transform(x)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(2, random_state=random_state).fit_transform(x)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(2, metric=metric, random_state=random_state).fit_transform(x)
    raise ValueError(f"method must be umap|pca|tsne, got {method!r}")


def fit_gmm_bic(points, k_range: Sequence[int] = range(1, 6), random_state: int = 0):
    """The GaussianMixture (full covariance) with the lowest BIC over k_range.

    Returns:
      (best fitted GaussianMixture, {k: BIC}).
    """
    from sklearn.mixture import GaussianMixture

    points = np.asarray(points, np.float64)
    best, bics = None, {}
    for k in k_range:
        if k > len(points):
            break
        gmm = GaussianMixture(n_components=k, random_state=random_state).fit(points)
        bics[k] = float(gmm.bic(points))
        if best is None or bics[k] < bics[best.n_components]:
            best = gmm
    return best, bics


class CategoryGmm(NamedTuple):
    """Per-category GMM: `keep` marks components with weight > the outlier
    weight; `members` index the category's points, `component` their hard
    assignment and `outlier` those falling in a dropped component;
    `population` is the fraction of members per component."""

    gmm: Any
    bics: dict
    keep: np.ndarray
    members: np.ndarray
    component: np.ndarray
    outlier: np.ndarray
    population: np.ndarray


def category_gmms(
    emb, labels, k_max: int = 5, outlier_weight: float = 0.1, random_state: int = 0
) -> dict[Any, CategoryGmm]:
    """One BIC-selected GMM (k = 1..k_max) per category in the embedding."""
    emb, labels = np.asarray(emb, np.float64), np.asarray(labels)
    out = {}
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        gmm, bics = fit_gmm_bic(emb[members], range(1, k_max + 1), random_state)
        keep = gmm.weights_ > outlier_weight
        comp = gmm.predict(emb[members])
        pop = np.bincount(comp, minlength=gmm.n_components) / len(members)
        out[c] = CategoryGmm(gmm, bics, keep, members, comp, ~keep[comp], pop)
    return out


def label_agnostic_gmm(emb, k_max: int = 10, random_state: int = 0):
    """GMM over all points with one label, k = 1..k_max by BIC; (gmm, assignment)."""
    gmm, _ = fit_gmm_bic(emb, range(1, k_max + 1), random_state)
    return gmm, gmm.predict(np.asarray(emb, np.float64))


def filtered_log_density(cat: CategoryGmm, points) -> np.ndarray:
    """log sum over kept components of w_k N(x; mu_k, S_k) (weights not renormalized)."""
    from scipy.stats import multivariate_normal

    g = cat.gmm
    logs = [
        np.log(g.weights_[k])
        + multivariate_normal(g.means_[k], g.covariances_[k]).logpdf(points)
        for k in np.flatnonzero(cat.keep)
    ]
    return np.logaddexp.reduce(np.atleast_2d(np.stack(logs)), axis=0)


def decision_regions(
    emb, gmms: dict[Any, CategoryGmm], grid: int = 200, margin: float = 1.0
):
    """Category regions on a grid x grid mesh over the embedding's box +- margin.

    Returns:
      (xs (grid,), ys (grid,), region (grid, grid) indices into list(gmms)).
    """
    emb = np.asarray(emb)
    xs = np.linspace(emb[:, 0].min() - margin, emb[:, 0].max() + margin, grid)
    ys = np.linspace(emb[:, 1].min() - margin, emb[:, 1].max() + margin, grid)
    pts = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    dens = np.stack([filtered_log_density(g, pts) for g in gmms.values()])
    return xs, ys, dens.argmax(0).reshape(grid, grid)
