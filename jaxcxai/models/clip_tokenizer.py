"""CLIP's byte-level BPE tokenizer, without torch.

Reads the merge list ``bpe_simple_vocab_16e6.txt.gz`` that ships inside
``open-clip-torch`` (found with ``importlib.util.find_spec``, which does not
import open_clip and so not torch; ``pip install --no-deps open-clip-torch``
is enough) or from a user path. The ids follow open_clip's
``SimpleTokenizer`` with its default ``clean="lower"``:

1. clean: ftfy's ``fix_text`` (optional, :func:`fix_text`), HTML unescaping
   twice, whitespace collapsed to single spaces, lower-case;
2. split into words: the special tokens, the contractions ``'s 't 're 've 'm
   'll 'd``, runs of letters, single digits/numerals, runs of other
   non-space characters (:func:`pre_tokenize`, exact Unicode categories);
3. each word's UTF-8 bytes map to printable characters (GPT-2's byte table),
   ``</w>`` marks the word end, and the lowest-ranked merges apply until none
   is left;
4. ``[<start_of_text>] + ids + [<end_of_text>]``, cut to the context length
   with the end token kept last, zero-padded.

References:
  Sennrich et al., "Neural Machine Translation of Rare Words with Subword
  Units", ACL 2016 (BPE). Radford et al., "Language Models are Unsupervised
  Multitask Learners", 2019 (byte-level BPE). Radford et al., CLIP, ICML 2021.
"""

import functools
import gzip
import html
import importlib.util
import os
import unicodedata
from pathlib import Path

import numpy as np

__all__ = ["ClipTokenizer", "bpe_vocab_path", "fix_text", "pre_tokenize"]

_VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
_INSTALL_HINT = "pip install --no-deps open-clip-torch"
_N_MERGES = 49152 - 256 - 2  # merges used by CLIP's 49408-token vocabulary
SPECIAL_TOKENS = ("<start_of_text>", "<end_of_text>")
_CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")
# ftfy's quote uncurling: single (incl. modifier apostrophe) and double quotes.
_QUOTES = str.maketrans(
    {c: "'" for c in "\u02bc\u2018\u2019\u201a\u201b"}
    | {c: '"' for c in "\u201c\u201d\u201e\u201f"}
)


def bpe_vocab_path() -> Path:
    """The merge file inside the installed ``open-clip-torch`` package.

    Raises:
      ModuleNotFoundError: open-clip-torch is not installed (names the pip
        command).
    """
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the CLIP BPE vocabulary ships inside open-clip-torch, which is not "
            f"installed; run `{_INSTALL_HINT}` (no torch needed) or pass "
            "vocab_path"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _VOCAB_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing; reinstall with `{_INSTALL_HINT}`")
    return path


def fix_text(text: str) -> str:
    """``ftfy.fix_text`` when ftfy is installed, else a small stand-in.

    Reconstruction: without ftfy, only NFC normalisation and quote uncurling
    (two of ftfy's default fixes) are applied; mojibake, ligatures and
    full-width characters are left as they are, so such text can tokenise
    differently from open_clip.
    """
    try:
        import ftfy  # noqa: PLC0415 (optional dependency)
    except ImportError:
        return unicodedata.normalize("NFC", text).translate(_QUOTES)
    return ftfy.fix_text(text)


def clean(text: str) -> str:
    """open_clip's default ``lower`` cleaning."""
    text = html.unescape(html.unescape(fix_text(text))).strip()
    return " ".join(text.split()).lower()


def _kind(ch: str) -> str:
    """'s' whitespace, 'L' letter, 'N' number, 'P' anything else."""
    if ch.isspace():
        return "s"
    cat = unicodedata.category(ch)[0]
    return cat if cat in "LN" else "P"


def pre_tokenize(text: str) -> list[str]:
    """Splits cleaned text into words, like open_clip's regex.

    At each position the first matching rule wins: a special token, a
    contraction, a run of letters (Unicode L*), one number character (N*),
    or a run of characters that are neither space, letter nor number.
    """
    words, i, n = [], 0, len(text)
    while i < n:
        rest = text[i : i + 15]
        match = next(
            (t for t in SPECIAL_TOKENS + _CONTRACTIONS if rest.startswith(t)), None
        )
        kind = _kind(text[i])
        if match is not None:
            j = i + len(match)
        elif kind == "s":
            i += 1
            continue
        elif kind == "N":
            j = i + 1
        else:
            j = i + 1
            while j < n and _kind(text[j]) == kind:
                j += 1
        words.append(text[i:j])
        i = j
    return words


@functools.cache
def _byte_table() -> dict[int, str]:
    """GPT-2's byte -> printable character table.

    Insertion order is vocabulary order: the printable bytes first (mapped to
    themselves), then the others, shifted past Latin-1 in byte order.
    """
    keep = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in keep}
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + len(table) - len(keep))
    return table


class ClipTokenizer:
    """Text -> CLIP token ids.

    Args:
      vocab_path: the gzipped merge file (default: the one inside the
        installed ``open-clip-torch``).
      context_length: default output length (77 for all released models).
    """

    def __init__(self, vocab_path: str | os.PathLike | None = None, context_length=77):
        path = Path(vocab_path) if vocab_path is not None else bpe_vocab_path()
        try:
            lines = gzip.open(path).read().decode("utf-8").split("\n")
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a gzipped BPE merge file ({e})") from e
        merges = [tuple(line.split()) for line in lines[1 : _N_MERGES + 1]]
        if len(merges) != _N_MERGES or any(len(m) != 2 for m in merges):
            raise ValueError(f"{path}: expected {_N_MERGES} merge lines of two symbols")
        chars = list(_byte_table().values())
        vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
        vocab += list(SPECIAL_TOKENS)
        self.encoder = {tok: i for i, tok in enumerate(vocab)}
        self.decoder = vocab
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.sot_id, self.eot_id = (self.encoder[t] for t in SPECIAL_TOKENS)
        self.vocab_size = len(vocab)
        self.context_length = context_length
        self._bpe = functools.lru_cache(maxsize=65536)(self._bpe_uncached)

    def _bpe_uncached(self, word: str) -> tuple[str, ...]:
        if word in SPECIAL_TOKENS:
            return (word,)
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = set(zip(parts, parts[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, len(self.ranks)))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):  # merge every occurrence, left to right
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return tuple(parts)

    def encode(self, text: str) -> list[int]:
        """Token ids of one text, without start/end tokens."""
        table = _byte_table()
        ids = []
        for word in pre_tokenize(clean(text)):
            if word not in SPECIAL_TOKENS:
                word = "".join(table[b] for b in word.encode("utf-8"))
            ids.extend(self.encoder[p] for p in self._bpe(word))
        return ids

    def decode(self, ids) -> str:
        """Ids -> text; ``</w>`` (a word end) becomes a space."""
        inverse = {c: b for b, c in _byte_table().items()}
        text = "".join(self.decoder[int(i)] for i in ids)
        raw = bytearray(inverse[c] for c in text)
        return raw.decode("utf-8", "replace").replace("</w>", " ")

    def __call__(
        self, texts: str | list[str], context_length: int | None = None
    ) -> np.ndarray:
        """Tokenises a text or a list of texts.

        Returns:
          (N, context_length) int32 ids: start token, text, end token, zeros.
          Longer texts are cut and end with the end token.
        """
        if isinstance(texts, str):
            texts = [texts]
        length = self.context_length if context_length is None else context_length
        if length < 2:
            raise ValueError(f"context_length must be >= 2, got {length}")
        out = np.zeros((len(texts), length), np.int32)
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{row}] is {type(text).__name__}, not str")
            ids = [self.sot_id, *self.encode(text), self.eot_id][:length]
            ids[-1] = self.eot_id
            out[row, : len(ids)] = ids
        return out
