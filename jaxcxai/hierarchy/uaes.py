"""Tree-traversal inference with uncertainty-aware early stopping (UAES).

Reconstruction (xai.md 3.2, step 5; Schwalbe et al. 2026,
arXiv:2603.26798, "hierarchical tree-traversal inference with
uncertainty-aware early stopping"). For an embedding z, start at the root;
at node v with children u_j:

* p(u_j | v, z) = softmax_j(<z, mu_{u_j}> / T) (temperature T ~ 0.01, the
  CLIP logit scale 100) -- `child_probs`;
* uncertainty H_v(z) = -sum_j p_j log p_j, in nats -- `entropy`;
* stop at v if H_v(z) > h*, else descend to argmax_j p_j; a leaf is a full
  class prediction.

The greedy path does not depend on h*, so one descent (jit, vmapped over
samples) serves every threshold: the stop is the first node on the path
whose entropy exceeds h*. A sample reaches its leaf iff the largest entropy
on its path is <= h*, which makes calibrating h* for a target coverage a
quantile (`calibrate`) and the coverage-accuracy curve one vectorised pass
(`coverage_curve`). The explanation of a prediction is its root-to-stop
path of named nodes with their p-values (`Inference.path`, `.probs`).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import checks
from jaxcxai.hierarchy import trees

__all__ = [
    "Inference",
    "calibrate",
    "child_probs",
    "coverage_curve",
    "descend",
    "entropy",
    "flat_accuracy",
    "infer",
    "metrics",
]


class Inference(NamedTuple):
    """UAES result per sample (NumPy arrays).

    Attributes:
      stop_node: (N,) node where inference stopped (a leaf: a class).
      path: (N, S) visited nodes, root first, -1 after the stop node
        (S = tree height + 1).
      probs: (N, S - 1) probability of the child taken at each step, NaN
        after the stop.
      depth: (N,) depth of the stop node.
      entropy: (N, S) entropy at each visited node (-inf at a leaf, NaN
        after the stop).
    """

    stop_node: np.ndarray
    path: np.ndarray
    probs: np.ndarray
    depth: np.ndarray
    entropy: np.ndarray


def child_probs(z, child_emb, valid, temperature):
    """(K,) softmax over the valid children of <z, mu_u> / T."""
    logits = jnp.where(valid, child_emb @ z / temperature, -jnp.inf)
    return jax.nn.softmax(jnp.where(valid.any(), logits, 0.0))


def entropy(p, valid):
    """Entropy in nats of p over the valid entries (0 log 0 = 0)."""
    safe = jnp.where(valid & (p > 0), p, 1.0)
    return -jnp.sum(jnp.where(valid, p * jnp.log(safe), 0.0))


def _descend_one(z, children, node_emb, root, temperature, steps):
    def step(node, _):
        kids = children[node]
        valid = kids >= 0
        leaf = ~valid.any()
        p = child_probs(z, node_emb[jnp.maximum(kids, 0)], valid, temperature)
        j = jnp.argmax(jnp.where(valid, p, -1.0))
        nxt = jnp.where(leaf, node, kids[j])
        h = jnp.where(leaf, -jnp.inf, entropy(p, valid))
        return nxt, (node, h, jnp.where(leaf, jnp.nan, p[j]))

    _, (path, h, prob) = jax.lax.scan(step, root, None, length=steps)
    return path, h, prob[:-1]


@functools.partial(jax.jit, static_argnames=("steps",))
def _descend(z, children, node_emb, root, temperature, steps):
    fn = functools.partial(_descend_one, steps=steps)
    return jax.vmap(fn, (0, None, None, None, None))(
        z, children, node_emb, root, temperature
    )


def _tree_arrays(tree):
    parent = trees.check_parent(tree.parent, "tree.parent")
    root = int(np.flatnonzero(parent == -1)[0])
    depth = trees.depths(parent)
    return root, depth, int(depth.max()) + 1


def _check_z(z, dim):
    if not isinstance(z, jax.Array):
        z = np.asarray(z)
    if z.ndim != 2 or z.shape[1] != dim or z.shape[0] == 0:
        raise ValueError(f"z must be a non-empty (N, {dim}) array, got {z.shape}")
    checks.check_finite({"z": z})
    return z.astype(jnp.float32) if isinstance(z, jax.Array) else z.astype(np.float32)


def descend(z, tree, temperature: float = 0.01):
    """Greedy root-to-leaf descent, no stopping (h* = inf); vmapped, jitted.

    Returns:
      (path (N, S) int32 with the leaf repeated to the end, entropy (N, S)
      (-inf at leaves), probs (N, S - 1) of the child taken), NumPy arrays.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    root, _, steps = _tree_arrays(tree)
    node_emb = np.asarray(tree.node_emb, np.float32)
    z = _check_z(z, node_emb.shape[1])
    # Scanned to a power of two, so trees of one shape but other heights (an
    # alignment sweep) share one program; steps past the leaf are cut off.
    args = (np.asarray(tree.children), node_emb, root, np.float32(temperature))
    out = _descend(z, *args, 1 << (steps - 1).bit_length())
    return tuple(np.asarray(x)[:, : steps - (i == 2)] for i, x in enumerate(out))


def _stop_index(xp, entropy_path, h_star):
    """(N,) first path index with entropy > h* or at a leaf (-inf)."""
    return xp.argmax((entropy_path > h_star) | xp.isneginf(entropy_path), 1)


def infer(z, tree, temperature: float = 0.01, h_star: float = np.inf) -> Inference:
    """UAES inference of N embeddings on a tree.

    Args:
      z: (N, D) embeddings (image embeddings, normalised).
      tree: a `tree.Tree` (`children`, `node_emb`, `parent`).
      temperature: softmax temperature T > 0.
      h_star: entropy threshold in nats (binary maximum log 2); inf never
        stops early.

    Returns:
      `Inference` of NumPy arrays.
    """
    path, h, prob = descend(z, tree, temperature)
    _, depth, _ = _tree_arrays(tree)
    # Compare in float32 like the entropies, so a calibrated h* is exact.
    stop = _stop_index(np, h, np.float32(h_star))
    after = np.arange(path.shape[1])[None, :] > stop[:, None]
    stop_node = path[np.arange(path.shape[0]), stop]
    return Inference(
        stop_node=stop_node,
        path=np.where(after, -1, path),
        probs=np.where(after[:, 1:], np.nan, prob),
        depth=depth[stop_node],
        entropy=np.where(after, np.nan, h),
    )


def _check_labels(labels, n, count):
    labels = np.asarray(labels)
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be ({count},) integers, got {labels.shape}")
    if labels.min() < 0 or labels.max() >= n:
        raise ValueError(f"labels must lie in [0, {n})")
    return labels


def metrics(inference: Inference, labels, tree, onto=None) -> dict:
    """Leaf accuracy, coverage, hierarchical correctness, stop depth and
    mistake severity of a UAES inference.

    Args:
      inference: `infer` output for N samples.
      labels: (N,) true class (tree leaf order).
      tree: the `tree.Tree` inferred on.
      onto: optional (onto_parent, onto_leaves) for mistake severity
        (default: the tree itself).

    Returns:
      dict of floats: leaf_accuracy (stopped at the true leaf, over all
      samples), coverage (stopped at a leaf), selective_accuracy (leaf
      accuracy among covered), hierarchical_correctness (true class in
      L(stop)), stop_depth (mean), mistake_severity (mean height of the
      ontology LCA above the true class, over wrong leaf predictions; NaN if
      none).
    """
    stop = np.asarray(inference.stop_node)
    labels = _check_labels(labels, tree.n_classes, stop.shape[0])
    leaves = np.asarray(tree.leaves)
    class_of = np.full(len(tree.parent), -1)
    class_of[leaves] = np.arange(leaves.size)
    pred = class_of[stop]
    at_leaf = np.asarray(tree.children)[stop, 0] < 0
    correct = pred == labels
    wrong = at_leaf & ~correct & (pred >= 0)
    o_parent, o_leaves = onto if onto is not None else (tree.parent, leaves)
    lca = trees.lca_depth(o_parent, o_leaves)
    severity = np.diag(lca)[labels] - lca[pred, labels]
    coverage = float(at_leaf.mean())
    return {
        "leaf_accuracy": float(correct.mean()),
        "coverage": coverage,
        "selective_accuracy": float(correct[at_leaf].mean()) if coverage else np.nan,
        "hierarchical_correctness": float(
            np.asarray(tree.leaf_sets)[stop, labels].mean()
        ),
        "stop_depth": float(np.asarray(inference.depth).mean()),
        "mistake_severity": float(severity[wrong].mean()) if wrong.any() else np.nan,
    }


def flat_accuracy(z, centroids, labels) -> float:
    """Flat zero-shot accuracy: argmax_c <z, mu_c> against the labels."""
    z, c = np.asarray(z, np.float32), np.asarray(centroids, np.float32)
    labels = _check_labels(labels, c.shape[0], z.shape[0])
    return float(np.mean(np.argmax(z @ c.T, 1) == labels))


def calibrate(z, tree, temperature: float = 0.01, target_coverage: float = 0.9):
    """Smallest h* whose leaf coverage on (z) is at least the target.

    A sample reaches a leaf iff the largest entropy on its greedy path is
    <= h*, so h* is the ceil(target * N)-th smallest of those maxima.

    Args:
      z: (N, D) validation embeddings.
      tree: a `tree.Tree`.
      temperature: softmax temperature.
      target_coverage: in (0, 1].
    """
    if not 0 < target_coverage <= 1:
        raise ValueError(f"target_coverage must lie in (0, 1], got {target_coverage}")
    _, h, _ = descend(z, tree, temperature)
    worst = np.sort(h.max(1))  # -inf for a tree of one node
    k = int(np.ceil(target_coverage * worst.size))
    return float(worst[k - 1])


@jax.jit
def _curve(h, path, stop_leaf_ok, members_at, depth_at, thresholds):
    def one(t):
        stop = _stop_index(jnp, h, t)
        take = lambda a: jnp.take_along_axis(a, stop[:, None], 1)[:, 0]  # noqa: E731
        last = jnp.isneginf(take(h))  # stopped at a leaf
        return (
            jnp.mean(last),
            jnp.mean(last & take(stop_leaf_ok)),
            jnp.mean(take(members_at)),
            jnp.mean(take(depth_at)),
        )

    return jax.vmap(one)(thresholds)


def coverage_curve(z, labels, tree, temperature: float = 0.01, thresholds=None):
    """Coverage and accuracies over a grid of thresholds h*.

    Args:
      z: (N, D) embeddings; labels: (N,) true classes (tree leaf order).
      tree: a `tree.Tree`; temperature: softmax temperature.
      thresholds: (K,) h* values (default: every distinct path maximum,
        plus 0 and inf).

    Returns:
      dict of (K,) arrays: h_star, coverage, leaf_accuracy (over all
      samples), selective_accuracy (among covered), hierarchical_correctness,
      stop_depth.
    """
    path, h, _ = descend(z, tree, temperature)
    labels = _check_labels(labels, tree.n_classes, path.shape[0])
    if thresholds is None:
        thresholds = np.unique(np.concatenate([[0.0, np.inf], h.max(1)]))
    t = np.asarray(thresholds, np.float32)
    leaves = np.asarray(tree.leaves)
    # Per path position: is it the true leaf / does it contain the class.
    ok = leaves[labels][:, None] == path
    members = np.asarray(tree.leaf_sets)[path, labels[:, None]]
    depth = trees.depths(tree.parent)[path].astype(np.float32)
    cov, acc, hier, stop_depth = map(np.asarray, _curve(h, path, ok, members, depth, t))
    with np.errstate(invalid="ignore", divide="ignore"):
        selective = np.where(cov > 0, acc / cov, np.nan)
    return {
        "h_star": t,
        "coverage": cov,
        "leaf_accuracy": acc,
        "selective_accuracy": selective,
        "hierarchical_correctness": hier,
        "stop_depth": stop_depth,
    }
