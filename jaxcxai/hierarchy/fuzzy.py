"""Target distances, UMAP's fuzzy neighbourhood graph, its kernel and loss.

The target distances come from the desired hierarchy's LCA depths. The target
neighbourhoods of the ontology-guided alignment are UMAP's fuzzy
simplicial set of a precomputed target distance matrix (McInnes, Healy &
Melville 2018, "UMAP: Uniform Manifold Approximation and Projection", §3),
computed by umap-learn. The transformed embeddings' neighbourhoods use UMAP's
kernel q = 1 / (1 + a d^{2b}) and the two graphs are compared with UMAP's fuzzy
set cross-entropy.

Reconstruction (xai.md 3.2 step 6): the paper (Schwalbe et al., arXiv:2603.26798)
says UMAP generates the target neighbourhoods; the graph, kernel and loss
below are umap-learn's, wired as `align.fit_transform` expects (each one a
small swappable function).

umap-learn imports numba (10-20 s on first import), so it is imported inside
the functions that need it, never at module import.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.checks import check_finite

__all__ = [
    "check_distances",
    "curve_params",
    "fuzzy_cross_entropy",
    "fuzzy_graph",
    "log_membership",
    "target_distances",
]


def check_distances(dist, name: str = "dist", *, atol: float = 1e-5) -> np.ndarray:
    """Checks a distance matrix: square, finite, non-negative, symmetric, zero
    diagonal; returns it as float64 NumPy.

    Raises:
      ValueError: naming `name` and what is wrong (shape, sign, asymmetry,
        non-zero diagonal).
      NonFiniteError: `name` holds NaN or inf.
    """
    d = np.asarray(dist)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"{name} must be a square (n, n) matrix, got shape {d.shape}")
    if d.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 points, got {d.shape[0]}")
    if not np.issubdtype(d.dtype, np.number) or np.issubdtype(
        d.dtype, np.complexfloating
    ):
        raise ValueError(f"{name} must be a real numeric array, got dtype {d.dtype}")
    check_finite({name: d})
    d = d.astype(np.float64)
    if (d < 0).any():
        raise ValueError(f"{name} has {int((d < 0).sum())} negative distances")
    tol = atol * max(1.0, float(d.max()))
    if np.abs(d - d.T).max() > tol:
        raise ValueError(
            f"{name} is not symmetric (max |d - d.T| = {np.abs(d - d.T).max():.3g})"
        )
    if np.abs(np.diag(d)).max() > tol:
        raise ValueError(f"{name} must have a zero diagonal (self-distance)")
    return d


def target_distances(lca_depth, beta: float = 0.0, centroids=None, *, kind="lca"):
    """Target class distances D* from the desired hierarchy, in [0, 1].

    Reconstruction (xai.md 3.2 step 6 (i)). With L = `lca_depth` and
    H = max_a L_aa (the deepest leaf):
      * kind="lca": D*_ab = (H - L_ab) / H, the height of LCA(a, b) over H;
      * kind="path": D*_ab = (L_aa + L_bb - 2 L_ab) / max, the tree path
        length, scaled to a maximum of 1.
    Then optionally blended with the original cosine distance:
    D* <- (1 - beta) D* + beta (1 - <mu_a, mu_b>) (centroids normalised).

    Args:
      lca_depth: (n, n) depth of the lowest common ancestor of every leaf
        pair (`trees.lca_depth`); the diagonal holds the leaf depths.
      beta: blend weight in [0, 1] of the original distance.
      centroids: (n, D) class centroids, needed when beta > 0.
      kind: "lca" or "path".

    Returns:
      (n, n) float64 symmetric distances with a zero diagonal.
    """
    lca = np.asarray(lca_depth)
    if lca.ndim != 2 or lca.shape[0] != lca.shape[1]:
        raise ValueError(f"lca_depth must be a square (n, n) matrix, got {lca.shape}")
    check_finite({"lca_depth": lca})
    lca = lca.astype(np.float64)
    n = lca.shape[0]
    leaf = np.diag(lca)
    if (lca < 0).any():
        raise ValueError("lca_depth has negative depths")
    if not np.array_equal(lca, lca.T):
        raise ValueError("lca_depth is not symmetric")
    if (lca > np.minimum(leaf[:, None], leaf[None, :])).any():
        raise ValueError("lca_depth has an LCA deeper than one of its leaves")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    if kind == "lca":
        top = leaf.max()
        if top <= 0:
            raise ValueError("lca_depth: every leaf is the root (max depth 0)")
        dist = (top - lca) / top
    elif kind == "path":
        dist = leaf[:, None] + leaf[None, :] - 2.0 * lca
        dist = dist / max(dist.max(), 1.0)
    else:
        raise ValueError(f"unknown kind {kind!r}; use 'lca' or 'path'")
    np.fill_diagonal(dist, 0.0)
    if beta > 0:
        if centroids is None:
            raise ValueError("beta > 0 needs the class centroids")
        mu = np.asarray(centroids, np.float64)
        if mu.ndim != 2 or mu.shape[0] != n:
            raise ValueError(f"centroids must be ({n}, D), got shape {mu.shape}")
        check_finite({"centroids": mu})
        mu = mu / np.maximum(np.linalg.norm(mu, axis=1, keepdims=True), 1e-12)
        cos = np.clip(1.0 - mu @ mu.T, 0.0, 2.0)
        np.fill_diagonal(cos, 0.0)
        dist = (1.0 - beta) * dist + beta * cos
    return dist


def curve_params(spread: float = 1.0, min_dist: float = 0.1) -> tuple[float, float]:
    """UMAP's (a, b) of the kernel q(d) = 1 / (1 + a d^{2b}).

    umap-learn fits them by least squares to the curve that is 1 below
    `min_dist` and exp(-(d - min_dist) / spread) above it.
    """
    if not (np.isfinite(spread) and spread > 0):
        raise ValueError(f"spread must be a positive finite number, got {spread}")
    if not (np.isfinite(min_dist) and 0 <= min_dist <= spread):
        raise ValueError(f"min_dist must lie in [0, spread={spread}], got {min_dist}")
    from umap.umap_ import find_ab_params  # lazy: numba import is slow

    a, b = find_ab_params(spread, min_dist)
    return float(a), float(b)


def fuzzy_graph(
    dist,
    n_neighbors: int = 15,
    *,
    local_connectivity: float = 1.0,
    set_op_mix_ratio: float = 1.0,
    symmetrize: bool = True,
) -> np.ndarray:
    """UMAP's fuzzy simplicial set of a precomputed distance matrix, dense.

    Reconstruction (xai.md 3.2 step 6 (ii)): the target neighbourhood graph
    P of the alignment. umap-learn's `fuzzy_simplicial_set(metric=
    "precomputed")` on an exact kNN: per point, its `n_neighbors` nearest
    (itself included; ties by index) get memberships exp(-(d - rho_i) /
    sigma_i), rho_i the distance to the nearest other point and sigma_i set
    so that they sum to log2(k); the directed graph A is then symmetrised by the fuzzy union A + A^T - A*A^T
    (`set_op_mix_ratio` = 1; 0 gives the intersection A*A^T).

    Args:
      dist: (n, n) symmetric non-negative distances with a zero diagonal.
      n_neighbors: neighbourhood size k, 2 <= k <= n.
      local_connectivity: neighbours assumed connected (membership 1).
      set_op_mix_ratio: union (1) to intersection (0) mix.
      symmetrize: False returns the directed graph A (rows = sources).

    Returns:
      P: (n, n) float32 in [0, 1], zero diagonal; symmetric if `symmetrize`.
    """
    d = check_distances(dist, "dist")
    n = d.shape[0]
    if not 2 <= int(n_neighbors) <= n:
        raise ValueError(f"n_neighbors must lie in [2, n={n}], got {n_neighbors}")
    if not 0.0 <= set_op_mix_ratio <= 1.0:
        raise ValueError(f"set_op_mix_ratio must lie in [0, 1], got {set_op_mix_ratio}")
    if not local_connectivity > 0:
        raise ValueError(f"local_connectivity must be > 0, got {local_connectivity}")
    # Exact kNN here, not umap-learn's `fast_knn_indices`: it saves a numba
    # compile (~8 s CPU) and fixes the order of tied distances (LCA targets
    # tie a lot): by distance, self first, then by index.
    k = int(n_neighbors)
    not_self = ~np.eye(n, dtype=bool)
    order = np.lexsort((np.broadcast_to(np.arange(n), d.shape), not_self, d), axis=-1)
    knn = np.ascontiguousarray(order[:, :k])
    knn_d = np.take_along_axis(d, knn, axis=1).astype(np.float32)
    from umap.umap_ import fuzzy_simplicial_set  # lazy: numba import is slow

    graph, _, _ = fuzzy_simplicial_set(
        d.astype(np.float32),
        k,
        np.random.RandomState(0),  # unused: the kNN is given
        "precomputed",
        knn_indices=knn,
        knn_dists=knn_d,
        local_connectivity=float(local_connectivity),
        set_op_mix_ratio=float(set_op_mix_ratio),
        apply_set_operations=bool(symmetrize),
    )
    p = np.asarray(graph.todense(), np.float32)
    np.fill_diagonal(p, 0.0)  # umap-learn gives self-edges 0 already; be exact
    return np.clip(p, 0.0, 1.0)


def log_membership(y: jax.Array, a: float, b: float, eps: float = 1e-12):
    """log q and log(1 - q) of UMAP's kernel between all rows of `y`.

    q_ij = 1 / (1 + a ||y_i - y_j||^{2b}). With t = log a + b log d^2 both logs
    are stable: log q = -softplus(t) and log(1 - q) = t - softplus(t).

    Args:
      y: (n, D) embeddings.
      a, b: kernel parameters (`curve_params`).
      eps: added to d^2 so that coincident points (and the diagonal) keep
        finite gradients (d^{2b} has an infinite slope at 0 for b < 1).

    Returns:
      (log_q, log_1mq): each (n, n).
    """
    sq = jnp.sum(y * y, axis=-1)
    d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * y @ y.T, 0.0)
    t = jnp.log(a) + b * jnp.log(d2 + eps)
    sp = jax.nn.softplus(t)
    return -sp, t - sp


def fuzzy_cross_entropy(p: jax.Array, log_q: jax.Array, log_1mq: jax.Array):
    """UMAP's fuzzy set cross-entropy, averaged over off-diagonal pairs.

    Reconstruction (xai.md 3.2 step 6 (iv)): L_nbr = -sum_{i != j} [p_ij log
    q_ij + (1 - p_ij) log(1 - q_ij)] / (n (n - 1)). The spec writes the sum;
    the mean keeps the fidelity weight lambda on the same scale for any n.

    Args:
      p: (n, n) target memberships in [0, 1].
      log_q, log_1mq: (n, n) from `log_membership`.

    Returns:
      Scalar loss.
    """
    n = p.shape[0]
    off = 1.0 - jnp.eye(n, dtype=log_q.dtype)
    ce = -(p * log_q + (1.0 - p) * log_1mq)
    return jnp.sum(ce * off) / (n * (n - 1))
