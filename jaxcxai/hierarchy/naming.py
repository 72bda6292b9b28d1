"""Naming internal tree nodes by dictionary matching to a concept bank.

Reconstruction (xai.md 3.2, step 3; Schwalbe et al. 2026,
arXiv:2603.26798, "dictionary-based matching to a concept bank"):

* name(v) = argmax_b <mu_v, e_b> over the bank embeddings e_b (text-encoder
  embeddings of ontology ancestors plus a noun list; for image-modality
  trees the shared image-text space makes the product meaningful);
* bank entries equal to the name of a class in L(v) are excluded;
* optional ancestor constraint: b must be an ontology ancestor of at least
  one class in L(v);
* confidence = match margin, top-1 minus top-2 similarity.

Each rule is a small function (`similarity`, `excluded_by_leaf_names`,
`allowed_by_ancestors`, `top2`) composed by `match_bank`.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai import checks
from jaxcxai.hierarchy import trees

__all__ = [
    "allowed_by_ancestors",
    "bank_ancestor_matrix",
    "excluded_by_leaf_names",
    "match_bank",
    "name_nodes",
    "node_ontology_index",
    "similarity",
    "top2",
]


def _key(name: str) -> str:
    """Case-, underscore- and whitespace-insensitive form of a name."""
    return " ".join(str(name).lower().replace("_", " ").split())


@jax.jit
def similarity(node_emb, bank_emb) -> jax.Array:
    """(M, B) cosine similarity of node embeddings (M, D) and bank (B, D)."""
    a = jnp.asarray(node_emb, jnp.float32)
    b = jnp.asarray(bank_emb, jnp.float32)
    a = a / jnp.maximum(jnp.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / jnp.maximum(jnp.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def excluded_by_leaf_names(leaf_sets, bank_names, leaf_names) -> np.ndarray:
    """(M, B) bool: bank entry b names a class in L(v).

    Args:
      leaf_sets: (M, n) bool membership.
      bank_names: (B,) bank entry names.
      leaf_names: (n,) class names; each a string or a sequence of synonyms.
    """
    index = {}
    for b, name in enumerate(bank_names):
        index.setdefault(_key(name), []).append(b)
    same = np.zeros((len(leaf_names), len(bank_names)), bool)  # (n, B)
    for c, names in enumerate(leaf_names):
        for name in [names] if isinstance(names, str) else names:
            same[c, index.get(_key(name), [])] = True
    return (np.asarray(leaf_sets, np.float32) @ same.astype(np.float32)) > 0


def allowed_by_ancestors(leaf_sets, ancestor_ok) -> np.ndarray:
    """(M, B) bool: b is an ontology ancestor of at least one class in L(v).

    Args:
      leaf_sets: (M, n) bool membership.
      ancestor_ok: (B, n) bool, [b, c] = bank entry b is an ontology
        ancestor of class c (`bank_ancestor_matrix`).
    """
    ok = np.asarray(ancestor_ok, np.float32)
    return (np.asarray(leaf_sets, np.float32) @ ok.T) > 0


@jax.jit
def top2(sim, allowed):
    """Best allowed bank entry per row and its margin over the second.

    Args:
      sim: (M, B) similarities.
      allowed: (M, B) bool candidates.

    Returns:
      (index (M,) int32, -1 where nothing is allowed; margin (M,) float32,
      top-1 minus top-2 similarity, NaN with fewer than two candidates).
    """
    masked = jnp.where(allowed, sim, -jnp.inf)
    if masked.shape[1] == 1:  # one bank entry: no second best
        masked = jnp.concatenate([masked, jnp.full_like(masked, -jnp.inf)], 1)
    best, arg = jax.lax.top_k(masked, 2)
    index = jnp.where(jnp.isfinite(best[:, 0]), arg[:, 0], -1)
    margin = jnp.where(jnp.isfinite(best[:, 1]), best[:, 0] - best[:, 1], jnp.nan)
    return index.astype(jnp.int32), margin


def match_bank(tree, bank_emb, *, bank_names=None, exclude=None, ancestor_ok=None):
    """(index (M,), margin (M,)) of the bank entry naming each internal node.

    Leaves get index -1 and margin NaN (a class keeps its own name).

    Args:
      tree: a `tree.Tree`.
      bank_emb: (B, D) bank embeddings, same space as `tree.node_emb`.
      bank_names: (B,) names, needed with `exclude`.
      exclude: (n,) class names (or synonym lists) in tree leaf order: a
        bank entry with the name of a class in L(v) is not a candidate.
      ancestor_ok: optional (B, n) bool ancestor constraint.
    """
    bank = np.asarray(bank_emb)
    node_emb = np.asarray(tree.node_emb)
    if bank.ndim != 2 or bank.shape[0] == 0 or bank.shape[1] != node_emb.shape[1]:
        raise ValueError(
            f"bank_emb must be (B, {node_emb.shape[1]}) with B >= 1, got {bank.shape}"
        )
    checks.check_finite({"bank_emb": bank})
    sets = np.asarray(tree.leaf_sets, bool)
    allowed = np.ones((sets.shape[0], bank.shape[0]), bool)
    if exclude is not None:
        if bank_names is None or len(bank_names) != bank.shape[0]:
            raise ValueError(f"exclude needs bank_names of length {bank.shape[0]}")
        if len(exclude) != sets.shape[1]:
            raise ValueError(f"exclude must name the {sets.shape[1]} classes")
        allowed &= ~excluded_by_leaf_names(sets, bank_names, exclude)
    if ancestor_ok is not None:
        if np.shape(ancestor_ok) != (bank.shape[0], sets.shape[1]):
            raise ValueError(
                f"ancestor_ok must be (B, n) = {(bank.shape[0], sets.shape[1])}, "
                f"got {np.shape(ancestor_ok)}"
            )
        allowed &= allowed_by_ancestors(sets, ancestor_ok)
    index, margin = top2(similarity(node_emb, bank), jnp.asarray(allowed))
    index, margin = np.array(index), np.array(margin, np.float64)
    leaf = np.asarray(tree.children)[:, 0] < 0
    index[leaf], margin[leaf] = -1, np.nan
    return index, margin


def name_nodes(
    tree, bank_emb, bank_names: Sequence[str], exclude=None, ancestor_ok=None
) -> tuple[list[str], np.ndarray]:
    """Names and match margins of every tree node.

    Args:
      tree, bank_emb, exclude, ancestor_ok: as in `match_bank`.
      bank_names: (B,) bank entry names.

    Returns:
      (names, margins): M names (a class keeps its name from `exclude`, or
      '' without it; an internal node with no candidate gets ''); (M,)
      margins, NaN at leaves.
    """
    if len(bank_names) != np.shape(bank_emb)[0]:
        raise ValueError(
            f"bank_names has {len(bank_names)} entries, bank_emb "
            f"{np.shape(bank_emb)[0]} rows"
        )
    index, margin = match_bank(
        tree, bank_emb, bank_names=bank_names, exclude=exclude, ancestor_ok=ancestor_ok
    )
    names = [bank_names[i] if i >= 0 else "" for i in index]
    if exclude is not None:
        for c, node in enumerate(np.asarray(tree.leaves)):
            leaf = exclude[c]
            names[node] = leaf if isinstance(leaf, str) else leaf[0]
    return names, margin


def bank_ancestor_matrix(onto_parent, bank_onto, class_onto) -> np.ndarray:
    """(B, n) bool: bank entry b is an ontology ancestor-or-self of class c.

    Args:
      onto_parent: (M',) ontology parent array (or an object with `parent`).
      bank_onto: (B,) ontology node of each bank entry, -1 for names outside
        the ontology (never allowed).
      class_onto: (n,) ontology node of each class, tree leaf order.
    """
    parent = getattr(onto_parent, "parent", onto_parent)
    bank_onto, class_onto = np.asarray(bank_onto), np.asarray(class_onto)
    anc = trees.is_ancestor(
        parent, np.maximum(bank_onto, 0)[:, None], class_onto[None, :]
    )
    return anc & (bank_onto >= 0)[:, None]


def node_ontology_index(tree, bank_index, bank_onto, class_onto) -> np.ndarray:
    """(M,) ontology node of each tree node's name (for edge consistency).

    Internal node v: bank_onto[bank_index[v]] (-1 without a name or for a
    name outside the ontology); the leaf of class c: class_onto[c].
    """
    bank_index, bank_onto = np.asarray(bank_index), np.asarray(bank_onto)
    out = np.where(bank_index >= 0, bank_onto[np.maximum(bank_index, 0)], -1)
    out[np.asarray(tree.leaves)] = np.asarray(class_onto)
    return out.astype(np.int32)
