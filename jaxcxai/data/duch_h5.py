"""DUCH/CHNR feature files and the reference split (hashing.md §1.2-1.5).

The reference stores precomputed features in HDF5 files holding one dataset
each: `image_emb` (N, 512) float32 per image view and `caption_emb`
(K*N, 768) per caption variant, rows in caption-JSON order (image row =
imgid, caption row = K*imgid + k). Loading standardises every array by its
own global scalar mean and std over all elements, query and db rows included.

The train/query/db split and the one-caption-per-image choice use CPython's
`random` exactly as the reference does, so indices are computed here in
Python (cheap, once) and handed to JAX as arrays. A private
`random.Random(seed)` replays the same sequence as the reference's
`random.seed(seed)` without touching the global generator.
"""

import dataclasses
import os
import random

import h5py
import numpy as np

__all__ = [
    "DuchFeatures",
    "Split",
    "caption_offsets",
    "chosen_caption_rows",
    "feature_paths",
    "load_duch_features",
    "read_h5_array",
    "split_indexes",
    "standardize",
    "subset",
    "write_h5_array",
]

IMAGE_KEY = "image_emb"
CAPTION_KEY = "caption_emb"


@dataclasses.dataclass(frozen=True)
class Split:
    """Image indices of the reference split, each sorted ascending (int64)."""

    train: np.ndarray
    query: np.ndarray
    db: np.ndarray


def split_indexes(
    num_images: int, train_frac: float = 0.5, query_frac: float = 0.2, seed: int = 42
) -> Split:
    """Replicates the reference `split_indexes` (called twice, seed 42).

    `train = sorted(sample(range(N), int(train_frac*N)))`; the rest is split
    the same way into `query` (`int(query_frac*len(rest))`) and `db`, with
    the one generator continuing between the two samples. UCM (N=2100) gives
    1050/210/840, RSICD (N=10921) 5460/1092/4369.
    """
    rng = random.Random(seed)
    idx_all = list(range(num_images))
    train = sorted(rng.sample(idx_all, int(train_frac * num_images)))
    in_train = set(train)
    rest = [i for i in idx_all if i not in in_train]
    query = sorted(rng.sample(rest, int(query_frac * len(rest))))
    in_query = set(query)
    db = [i for i in rest if i not in in_query]
    as_arr = lambda v: np.asarray(v, np.int64)
    return Split(as_arr(train), as_arr(query), as_arr(db))


def caption_offsets(
    num_images: int, captions_per_image: int = 5, seed: int = 42, rng=None
) -> np.ndarray:
    """Per-image caption offset of `select_idxs(K*n, 1, K, seed)`.

    Reseeds, then draws `sample(range(K), 1)` for each image of a subset in
    subset order. Because every subset reseeds, the i-th image of train,
    query and db gets the same offset (0,0,2,1,1,1,0,4,... for seed 42).

    Args:
      num_images: number of images in the subset.
      captions_per_image: K.
      seed: the reseed value.
      rng: an existing `random.Random` to draw from instead of a fresh one
        (CHNR's noise injection continues the same generator).

    Returns:
      (num_images,) int64 offsets in [0, K).
    """
    rng = random.Random(seed) if rng is None else rng
    draws = [rng.sample(range(captions_per_image), 1)[0] for _ in range(num_images)]
    return np.asarray(draws, np.int64)


def chosen_caption_rows(
    image_idx: np.ndarray, captions_per_image: int = 5, seed: int = 42
) -> np.ndarray:
    """Caption rows `K*imgid + offset` used for a subset of images (n,)."""
    image_idx = np.asarray(image_idx, np.int64)
    offsets = caption_offsets(len(image_idx), captions_per_image, seed)
    return captions_per_image * image_idx + offsets


def read_h5_array(path: str, key: str) -> np.ndarray:
    """Reads the whole dataset `key` of an HDF5 file as a NumPy array."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"HDF5 feature file not found: {path}")
    with h5py.File(path, "r") as f:
        if key not in f:
            raise KeyError(f"{path}: no dataset {key!r}; it has {sorted(f.keys())}")
        return f[key][()]


def write_h5_array(path: str, key: str, array: np.ndarray) -> None:
    """Writes `array` as dataset `key` of a new HDF5 file, atomically."""
    tmp = f"{path}.tmp{os.getpid()}"
    with h5py.File(tmp, "w") as f:
        f.create_dataset(key, data=np.asarray(array))
    os.replace(tmp, path)


def standardize(x: np.ndarray) -> np.ndarray:
    """`(x - x.mean()) / x.std()` with global scalar statistics (§1.5).

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
    """

    images: np.ndarray
    images_aug: np.ndarray
    captions: np.ndarray
    captions_aug: np.ndarray
    labels: np.ndarray

    @property
    def captions_per_image(self) -> int:
        return self.captions.shape[0] // self.images.shape[0]


def load_duch_features(paths: dict[str, str], labels: np.ndarray) -> DuchFeatures:
    """Loads and standardises the four feature files of `feature_paths`.

    Args:
      paths: dict with keys `image`, `image_aug`, `caption`, `caption_aug`.
      labels: (N,) class codes (`CaptionDataset.labels`).

    Raises:
      FileNotFoundError: a file is missing (its path is named).
      ValueError: row counts disagree (images != N, captions not K*N).
    """
    labels = np.asarray(labels)
    arrays = {}
    for name, key in [
        ("image", IMAGE_KEY),
        ("image_aug", IMAGE_KEY),
        ("caption", CAPTION_KEY),
        ("caption_aug", CAPTION_KEY),
    ]:
        arr = read_h5_array(paths[name], key)
        if arr.ndim != 2:
            raise ValueError(f"{paths[name]}: {key} must be 2-D, got {arr.shape}")
        arrays[name] = standardize(arr)
    n = labels.shape[0]
    for name in ("image", "image_aug"):
        if arrays[name].shape[0] != n:
            raise ValueError(
                f"{paths[name]}: {arrays[name].shape[0]} image rows but {n} labels"
            )
    for name in ("caption", "caption_aug"):
        rows = arrays[name].shape[0]
        if rows % n or rows == 0:
            raise ValueError(
                f"{paths[name]}: {rows} caption rows is not a multiple of {n} images"
            )
    if arrays["caption"].shape[0] != arrays["caption_aug"].shape[0]:
        raise ValueError("raw and augmented caption files have different row counts")
    return DuchFeatures(
        arrays["image"],
        arrays["image_aug"],
        arrays["caption"],
        arrays["caption_aug"],
        labels,
    )


def subset(features: DuchFeatures, image_idx: np.ndarray, seed: int = 42) -> dict:
    """One reference dataset object (train, query or db) as arrays.

    Each image keeps the single caption picked by `chosen_caption_rows`; the
    augmented caption is the augmented version of that same caption.

    Returns:
      Dict with `image_idx` (n,), `caption_rows` (n,), `img` and `img_aug`
      (n, Di), `txt` and `txt_aug` (n, Dt), `labels` (n,).
    """
    image_idx = np.asarray(image_idx, np.int64)
    rows = chosen_caption_rows(image_idx, features.captions_per_image, seed)
    return {
        "image_idx": image_idx,
        "caption_rows": rows,
        "img": features.images[image_idx],
        "img_aug": features.images_aug[image_idx],
        "txt": features.captions[rows],
        "txt_aug": features.captions_aug[rows],
        "labels": features.labels[image_idx],
    }
