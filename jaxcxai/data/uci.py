"""The gating paper's four UCI datasets, read from the user's files.

The uncertainty-gating paper (Mikriukov, Montavon, Hoehne, arXiv:2603.29915,
section 4) fetches its data with ``ucimlrepo``, which needs the network.
These loaders read the files as the UCI archive publishes them instead, then
apply the paper's split and scaling (`jaxcxai.data.tabular.split_and_scale`:
random 70/15/15, seed 42, z-scored on the training rows):

* Wine Quality (Cortez, Cerdeira, Almeida, Matos, Reis 2009; UCI id 186):
  ``winequality-red.csv`` / ``winequality-white.csv``, ``;``-separated with a
  quoted header and ``quality`` last, binarised as the paper does
  (``quality >= 6`` is class 1). A directory reads both files, red then white
  (the 6497 rows ``ucimlrepo`` returns).
* Dry Bean (Koklu & Ozkan 2020; UCI id 602): ``Dry_Bean_Dataset.arff`` (read
  with ``scipy.io.arff``) or ``.xlsx``; 16 shape features and ``Class``.
* Rice Cammeo/Osmancik (Cinar & Koklu 2019; UCI id 545):
  ``Rice_Cammeo_Osmancik.arff`` or ``.xlsx``; 7 features and ``Class``.
* Ecoli (Horton & Nakai 1996; UCI id 39): ``ecoli.data``, whitespace-separated,
  a sequence name, 7 features and the localisation site.

``.xlsx`` files need ``openpyxl``; without it the loader says to install it or
use the ``.arff`` file the archive ships beside it. Every problem with a file
raises :class:`~jaxcxai.data.validate.DataFormatError` naming the file and
what is wrong, with the line (or spreadsheet row) where there is one: a
missing file (:class:`DataFileNotFoundError`, also a ``FileNotFoundError``),
an empty file, a wrong delimiter or column count, a non-numeric value, a
missing or non-finite value, or an unknown class label.

References:
  Mikriukov, Montavon, Hoehne. Uncertainty Gating for Cost-Aware XAI.
  arXiv:2603.29915.
  Cortez et al. Modeling wine preferences by data mining from physicochemical
  properties. Decision Support Systems 47(4), 2009.
  Koklu & Ozkan. Multiclass classification of dry beans using computer vision
  and machine learning techniques. Computers and Electronics in Agriculture
  174, 2020.
  Cinar & Koklu. Classification of rice varieties using artificial
  intelligence methods. IJISAE 7(3), 2019.
  Horton & Nakai. A probabilistic classification system for predicting the
  cellular localization sites of proteins. ISMB 1996.
"""

import os

import numpy as np

from jaxcxai.data.tabular import TabularSplits, split_and_scale
from jaxcxai.data.uci_files import DataFileNotFoundError as DataFileNotFoundError
from jaxcxai.data.uci_files import (
    Raw,
    _label,
    _no_rows,
    _number,
    _read_arff,
    _read_xlsx,
    _text,
)
from jaxcxai.data.validate import DataFormatError

__all__ = [
    "DRY_BEAN_CLASSES",
    "ECOLI_CLASSES",
    "ECOLI_FEATURES",
    "PAPER_FILES",
    "RICE_CLASSES",
    "WINE_FEATURES",
    "DataFileNotFoundError",
    "load_dry_bean",
    "load_ecoli",
    "load_from_dir",
    "load_rice",
    "load_wine_quality",
    "read_dry_bean",
    "read_ecoli",
    "read_rice",
    "read_wine_quality",
]

WINE_FEATURES = (
    "fixed acidity", "volatile acidity", "citric acid", "residual sugar",
    "chlorides", "free sulfur dioxide", "total sulfur dioxide", "density",
    "pH", "sulphates", "alcohol",
)  # fmt: skip
WINE_CLASSES = ("quality < 6", "quality >= 6")
WINE_FILES = ("winequality-red.csv", "winequality-white.csv")
DRY_BEAN_CLASSES = (
    "BARBUNYA", "BOMBAY", "CALI", "DERMASON", "HOROZ", "SEKER", "SIRA",
)  # fmt: skip
RICE_CLASSES = ("Cammeo", "Osmancik")
ECOLI_FEATURES = ("mcg", "gvh", "lip", "chg", "aac", "alm1", "alm2")
# The localisation sites, most frequent first (ecoli.names: 143 ... 2 rows).
ECOLI_CLASSES = ("cp", "im", "pp", "imU", "om", "omL", "imL", "imS")
# dataset -> (role, file names tried in order inside a data directory).
PAPER_FILES = {
    "wine_quality": ("weak_signal_binary", WINE_FILES),
    "dry_bean": (
        "multiclass_separated",
        ("Dry_Bean_Dataset.arff", "Dry_Bean_Dataset.xlsx"),
    ),
    "rice": (
        "clean_binary",
        ("Rice_Cammeo_Osmancik.arff", "Rice_Cammeo_Osmancik.xlsx"),
    ),
    "ecoli": ("small_imbalanced", ("ecoli.data",)),
}


# ---------------------------------------------------------------- Wine Quality


def _read_wine_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(x (N, 11), quality (N,)) of one ``;``-separated Wine Quality file."""
    lines = _text(path).splitlines()
    names = WINE_FEATURES + ("quality",)
    header = [h.strip().strip('"') for h in lines[0].split(";")]
    if len(header) == 1 and "," in lines[0]:
        raise DataFormatError(
            path, "line 1: wrong delimiter, expected ';' (the UCI format), found ','"
        )
    if header != list(names):
        raise DataFormatError(
            path, f"line 1: header has columns {header}, expected {list(names)}"
        )
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(";")
        if len(fields) != len(names):
            hint = " (wrong delimiter? expected ';')" if len(fields) == 1 else ""
            raise DataFormatError(
                path, f"line {lineno}: {len(fields)} fields, expected "
                f"{len(names)}{hint}"
            )  # fmt: skip
        where = f"line {lineno}"
        rows.append([_number(path, where, c, v) for c, v in zip(names, fields)])
    _no_rows(path, rows)
    table = np.asarray(rows)
    return table[:, :-1], table[:, -1]


def read_wine_quality(path: str) -> Raw:
    """Wine Quality from one csv, or from a directory holding both colours.

    Args:
      path: ``winequality-red.csv``, ``winequality-white.csv`` (any name, in
        that format), or a directory holding both (read red then white).

    Returns:
      (x (N, 11) float64, y (N,) int32 with 1 where quality >= 6,
      ``WINE_FEATURES``, ``("quality < 6", "quality >= 6")``).

    Raises:
      DataFormatError: see the module docstring; a directory missing one of
        the two files is a :class:`DataFileNotFoundError` naming that file.
    """
    path = os.fspath(path)
    files = [os.path.join(path, f) for f in WINE_FILES]
    parts = [_read_wine_csv(f) for f in (files if os.path.isdir(path) else [path])]
    x = np.concatenate([p[0] for p in parts])
    quality = np.concatenate([p[1] for p in parts])
    return x, (quality >= 6).astype(np.int32), WINE_FEATURES, WINE_CLASSES


def load_wine_quality(path: str, seed: int = 42) -> TabularSplits:
    """Wine Quality (Cortez et al. 2009), binarised, split and scaled.

    See :func:`read_wine_quality` for ``path`` and the errors.
    """
    return _split(read_wine_quality(path), "wine_quality", seed)


# ------------------------------------------------------ Dry Bean, Rice (ARFF)


def _read_bean_or_rice(path, n_features, classes) -> Raw:
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".arff":
        return _read_arff(path, n_features, classes)
    if ext == ".xlsx":
        return _read_xlsx(path, n_features, classes)
    raise DataFormatError(path, f"unsupported extension {ext!r}: use .arff or .xlsx")


def read_dry_bean(path: str) -> Raw:
    """Dry Bean (Koklu & Ozkan 2020): 16 features, 7 classes (``.arff``/``.xlsx``).

    Returns:
      (x (N, 16) float64, y (N,) int32 indexing ``DRY_BEAN_CLASSES``, the
      file's feature names, ``DRY_BEAN_CLASSES``).
    """
    return _read_bean_or_rice(path, 16, DRY_BEAN_CLASSES)


def read_rice(path: str) -> Raw:
    """Rice Cammeo/Osmancik (Cinar & Koklu 2019): 7 features (``.arff``/``.xlsx``).

    Returns:
      (x (N, 7) float64, y (N,) int32 indexing ``RICE_CLASSES``, the file's
      feature names, ``RICE_CLASSES``).
    """
    return _read_bean_or_rice(path, 7, RICE_CLASSES)


def load_dry_bean(path: str, seed: int = 42) -> TabularSplits:
    """Dry Bean, split and scaled; see :func:`read_dry_bean`."""
    return _split(read_dry_bean(path), "dry_bean", seed)


def load_rice(path: str, seed: int = 42) -> TabularSplits:
    """Rice Cammeo/Osmancik, split and scaled; see :func:`read_rice`."""
    return _split(read_rice(path), "rice", seed)


# ---------------------------------------------------------------- Ecoli


def read_ecoli(path: str) -> Raw:
    """Ecoli (Horton & Nakai 1996) from ``ecoli.data``.

    Each line: a sequence name, the 7 features of ``ECOLI_FEATURES`` and the
    localisation site, separated by runs of spaces.

    Returns:
      (x (N, 7) float64, y (N,) int32 indexing ``ECOLI_CLASSES``,
      ``ECOLI_FEATURES``, ``ECOLI_CLASSES``).
    """
    path = os.fspath(path)
    rows, labels = [], []
    for lineno, line in enumerate(_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(ECOLI_FEATURES) + 2:
            hint = " (wrong delimiter? expected spaces)" if len(fields) < 3 else ""
            raise DataFormatError(
                path, f"line {lineno}: {len(fields)} fields, expected "
                f"{len(ECOLI_FEATURES) + 2} (name, 7 features, class){hint}"
            )  # fmt: skip
        where = f"line {lineno}"
        values = zip(ECOLI_FEATURES, fields[1:-1])
        rows.append([_number(path, where, c, v) for c, v in values])
        labels.append(_label(path, where, fields[-1], ECOLI_CLASSES))
    return np.asarray(rows), np.asarray(labels, np.int32), ECOLI_FEATURES, ECOLI_CLASSES


def load_ecoli(path: str, seed: int = 42) -> TabularSplits:
    """Ecoli, split and scaled; see :func:`read_ecoli`."""
    return _split(read_ecoli(path), "ecoli", seed)


# ---------------------------------------------------------------- dispatch

_LOADERS = {
    "wine_quality": load_wine_quality,
    "dry_bean": load_dry_bean,
    "rice": load_rice,
    "ecoli": load_ecoli,
}


def _split(raw: Raw, name: str, seed: int) -> TabularSplits:
    x, y, features, classes = raw
    return split_and_scale(
        x,
        y,
        feature_names=features,
        class_names=classes,
        name=name,
        role=PAPER_FILES[name][0],
        seed=seed,
    )


def load_from_dir(data_dir: str, name: str, seed: int = 42) -> TabularSplits:
    """One of the paper's datasets from a directory of the UCI files.

    Args:
      data_dir: holds the files under their published names (``PAPER_FILES``:
        both Wine Quality csvs; ``.arff`` preferred over ``.xlsx``).
      name: ``wine_quality``, ``dry_bean``, ``rice`` or ``ecoli``.
      seed: the split seed (paper: 42).

    Raises:
      ValueError: unknown ``name``.
      DataFileNotFoundError: none of the published file names is there.
      DataFormatError: the file is malformed.
    """
    if name not in _LOADERS:
        raise ValueError(f"name must be one of {tuple(_LOADERS)}, got {name!r}")
    if name == "wine_quality":
        return load_wine_quality(data_dir, seed)  # a directory: both colours.
    candidates = [os.path.join(data_dir, f) for f in PAPER_FILES[name][1]]
    for path in candidates:
        if os.path.isfile(path):
            return _LOADERS[name](path, seed)
    raise DataFileNotFoundError(
        candidates[0], f"file not found (also tried {candidates[1:]})"
    )
