"""Remote-sensing caption JSON files (UCM, RSICD) in the DUCH/CHNR schema.

The schema (the reference's `data/UCM.json`): a top-level dict with `dataset`,
`num_classes`, `classes` (`"0"`..`"C-1"` -> name) and `images`, a list of
records with `imgid`, `filename`, `classcode`, `classname`, `split`, `sentids`
and `sentences` (`{imgid, sentid, raw}`; RSICD and augmented files may add
`tokens`, `aug_*` keys, which are ignored).

The feature files follow JSON order, so image row = `imgid` and caption row =
`captions_per_image * imgid + k` (k = position of the sentence in its image).
`load_caption_json` checks that convention instead of silently reordering,
because every index computed downstream (splits, noise, caption choice)
depends on it. A malformed file (truncated JSON, non-UTF-8 text, a missing key,
a wrong type, an empty caption) raises `DataFormatError` naming the file and
the record.
"""

import dataclasses
import os
import re

import numpy as np

from jaxcxai.data.validate import DataFormatError, field, read_json

__all__ = ["CaptionDataset", "clean_caption", "load_caption_json"]

_PUNCT = re.compile(r"[.,!?]")


def clean_caption(raw: str) -> str:
    """Caption cleaning of the DUCH reference's `captions_embed.py`.

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
    classes = field(data, "classes", "dict", path, "top level")
    if not all(k.isdigit() for k in classes):
        raise DataFormatError(path, f"class codes {sorted(classes)[:5]} not digits")
    codes = sorted(int(k) for k in classes)
    if codes != list(range(len(codes))):
        raise DataFormatError(
            path, f"class codes are not 0..{len(codes) - 1}: {codes[:10]}"
        )
    num = field(data, "num_classes", "int", path, "top level", default=len(codes))
    if num != len(codes):
        raise DataFormatError(
            path, f"num_classes={num} but {len(codes)} classes listed"
        )
    for c in codes:
        field(classes, str(c), "str", path, "classes")
    return tuple(classes[str(c)] for c in codes)


def _check_image(rec: dict, pos: int, k: int, path: str) -> tuple[str, ...]:
    """Validates one image record and returns its raw captions."""
    where = f"images[{pos}]"
    for key, kind in [("imgid", "int"), ("filename", "str"), ("split", "str")]:
        field(rec, key, kind, path, where)
    if rec["imgid"] != pos:
        raise DataFormatError(
            path, f"image {pos} has imgid={rec['imgid']}; feature rows are "
            "indexed by imgid, so imgid must equal the list position"
        )  # fmt: skip
    sents = field(rec, "sentences", "list", path, where)
    if len(sents) != k:
        raise DataFormatError(
            path, f"image {pos} has {len(sents)} captions, expected {k} "
            "(the caption-row convention needs the same count for every image)"
        )  # fmt: skip
    expected = [k * pos + j for j in range(k)]
    sentids = [field(s, "sentid", "int", path, f"{where} sentence") for s in sents]
    if rec.get("sentids", expected) != expected or sentids != expected:
        raise DataFormatError(
            path, f"image {pos} sentids {sentids} differ from {expected} "
            "(caption row must be K*imgid + k)"
        )  # fmt: skip
    raws = []
    for j, sent in enumerate(sents):
        raw = field(sent, "raw", "str", path, f"{where} sentence {j}")
        if not clean_caption(raw).strip():
            raise DataFormatError(
                path, f"image {pos} caption {j} (sentid {sentids[j]}) is empty "
                f"after cleaning: {raw!r:.40}"
            )  # fmt: skip
        raws.append(raw)
    return tuple(raws)


def load_caption_json(path: str) -> CaptionDataset:
    """Reads a UCM/RSICD caption JSON (the schema of the module docstring).

    Args:
      path: the JSON file, e.g. `UCM.json` (`data/UCM.json` of the DUCH
        reference repository, comrados/duch).

    Returns:
      A `CaptionDataset` in JSON order.

    Raises:
      FileNotFoundError: `path` does not exist.
      DataFormatError: truncated or invalid JSON, non-UTF-8 text, a missing
        key or a wrong type, an empty caption, or a break of the row-indexing
        convention (imgid = position, sentids = K*imgid + k, same K for every
        image, classcode/classname consistent with the class table); the
        message names the file and the image.
    """
    data = read_json(path, "caption JSON")
    images = field(data, "images", "list", path, "top level")
    if not images:
        raise DataFormatError(path, "empty 'images' list")
    class_names = _class_table(data, path)
    k = len(field(images[0], "sentences", "list", path, "images[0]"))
    if k == 0:
        raise DataFormatError(path, "image 0 has no captions")
    captions, labels = [], []
    for pos, rec in enumerate(images):
        captions.append(_check_image(rec, pos, k, path))
        code = field(rec, "classcode", "int", path, f"images[{pos}]")
        if not 0 <= code < len(class_names):
            raise DataFormatError(
                path, f"image {pos} has classcode {code} out of range"
            )
        name = field(rec, "classname", "str", path, f"images[{pos}]", default=None)
        if name is not None and name != class_names[code]:
            raise DataFormatError(
                path, f"image {pos} classname {name!r} does not match class "
                f"{code} = {class_names[code]!r}"
            )  # fmt: skip
        labels.append(code)
    name = field(data, "dataset", "str", path, "top level", default=None)
    return CaptionDataset(
        name=name if name is not None else os.path.basename(path),
        class_names=class_names,
        filenames=tuple(rec["filename"] for rec in images),
        labels=np.asarray(labels, np.int32),
        splits=tuple(rec["split"] for rec in images),
        captions=tuple(captions),
    )
