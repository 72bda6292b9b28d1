"""Reading the UCI files: text, numbers, labels, ARFF and XLSX, with errors
that name the file and the line (or spreadsheet row).

Used by `jaxcxai.data.uci`; every problem raises
:class:`~jaxcxai.data.validate.DataFormatError`, a missing file
:class:`DataFileNotFoundError` (also a ``FileNotFoundError``).
"""

import io
import math
import os

import numpy as np
from scipy.io import arff

from jaxcxai.data.validate import DataFormatError

__all__ = ["DataFileNotFoundError", "Raw"]

# (x (N, d) float64, y (N,) int32, feature names, class names)
Raw = tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]


class DataFileNotFoundError(DataFormatError, FileNotFoundError):
    """A data file does not exist; both a DataFormatError and FileNotFoundError."""


def _text(path: str) -> str:
    """The file's text; a missing, unreadable or empty file is an error."""
    if not os.path.isfile(path):
        raise DataFileNotFoundError(path, "file not found")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError(
            path, f"not UTF-8 text: byte 0x{raw[e.start]:02x} at offset {e.start}"
        ) from e
    if not text.strip():
        raise DataFormatError(path, "empty file")
    return text


def _number(path: str, where: str, column: str, value) -> float:
    """``value`` as a finite float, or an error naming where it sits."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "?")):
        raise DataFormatError(path, f"{where}, column {column!r}: missing value")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataFormatError(
            path, f"{where}, column {column!r}: {value!r:.40} is not a number"
        ) from None
    if not math.isfinite(number):
        raise DataFormatError(
            path, f"{where}, column {column!r}: non-finite value {value!r}"
        )
    return number


def _label(path: str, where: str, value, classes: tuple[str, ...]) -> int:
    label = str(value).strip().strip("'\"") if value is not None else ""
    if label not in classes:
        raise DataFormatError(
            path, f"{where}: unknown class {label!r}, expected one of {classes}"
        )
    return classes.index(label)


def _no_rows(path: str, rows: list) -> None:
    if not rows:
        raise DataFormatError(path, "empty file: a header but no data rows")


def _arff_records(path: str, text: str):
    """ARFF header via scipy, then (line number, fields) of each data row."""
    lines = text.splitlines()
    starts = [i for i, s in enumerate(lines) if s.strip().lower() == "@data"]
    if not starts:
        raise DataFormatError(path, "not an ARFF file: no @DATA line")
    head = "\n".join(lines[: starts[0] + 1]) + "\n"
    try:
        _, meta = arff.loadarff(io.StringIO(head))
    except Exception as e:  # scipy raises ParseArffError, ValueError, ...
        raise DataFormatError(path, f"invalid ARFF header ({e})") from e
    records = [
        (i + 1, lines[i].split(","))
        for i in range(starts[0] + 1, len(lines))
        if lines[i].strip() and not lines[i].lstrip().startswith("%")
    ]
    return meta.names(), meta.types(), records


def _read_arff(path: str, n_features: int, classes: tuple[str, ...]) -> Raw:
    text = _text(path)
    names, types, records = _arff_records(path, text)
    if len(names) != n_features + 1 or names[-1].lower() != "class":
        raise DataFormatError(
            path, f"{len(names)} attributes ending in {names[-1]!r}, expected "
            f"{n_features} features and 'Class' last"
        )  # fmt: skip
    if types[:-1] != ["numeric"] * n_features or types[-1] != "nominal":
        raise DataFormatError(
            path, f"attribute types {types}: expected numeric features and a "
            "nominal Class"
        )  # fmt: skip
    _no_rows(path, records)
    for lineno, fields in records:  # scipy ignores extra fields and has no lines.
        if len(fields) != len(names):
            raise DataFormatError(
                path, f"line {lineno}: {len(fields)} fields, expected {len(names)}"
            )
        where = f"line {lineno}"
        for column, value in zip(names, fields[:-1]):
            _number(path, where, column, value)
        _label(path, where, fields[-1], classes)
    try:
        data, _ = arff.loadarff(io.StringIO(text))
    except Exception as e:
        raise DataFormatError(path, f"invalid ARFF data ({e})") from e
    x = np.stack([data[n].astype(np.float64) for n in names[:-1]], axis=1)
    y = [_label(path, "data", v.decode(), classes) for v in data[names[-1]]]
    return x, np.asarray(y, np.int32), tuple(names[:-1]), classes


def _read_xlsx(path: str, n_features: int, classes: tuple[str, ...]) -> Raw:
    """The first sheet of a workbook: a header row, then features and Class."""
    if not os.path.isfile(path):
        raise DataFileNotFoundError(path, "file not found")
    try:
        import openpyxl
    except ImportError:
        raise DataFormatError(
            path, "reading .xlsx needs openpyxl: pip install openpyxl, or use "
            "the .arff file the UCI archive ships beside it"
        ) from None  # fmt: skip
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        rows = list(book.worksheets[0].iter_rows(values_only=True))
    except Exception as e:
        raise DataFormatError(path, f"unreadable workbook ({e})") from e
    rows = [r for r in rows if any(v is not None for v in r)]
    if not rows:
        raise DataFormatError(path, "empty file")
    names = [str(v).strip() for v in rows[0] if v is not None]
    if len(names) != n_features + 1 or names[-1].lower() != "class":
        raise DataFormatError(
            path, f"row 1: header {names}, expected {n_features} features and "
            "'Class' last"
        )  # fmt: skip
    _no_rows(path, rows[1:])
    x, y = [], []
    for rowno, row in enumerate(rows[1:], start=2):
        where = f"row {rowno}"
        x.append([_number(path, where, c, v) for c, v in zip(names, row)])
        y.append(_label(path, where, row[n_features], classes))
    return np.asarray(x), np.asarray(y, np.int32), tuple(names[:-1]), classes
