"""WordNet 3.0's noun database files, read as plain text (no NLTK).

Reads ``data.noun`` and ``index.noun`` in the format of wndb(5WN), as Debian's
``wordnet-base`` installs them in ``/usr/share/wordnet``. A data line is::

  offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt
  [pointer_symbol offset pos source/target...] | gloss

and a synset is addressed by its byte offset (ImageNet's ``n02123045`` is
noun offset 2123045). Every malformed line is a DataFormatError naming the
file and the line. The hypernym trees built from these synsets are in
`wordnet`, which re-exports the names here.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import types
from collections.abc import Mapping

from jaxcxai.data.validate import DataFormatError

__all__ = [
    "DEFAULT_DIR", "ENV_VAR", "Synset", "offset_of", "read_index", "read_nouns",
    "resolve_dir", "wnid",
]  # fmt: skip

DEFAULT_DIR = "/usr/share/wordnet"
ENV_VAR = "JAXCXAI_WORDNET"
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
