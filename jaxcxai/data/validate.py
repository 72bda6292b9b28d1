"""The loaders' error type and the input checks they share.

Every real-format loader (COCO, VOC, caption JSON, DUCH h5, IDX) reports a
malformed file as :class:`DataFormatError`: a ``ValueError`` whose ``path``
attribute is the file and whose message starts with that path and says what is
wrong (truncated JSON with line and column, the missing key and the record it
belongs to, a wrong type, the first non-UTF-8 byte, a truncated image, a
non-finite feature count). A raw ``JSONDecodeError``, ``KeyError`` or PIL
``OSError`` never reaches the caller.
"""

import json
import math
import os
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from PIL import Image

__all__ = [
    "NONFINITE_POLICIES",
    "ClippedGeometryWarning",
    "DataFormatError",
    "DataKeyError",
    "decode_image",
    "field",
    "nonfinite_rows",
    "read_json",
    "read_text",
]

NONFINITE_POLICIES = ("raise", "drop")
T = TypeVar("T")


class DataFormatError(ValueError):
    """A data file is malformed; ``path`` is the file, the message says how.

    Example: ``"ann/instances.json: annotations[3] (id 12): missing key
    'category_id'"``.
    """

    def __init__(self, path: str | os.PathLike, message: str):
        self.path, self.reason = os.fspath(path), message
        super().__init__(f"{self.path}: {message}")

    def __str__(self) -> str:  # KeyError subclasses would otherwise quote it.
        return str(self.args[0])

    def __reduce__(self):  # Picklable across processes despite two arguments.
        return type(self), (self.path, self.reason)


class DataKeyError(DataFormatError, KeyError):
    """A named entry (an HDF5 dataset) is missing; also a ``KeyError``."""


class ClippedGeometryWarning(UserWarning):
    """Annotation geometry reached outside its image and was clipped to it."""


def read_text(path: str, what: str) -> str:
    """Strict UTF-8 text of an existing file.

    Raises:
      FileNotFoundError: naming ``what`` and ``path``.
      DataFormatError: the file is not UTF-8 (names the first bad byte offset).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError(
            path, f"not UTF-8 text: byte 0x{raw[e.start]:02x} at offset {e.start}"
        ) from e


def read_json(path: str, what: str) -> Any:
    """Parses a UTF-8 JSON file; truncated or invalid JSON is a DataFormatError."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        cut = "truncated" if e.pos >= len(text.rstrip()) else "invalid"
        raise DataFormatError(
            path, f"{cut} JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from e


def _is(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":  # JSON numbers; NaN/Infinity literals are rejected.
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok and math.isfinite(value)
    return isinstance(value, {"str": str, "list": list, "dict": dict}[kind])


def field(record: Any, key: str, kind: str, path: str, where: str, default=...):
    """``record[key]`` checked to be of ``kind`` (int, number, str, list, dict).

    Args:
      record: a parsed JSON object.
      key: the key to read.
      kind: the expected JSON type (``int`` excludes bools, ``number`` also
        excludes NaN and infinities).
      path, where: the file and the record (``"images[3]"``) for messages.
      default: returned when the key is absent; without one it is an error.

    Raises:
      DataFormatError: the record is not an object, the key is missing, or the
        value has the wrong type.
    """
    if not isinstance(record, dict):
        raise DataFormatError(path, f"{where} is {type(record).__name__}, not a dict")
    if key not in record:
        if default is not ...:
            return default
        raise DataFormatError(path, f"{where}: missing key {key!r}")
    value = record[key]
    if not _is(value, kind):
        raise DataFormatError(
            path, f"{where}: {key!r} is {value!r:.60} ({type(value).__name__}), "
            f"expected {kind}"
        )  # fmt: skip
    return value


def decode_image(path: str, what: str, convert: Callable[[Image.Image], T]) -> T:
    """Opens and fully decodes an image, then applies ``convert`` to it.

    Decoding everything up front turns a truncated or corrupt file into a
    DataFormatError here, instead of a PIL ``OSError`` (or a silently grey
    bottom half) later.

    Raises:
      FileNotFoundError: naming ``what`` and ``path``.
      DataFormatError: unreadable, truncated or corrupt image.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return convert(img)
    except DataFormatError:
        raise
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        Image.DecompressionBombError,
    ) as e:
        raise DataFormatError(
            path, f"truncated or corrupt image ({type(e).__name__}: {e})"
        ) from e


def nonfinite_rows(
    array: np.ndarray, path: str, what: str, nonfinite: str
) -> np.ndarray:
    """Rows of ``array`` holding NaN or inf, under an explicit policy.

    Args:
      array: (N, ...) values.
      path, what: the file and the array (for messages).
      nonfinite: ``"raise"`` (reject any non-finite value) or ``"drop"`` (return
        the bad rows for the caller to drop). Nothing is ever zeroed.

    Returns:
      (N,) bool, True where a row holds a non-finite value.

    Raises:
      ValueError: ``nonfinite`` is not a known policy.
      DataFormatError: ``nonfinite="raise"`` and some value is not finite (the
        count of bad values and rows, and the first bad row).
    """
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(
            f"nonfinite must be one of {NONFINITE_POLICIES}, got {nonfinite!r}"
        )
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.inexact) or array.ndim == 0:
        return np.zeros(array.shape[:1], bool)
    bad = ~np.isfinite(array)
    rows = bad.any(axis=tuple(range(1, bad.ndim)))
    if nonfinite == "raise" and rows.any():
        raise DataFormatError(
            path, f"{what} holds {int(bad.sum())} non-finite values (NaN/inf) in "
            f"{int(rows.sum())} of {len(rows)} rows, first at row "
            f"{int(np.argmax(rows))}; pass nonfinite='drop' to drop those rows"
        )  # fmt: skip
    return rows
