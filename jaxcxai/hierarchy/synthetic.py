"""Synthetic hierarchical embeddings with an exact ground-truth ontology.

xai.md 3.4, substitute 1 (the test bed of the semantic-hierarchies
reconstruction, Schwalbe et al. 2026, arXiv:2603.26798):

* a random rooted tree with n classes, all at depth `depth`, every internal
  node with 2..max_children children (`random_tree`);
* node vectors top-down, child = parent + noise whose scale shrinks with
  depth (decay^level). The sibling increments are centred with the
  children's class counts as weights, so every node vector is exactly the
  mean of its classes' vectors: the planted parent is the centroid of its
  leaves (`node_vectors`);
* samples: class vector + cross-branch noise (one draw per class, ignores
  the tree, so it scrambles the hierarchy) + within-class noise (one draw per
  sample), L2-normalised (`sample_embeddings`). Modality profiles: "image"
  has small within-class and strong cross-branch noise (discriminative,
  less hierarchical), "text" the reverse.

With noise = 0 the centroids reproduce the planted hierarchy exactly.
"""

import jax
import numpy as np

from jaxcxai.hierarchy import trees

__all__ = [
    "PROFILES",
    "hierarchical_embeddings",
    "node_vectors",
    "random_tree",
    "sample_embeddings",
]

# Modality -> (within-class factor, cross-branch factor) applied to `noise`.
PROFILES = {"image": (0.25, 1.0), "text": (1.0, 0.25), "flat": (1.0, 1.0)}


def _host_rng(key) -> np.random.Generator:
    """A NumPy generator seeded by a JAX key's data (host-side structure)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key).ravel().tolist())


def _level_sizes(rng, n, depth, max_children):
    sizes = [1]
    for k in range(1, depth + 1):
        left = depth - k  # levels still to come
        lo = max(2 * sizes[-1], -(-n // max_children**left))
        hi = min(max_children * sizes[-1], n // 2**left)
        sizes.append(int(rng.integers(lo, hi + 1)))
    return sizes


def random_tree(key, n_leaves: int, depth: int, max_children: int = 3):
    """Random rooted tree, all classes at `depth`, 2..max_children children.

    Nodes are numbered level by level (root 0); classes map to the last
    level in a random order.

    Returns:
      (parent (M,) int32, leaves (n_leaves,) int32).
    """
    if depth < 1 or max_children < 2:
        raise ValueError(
            f"need depth >= 1 and max_children >= 2, got {depth}, {max_children}"
        )
    if not 2**depth <= n_leaves <= max_children**depth:
        raise ValueError(
            f"n_leaves={n_leaves} does not fit depth {depth} with 2..{max_children} "
            f"children per node: need {2**depth} <= n_leaves <= {max_children**depth}"
        )
    rng = _host_rng(key)
    sizes = _level_sizes(rng, n_leaves, depth, max_children)
    parent, first = [-1], 0
    for k in range(depth):
        s, t = sizes[k], sizes[k + 1]
        # Two children each, the rest in free slots (at most max_children).
        extra_slots = np.repeat(np.arange(s), max_children - 2)
        extra = rng.choice(extra_slots, t - 2 * s, replace=False)
        kids = np.sort(np.concatenate([np.repeat(np.arange(s), 2), extra]))
        parent += (first + kids).tolist()
        first += s
    leaves = first + rng.permutation(n_leaves)
    return np.asarray(parent, np.int32), leaves.astype(np.int32)


def node_vectors(key, parent, leaves, dim: int, decay: float = 0.5) -> np.ndarray:
    """(M, dim) float64 node vectors: child = parent + centred noise.

    The root is N(0, I); the increments of a node's children are drawn
    N(0, decay^(2 level) I) and centred with weights n_c / n_v (class counts
    of child c and of the node), so each node is the class-weighted mean of
    its children and hence of its classes.
    """
    if not 0 < decay < 1:
        raise ValueError(f"decay must lie in (0, 1), got {decay}")
    parent = trees.check_parent(parent)
    leaves = trees.check_leaves(leaves, parent.size)
    w = trees.walk(parent)
    counts = trees.is_ancestor(
        parent, np.arange(parent.size)[:, None], leaves[None, :], w
    ).sum(1)
    rng = _host_rng(key)
    vec = np.zeros((parent.size, dim))
    vec[w.order[0]] = rng.normal(size=dim)
    kids = trees.children(parent, padded=False)
    for v in w.order:  # parents before children
        c = [x for x in kids[v] if counts[x] > 0]
        if not c:
            continue
        g = rng.normal(scale=decay ** (w.depth[v] + 1), size=(len(c), dim))
        weights = counts[c] / counts[c].sum()
        vec[c] = vec[v] + g - weights @ g
    return vec


def sample_embeddings(
    key, class_vectors, n_per_class: int, sample_noise: float, class_noise: float
):
    """Noisy, L2-normalised samples of each class.

    Args:
      key: JAX PRNG key.
      class_vectors: (n, D) class vectors (`node_vectors(...)[leaves]`).
      n_per_class: samples per class.
      sample_noise: std of the within-class noise (per sample).
      class_noise: std of the cross-branch noise (one draw per class).

    Returns:
      (emb (n * n_per_class, D) float32, labels (n * n_per_class,) int32).
    """
    if n_per_class < 1 or sample_noise < 0 or class_noise < 0:
        raise ValueError("need n_per_class >= 1 and non-negative noise levels")
    x = np.asarray(class_vectors, np.float64)
    rng = _host_rng(key)
    x = x + class_noise * rng.normal(size=x.shape)
    labels = np.repeat(np.arange(x.shape[0]), n_per_class)
    emb = x[labels] + sample_noise * rng.normal(size=(labels.size, x.shape[1]))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb.astype(np.float32), labels.astype(np.int32)


def hierarchical_embeddings(
    key,
    n_leaves: int,
    depth: int,
    dim: int,
    noise: float,
    *,
    n_per_class: int = 8,
    profile: str = "image",
    decay: float = 0.5,
    max_children: int = 3,
):
    """Samples of a random hierarchy (xai.md 3.4, substitute 1).

    Args:
      key: JAX PRNG key.
      n_leaves: number of classes n.
      depth: depth of every class in the planted tree.
      dim: embedding dimension.
      noise: overall noise level (0: the noise-free limit); scaled per
        modality by `PROFILES[profile]` into (within-class, cross-branch)
        standard deviations, in the units of the root vector (N(0, I)).
      n_per_class: samples per class.
      profile: "image", "text" or "flat".
      decay: increment scale ratio between consecutive levels.
      max_children: largest number of children of a planted node.

    Returns:
      (emb (N, dim) float32 normalised, labels (N,) int32, parent (M,)
      int32 planted tree, leaves (n,) int32 node of each class).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {sorted(PROFILES)}")
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise}")
    k_tree, k_vec, k_samples = jax.random.split(key, 3)
    parent, leaves = random_tree(k_tree, n_leaves, depth, max_children)
    vec = node_vectors(k_vec, parent, leaves, dim, decay)
    within, cross = PROFILES[profile]
    emb, labels = sample_embeddings(
        k_samples, vec[leaves], n_per_class, noise * within, noise * cross
    )
    return emb, labels, parent, leaves
