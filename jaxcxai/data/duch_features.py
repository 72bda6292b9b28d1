"""DUCH/CHNR feature files: HDF5 reading, row checks and standardisation.

The reference stores precomputed features in HDF5 files holding one dataset
each: `image_emb` (N, 512) float32 per image view and `caption_emb`
(K*N, 768) per caption variant, rows in caption-JSON order (image row =
imgid, caption row = K*imgid + k). Loading standardises every array by its
own global scalar mean and std over all elements, query and db rows included
(as the reference code loads them).

Malformed files raise `DataFormatError` naming the file: unreadable or
truncated HDF5, a missing dataset (`DataKeyError`, also a `KeyError`), a row
count that disagrees with the labels, and NaN/inf features unless the caller
passes `nonfinite="drop"` (never zeroed).
"""

import dataclasses
import os
import warnings

import h5py
import numpy as np

from jaxcxai.atomic_files import atomic_write
from jaxcxai.data.validate import DataFormatError, DataKeyError, nonfinite_rows

__all__ = [
    "CAPTION_KEY",
    "IMAGE_KEY",
    "DuchFeatures",
    "feature_paths",
    "load_duch_features",
    "load_raw_features",
    "read_h5_array",
    "standardize",
    "write_h5_array",
]

IMAGE_KEY = "image_emb"
CAPTION_KEY = "caption_emb"


def read_h5_array(path: str, key: str, *, nonfinite: str = "raise") -> np.ndarray:
    """Reads the whole dataset `key` of an HDF5 file as a NumPy array.

    Args:
      path: the HDF5 file.
      key: the dataset name.
      nonfinite: "raise" (NaN/inf is an error) or "keep" (return the values
        as stored; the caller handles them, as `load_raw_features` does).

    Raises:
      FileNotFoundError: `path` does not exist.
      DataKeyError: no dataset `key` (also a KeyError; lists what there is).
      DataFormatError: unreadable, truncated or corrupt file, or non-finite
        values under `nonfinite="raise"`.
    """
    if nonfinite not in ("raise", "keep"):
        raise ValueError(f"nonfinite must be 'raise' or 'keep', got {nonfinite!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"HDF5 feature file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            if not isinstance(f.get(key), h5py.Dataset):
                raise DataKeyError(
                    path, f"no dataset {key!r}; it has {sorted(f.keys())}"
                )
            array = f[key][()]
    except OSError as e:  # h5py reports bad signatures and cut files so.
        raise DataFormatError(
            path, f"unreadable, truncated or corrupt HDF5 file ({e})"
        ) from e
    if nonfinite == "raise":
        nonfinite_rows(np.atleast_1d(array), path, key, "raise")
    return array


def write_h5_array(path: str, key: str, array: np.ndarray) -> None:
    """Writes `array` as dataset `key` of a new HDF5 file, atomically."""

    def write(f):
        with h5py.File(f, "w") as h5:
            h5.create_dataset(key, data=np.asarray(array))

    atomic_write(path, write)


def standardize(x: np.ndarray) -> np.ndarray:
    """`(x - x.mean()) / x.std()` with global scalar statistics (as the reference).

    Computed in the array's own dtype with NumPy's reductions, as the
    reference does, so float32 features give the same float32 result.
    """
    return (x - x.mean()) / x.std()


def feature_paths(
    data_dir: str, dataset: str, image_aug: str = "aug_center", text_aug: str = "rb"
) -> dict[str, str]:
    """Reference file names for `dataset` ("UCM" or "RSICD").

    Returns a dict with keys `image` (view 1, center crop only), `image_aug`
    (view 2, `image_emb_{DS}_aug_{image_aug}.h5`), `caption` (raw) and
    `caption_aug` (`caption_emb_{DS}_aug_{text_aug}.h5`).
    """
    join = lambda name: os.path.join(data_dir, name)
    return {
        "image": join(f"image_emb_{dataset}_aug_center_crop_only.h5"),
        "image_aug": join(f"image_emb_{dataset}_aug_{image_aug}.h5"),
        "caption": join(f"caption_emb_{dataset}_aug.h5"),
        "caption_aug": join(f"caption_emb_{dataset}_aug_{text_aug}.h5"),
    }


@dataclasses.dataclass(frozen=True)
class DuchFeatures:
    """Standardised features of one dataset, in JSON order.

    Attributes:
      images, images_aug: (N, Di) image views 1 and 2.
      captions, captions_aug: (K*N, Dt) raw and augmented caption features.
      labels: (N,) int class codes.
      kept: (N,) original image indices (all of them unless non-finite
        images were dropped on request).
    """

    images: np.ndarray
    images_aug: np.ndarray
    captions: np.ndarray
    captions_aug: np.ndarray
    labels: np.ndarray
    kept: np.ndarray | None = None

    @property
    def captions_per_image(self) -> int:
        return self.captions.shape[0] // self.images.shape[0]


_FILES = [
    ("image", IMAGE_KEY),
    ("image_aug", IMAGE_KEY),
    ("caption", CAPTION_KEY),
    ("caption_aug", CAPTION_KEY),
]


def load_raw_features(
    paths: dict[str, str],
    num_images: int,
    captions_per_image: int | None = None,
    *,
    nonfinite: str = "raise",
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Reads the four feature files of `feature_paths`, checked, unstandardised.

    Args:
      paths: dict with keys `image`, `image_aug`, `caption`, `caption_aug`.
      num_images: N, the number of labels (images) the rows must match.
      captions_per_image: K; when None, any K with caption rows = K*N.
      nonfinite: "raise" (NaN/inf anywhere is an error naming the file) or
        "drop" (drop every image with a non-finite value in any of its rows,
        together with its K caption rows; warns with the count).

    Returns:
      `(arrays, kept)`: name -> 2-D array (image rows (N', Di), caption rows
      (K*N', Dt)), and `kept` (N',) int64, the original image indices kept.

    Raises:
      FileNotFoundError: a file is missing (its path is named).
      DataFormatError: unreadable file, not 2-D, row counts that disagree
        with N (images != N, captions != K*N) or with each other, or NaN/inf
        under `nonfinite="raise"`.
    """
    if nonfinite not in ("raise", "drop"):
        raise ValueError(f"nonfinite must be 'raise' or 'drop', got {nonfinite!r}")
    n, arrays, bad = int(num_images), {}, np.zeros(int(num_images), bool)
    if n <= 0:
        raise ValueError(f"num_images must be positive, got {n}")
    for name, key in _FILES:
        arr = arrays[name] = read_h5_array(paths[name], key, nonfinite="keep")
        if arr.ndim != 2 or arr.shape[1] == 0:
            raise DataFormatError(
                paths[name], f"{key} must be 2-D (rows, D > 0), got {arr.shape}"
            )
        rows = arr.shape[0]
        k = captions_per_image if name.startswith("caption") else 1
        if name.startswith("image") and rows != n:
            raise DataFormatError(paths[name], f"{rows} image rows but {n} labels")
        if k is None and (rows % n or rows == 0):
            raise DataFormatError(
                paths[name], f"{rows} caption rows is not a multiple of {n} images"
            )
        if k is not None and rows != k * n:
            raise DataFormatError(
                paths[name], f"{rows} rows but {k} per image x {n} labels = {k * n}"
            )
        per_image = nonfinite_rows(arr, paths[name], key, nonfinite)
        bad |= per_image.reshape(n, -1).any(axis=1)
    if arrays["caption"].shape[0] != arrays["caption_aug"].shape[0]:
        raise DataFormatError(
            paths["caption_aug"], f"{arrays['caption_aug'].shape[0]} rows but "
            f"{paths['caption']} has {arrays['caption'].shape[0]}"
        )  # fmt: skip
    kept = np.flatnonzero(~bad)
    if bad.any():
        if not kept.size:
            raise DataFormatError(paths["image"], "every image has non-finite rows")
        warnings.warn(
            f"nonfinite='drop': dropped {int(bad.sum())} of {n} images with NaN/inf "
            f"features (first {np.flatnonzero(bad)[:5].tolist()})",
            stacklevel=2,
        )
        k = arrays["caption"].shape[0] // n
        caption_rows = (k * kept[:, None] + np.arange(k)).reshape(-1)
        for name in arrays:
            rows = kept if name.startswith("image") else caption_rows
            arrays[name] = arrays[name][rows]
    return arrays, kept


def load_duch_features(
    paths: dict[str, str],
    labels: np.ndarray,
    *,
    captions_per_image: int | None = None,
    nonfinite: str = "raise",
) -> DuchFeatures:
    """Loads and standardises the four feature files of `feature_paths`.

    Args:
      paths: dict with keys `image`, `image_aug`, `caption`, `caption_aug`.
      labels: (N,) class codes (`CaptionDataset.labels`).
      captions_per_image: K, when known (`CaptionDataset.captions_per_image`).
      nonfinite: "raise" or "drop" (see `load_raw_features`; dropped images
        leave `labels` too, and `DuchFeatures.kept` says which remain).

    Raises:
      FileNotFoundError: a file is missing (its path is named).
      DataFormatError: see `load_raw_features`; also a file whose values are
        all equal (standardising it would divide by zero).
    """
    labels = np.asarray(labels)
    if labels.ndim == 0 or labels.shape[0] == 0:
        raise ValueError(f"labels must be (N,) with N > 0, got {labels.shape}")
    arrays, kept = load_raw_features(
        paths, labels.shape[0], captions_per_image, nonfinite=nonfinite
    )
    for name, arr in arrays.items():
        if arr.std() == 0:  # Standardising would divide by zero: all NaN.
            raise DataFormatError(paths[name], "all values are equal (std 0)")
    arrays = {name: standardize(arr) for name, arr in arrays.items()}
    return DuchFeatures(
        arrays["image"],
        arrays["image_aug"],
        arrays["caption"],
        arrays["caption_aug"],
        labels[kept],
        kept,
    )
