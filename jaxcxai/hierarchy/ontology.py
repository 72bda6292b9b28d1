"""Human ontologies as rooted trees (parent arrays) and the SynthAerial taxonomy.

An :class:`Ontology` is the tree against which the semantic-hierarchies paper
(Schwalbe et al., arXiv:2603.26798, xai.md section 3) checks discovered
hierarchies: ``parent[i]`` is node ``i``'s parent, ``-1`` at the one root.
Nodes carry a human-readable name (the naming step's concept bank) and a
unique id. A class set maps to node indices, the ``leaves`` returned with
every ontology built here. Host-side NumPy only: nothing here is traced.

The type and its structural queries (depths, ancestors, leaves, concept bank)
are in `ontology_tree`, re-exported here; this module builds ontologies:
subtrees (:func:`restrict`), trees of root paths, JSON ontologies and the
SynthAerial taxonomy.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
from collections.abc import Mapping, Sequence

import numpy as np

from jaxcxai.data.synthaerial import CONCEPTS, SCENES, SUBCONCEPTS
from jaxcxai.data.validate import DataFormatError, field, read_json
from jaxcxai.hierarchy.ontology_tree import Ontology as Ontology
from jaxcxai.hierarchy.ontology_tree import ancestors as ancestors
from jaxcxai.hierarchy.ontology_tree import concept_bank as concept_bank
from jaxcxai.hierarchy.ontology_tree import depth as depth
from jaxcxai.hierarchy.ontology_tree import is_ancestor as is_ancestor
from jaxcxai.hierarchy.ontology_tree import leaf_nodes as leaf_nodes

__all__ = [
    "TAXONOMY_CLASSES", "Ontology", "ancestors", "concept_bank", "depth",
    "from_json", "from_paths", "is_ancestor", "leaf_nodes", "restrict",
    "synthaerial_taxonomy",
]  # fmt: skip

TAXONOMY_CLASSES = ("scenes", "objects", "subconcepts", "all")


def restrict(
    onto: Ontology, leaf_ids: Sequence[str | int], collapse_unary: bool = False
) -> tuple[Ontology, np.ndarray]:
    """The subtree spanned by the root paths of the given nodes.

    Args:
      onto: the full ontology.
      leaf_ids: (n,) ids (or node indices) that become the leaves; none may be
        an ancestor of another (ValueError), unknown ids are a KeyError.
      collapse_unary: drop every kept non-leaf with exactly one kept child
        (the child moves up; a unary root hands over to its child), so all
        internal nodes branch; the most specific node of a chain stays.

    Returns:
      ``(sub, leaves)``: the subtree (nodes in their original relative order)
      and (n,) int32 node indices of ``leaf_ids`` in ``sub``.
    """
    idx = [onto.index(x) for x in leaf_ids]
    if not idx:
        raise ValueError("leaf_ids is empty")
    if len(set(idx)) != len(idx):
        dup = next(onto.ids[i] for i in idx if idx.count(i) > 1)
        raise ValueError(f"leaf {dup!r} is given twice")
    keep = np.zeros(len(onto), bool)
    for i in idx:
        for a in ancestors(onto, i):
            if keep[a]:
                break
            keep[a] = True
    n_kids = np.bincount(onto.parent[keep & (onto.parent >= 0)], minlength=len(onto))
    for i in (i for i in idx if n_kids[i]):
        j = next(j for j in idx if j != i and is_ancestor(onto, i, j))
        raise ValueError(f"leaf {onto.ids[i]!r} is an ancestor of leaf {onto.ids[j]!r}")
    if collapse_unary:
        is_leaf = np.zeros(len(onto), bool)
        is_leaf[idx] = True
        # Removing a unary node leaves its parent's child count unchanged, so
        # one pass drops whole chains.
        keep &= ~((n_kids == 1) & ~is_leaf)
    old = np.flatnonzero(keep)
    new_of = np.full(len(onto), -1, np.int32)
    new_of[old] = np.arange(len(old), dtype=np.int32)
    parent = np.empty(len(old), np.int32)
    for k, i in enumerate(old):
        p = int(onto.parent[i])
        while p >= 0 and not keep[p]:
            p = int(onto.parent[p])
        parent[k] = new_of[p] if p >= 0 else -1
    sub = Ontology(
        tuple(onto.names[i] for i in old), tuple(onto.ids[i] for i in old), parent
    )
    return sub, new_of[idx].astype(np.int32)


def from_paths(
    paths: Sequence[Sequence[str]],
    names: Mapping[str, str],
    collapse_unary: bool = False,
) -> tuple[Ontology, np.ndarray]:
    """The tree spanned by root paths, each given leaf first.

    Args:
      paths: (n,) id paths ``[leaf, parent, ..., root]``; all end at the same
        root and a node has the same parent on every path.
      names: id -> human-readable name, for every id on the paths.
      collapse_unary: see :func:`restrict`.

    Returns:
      ``(onto, leaves)``: nodes root first in order of first appearance
      (parents before children); (n,) int32 node of each path's leaf.
    """
    order, parent_of = [], {}
    for path in paths:
        for up, node in zip([None, *path[::-1]], path[::-1]):
            if node not in parent_of:
                parent_of[node] = up
                order.append(node)
            elif parent_of[node] != up:
                raise ValueError(
                    f"{node!r} has two parents: {parent_of[node]!r} and {up!r}"
                )
    index = {k: i for i, k in enumerate(order)}
    parent = [-1 if parent_of[k] is None else index[parent_of[k]] for k in order]
    full = Ontology(tuple(names[k] for k in order), tuple(order), np.asarray(parent))
    return restrict(full, [path[0] for path in paths], collapse_unary)


def from_json(path: str | os.PathLike) -> Ontology:
    """Reads ``{"root": NODE}``, ``NODE = {"id": str, "name": str,
    "children": [NODE, ...]}`` (no ``children`` at leaves); nodes in pre-order.

    Raises:
      FileNotFoundError: no such file. DataFormatError: invalid JSON, a missing
        or mistyped key (naming the node's position, e.g.
        ``root.children[1].children[0]``), or a repeated id.
    """
    path = os.fspath(path)
    doc = read_json(path, "ontology JSON")
    stack = [(field(doc, "root", "dict", path, "top level"), -1, "root")]
    names, ids, parent, seen = [], [], [], {}
    while stack:
        node, up, where = stack.pop()
        key = field(node, "id", "str", path, where)
        if key in seen:
            raise DataFormatError(path, f"{where}: id {key!r} repeats {seen[key]}")
        seen[key] = where
        names.append(field(node, "name", "str", path, where))
        ids.append(key)
        parent.append(up)
        kids = field(node, "children", "list", path, where, default=[])
        me = len(ids) - 1
        stack.extend(
            (kid, me, f"{where}.children[{j}]")
            for j, kid in reversed(list(enumerate(kids)))
        )
    return Ontology(tuple(names), tuple(ids), np.asarray(parent, np.int32))


def synthaerial_taxonomy(
    classes: str = "scenes", collapse_unary: bool = False
) -> tuple[Ontology, np.ndarray]:
    """The SynthAerial taxonomy, ``jaxcxai/data/synthaerial_taxonomy.json``.

    Objects (group -> concept -> sub-concept) and scenes (super-category ->
    scene) under one root, as in ``jaxcxai.data.synthaerial`` (CONCEPT_GROUPS,
    SUBCONCEPTS, SCENE_SUPER). Ids: ``group:vehicle``, ``concept:car``,
    ``subconcept:car/red``, ``super:transport``, ``scene:airport``.

    Args:
      classes: the class set that becomes the leaves: ``"scenes"`` (13, in
        SCENES order, i.e. scene labels), ``"objects"`` (8, in CONCEPTS order,
        i.e. mask label - 1), ``"subconcepts"`` (16, concept-major, sub-concept
        index minor) or ``"all"`` (the full tree and its leaves in node order).
      collapse_unary: passed to :func:`restrict`.

    Returns:
      ``(onto, leaves)``: the ontology restricted to the class set's root
      paths and (n,) int32 node indices of the classes.
    """
    if classes not in TAXONOMY_CLASSES:
        raise ValueError(f"classes must be one of {TAXONOMY_CLASSES}, got {classes!r}")
    full = _taxonomy()
    if classes == "all":
        return full, leaf_nodes(full)
    keys = {
        "scenes": [f"scene:{s}" for s in SCENES],
        "objects": [f"concept:{c}" for c in CONCEPTS],
        "subconcepts": [
            f"subconcept:{c}/{s}" for c in CONCEPTS for s in SUBCONCEPTS[c]
        ],
    }[classes]
    return restrict(full, keys, collapse_unary)


@functools.cache
def _taxonomy() -> Ontology:
    res = importlib.resources.files("jaxcxai.data") / "synthaerial_taxonomy.json"
    with importlib.resources.as_file(res) as path:
        return from_json(path)
