"""Remote-sensing caption JSON files (UCM, RSICD) in the DUCH/CHNR schema.

The schema (hashing.md §1.1): a top-level dict with `dataset`, `num_classes`,
`classes` (`"0"`..`"C-1"` -> name) and `images`, a list of records with
`imgid`, `filename`, `classcode`, `classname`, `split`, `sentids` and
`sentences` (`{imgid, sentid, raw}`; RSICD and augmented files may add
`tokens`, `aug_*` keys, which are ignored).

The feature files follow JSON order, so image row = `imgid` and caption row =
`captions_per_image * imgid + k` (k = position of the sentence in its image).
`load_caption_json` checks that convention instead of silently reordering,
because every index computed downstream (splits, noise, caption choice)
depends on it.
"""

import dataclasses
import json
import os
import re

import numpy as np

__all__ = ["CaptionDataset", "clean_caption", "load_caption_json"]

_PUNCT = re.compile(r"[.,!?]")


def clean_caption(raw: str) -> str:
    """Caption cleaning of `captions_embed.py` (hashing.md §1.4).

    Removes the characters `. , ! ?` and lowercases; nothing else, so the
    spaces left by the tokenised punctuation stay
    (`"There is a piece of farmland ."` -> `"there is a piece of farmland "`).
    """
    return _PUNCT.sub("", raw).lower()


@dataclasses.dataclass(frozen=True)
class CaptionDataset:
    """One caption JSON file, in JSON (= feature row) order.

    Attributes:
      name: the `dataset` field (e.g. "UCM").
      class_names: (C,) class names, index = class code.
      filenames: (N,) image file names.
      labels: (N,) int32 class codes.
      splits: (N,) the JSON `split` field ("train"/"val"/"test"); the DUCH
        reference ignores it and uses `duch_h5.split_indexes` instead.
      captions: (N, K) raw captions, K captions per image.
    """

    name: str
    class_names: tuple[str, ...]
    filenames: tuple[str, ...]
    labels: np.ndarray
    splits: tuple[str, ...]
    captions: tuple[tuple[str, ...], ...]

    @property
    def num_images(self) -> int:
        return len(self.filenames)

    @property
    def captions_per_image(self) -> int:
        return len(self.captions[0]) if self.captions else 0

    def flat_captions(self) -> list[str]:
        """All captions in caption-row order (row = K * imgid + k)."""
        return [c for caps in self.captions for c in caps]

    def split_indices(self, split: str) -> np.ndarray:
        """(n,) int64 image indices whose JSON `split` field equals `split`."""
        known = sorted(set(self.splits))
        if split not in known:
            raise ValueError(f"unknown split {split!r}; the file has {known}")
        return np.flatnonzero(np.asarray(self.splits) == split)


def _class_table(data: dict, path: str) -> tuple[str, ...]:
    classes = data.get("classes")
    if classes is None:
        raise ValueError(f"{path}: no 'classes' table")
    codes = sorted(int(k) for k in classes)
    if codes != list(range(len(codes))):
        raise ValueError(f"{path}: class codes are not 0..{len(codes) - 1}: {codes}")
    num = data.get("num_classes", len(codes))
    if num != len(codes):
        raise ValueError(f"{path}: num_classes={num} but {len(codes)} classes listed")
    return tuple(classes[str(c)] for c in codes)


def _check_image(rec: dict, pos: int, k: int, path: str) -> tuple[str, ...]:
    """Validates one image record and returns its raw captions."""
    if rec.get("imgid") != pos:
        raise ValueError(
            f"{path}: image {pos} has imgid={rec.get('imgid')}; feature rows are "
            "indexed by imgid, so imgid must equal the list position"
        )
    sents = rec["sentences"]
    if len(sents) != k:
        raise ValueError(
            f"{path}: image {pos} has {len(sents)} captions, expected {k} "
            "(the caption-row convention needs the same count for every image)"
        )
    expected = [k * pos + j for j in range(k)]
    sentids = [s["sentid"] for s in sents]
    if rec.get("sentids", expected) != expected or sentids != expected:
        raise ValueError(
            f"{path}: image {pos} sentids {sentids} differ from {expected} "
            "(caption row must be K*imgid + k)"
        )
    return tuple(s["raw"] for s in sents)


def load_caption_json(path: str) -> CaptionDataset:
    """Reads a UCM/RSICD caption JSON (hashing.md §1.1).

    Args:
      path: the JSON file, e.g. `shared/data/UCM.json`.

    Returns:
      A `CaptionDataset` in JSON order.

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: the file breaks the schema or the row-indexing convention
        (imgid = position, sentids = K*imgid + k, same K for every image,
        classcode/classname consistent with the class table).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"caption JSON not found: {path}")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if "images" not in data or not data["images"]:
        raise ValueError(f"{path}: no 'images' list")
    class_names = _class_table(data, path)
    images = data["images"]
    k = len(images[0]["sentences"])
    captions, labels = [], []
    for pos, rec in enumerate(images):
        captions.append(_check_image(rec, pos, k, path))
        code = rec["classcode"]
        if not 0 <= code < len(class_names):
            raise ValueError(f"{path}: image {pos} has classcode {code} out of range")
        if "classname" in rec and rec["classname"] != class_names[code]:
            raise ValueError(
                f"{path}: image {pos} classname {rec['classname']!r} does not "
                f"match class {code} = {class_names[code]!r}"
            )
        labels.append(code)
    return CaptionDataset(
        name=str(data.get("dataset", os.path.basename(path))),
        class_names=class_names,
        filenames=tuple(rec["filename"] for rec in images),
        labels=np.asarray(labels, np.int32),
        splits=tuple(rec["split"] for rec in images),
        captions=tuple(captions),
    )
