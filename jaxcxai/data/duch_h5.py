"""The DUCH/CHNR reference split and caption choice (`split_indexes`, `select_idxs`).

The train/query/db split and the one-caption-per-image choice use CPython's
`random` exactly as the reference does, so indices are computed here in
Python (cheap, once) and handed to JAX as arrays. A private
`random.Random(seed)` replays the same sequence as the reference's
`random.seed(seed)` without touching the global generator.

The feature files themselves (HDF5 reading, row and finiteness checks,
standardisation) live in `duch_features`; their names are re-exported here.
"""

import dataclasses
import random

import numpy as np

from jaxcxai.data.duch_features import CAPTION_KEY as CAPTION_KEY
from jaxcxai.data.duch_features import IMAGE_KEY as IMAGE_KEY
from jaxcxai.data.duch_features import DuchFeatures as DuchFeatures
from jaxcxai.data.duch_features import feature_paths as feature_paths
from jaxcxai.data.duch_features import load_duch_features as load_duch_features
from jaxcxai.data.duch_features import load_raw_features as load_raw_features
from jaxcxai.data.duch_features import read_h5_array as read_h5_array
from jaxcxai.data.duch_features import standardize as standardize
from jaxcxai.data.duch_features import write_h5_array as write_h5_array

__all__ = [
    "CAPTION_KEY",
    "IMAGE_KEY",
    "DuchFeatures",
    "Split",
    "caption_offsets",
    "chosen_caption_rows",
    "feature_paths",
    "load_duch_features",
    "load_raw_features",
    "read_h5_array",
    "split_indexes",
    "standardize",
    "subset",
    "write_h5_array",
]


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
