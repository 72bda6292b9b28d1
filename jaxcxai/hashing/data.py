"""Feature sources and the train/query/db subsets of the hashing trainers.

Every source returns the keyword arrays of `prepare_data`: `image_features`
(N, Di), optional `image_features_aug` (the second image view),
`text_features` (N, K, Dt), optional `text_features_aug`, `labels` (N, L)
multi-hot and, where it has one, `json_split` (N,) "train"/"val"/"test".

  synthetic_features    planted class structure (placeholder, no backbone)
  h5_features           the reference's HDF5 feature files (`image_emb_*.h5`,
                        `caption_emb_*.h5`)
  synthaerial_features  MobileNetV2 + MiniLM features of SynthAerial
                        (`jaxcxai.hashing.aerial`, re-exported here)
  prepare_data          standardisation, split and caption choice (as in the
                        reference code)
  chnr_sets             CHNR's noisy main-phase and clean meta-phase sets
"""

import numpy as np

from jaxcxai.data import duch_h5, noise
from jaxcxai.hashing.aerial import json_like_split, synthaerial_features

__all__ = [
    "chnr_sets",
    "class_ids",
    "h5_features",
    "prepare_data",
    "synthaerial_features",
    "synthetic_features",
]


def synthetic_features(
    *,
    num_images: int,
    num_classes: int,
    image_dim: int,
    text_dim: int,
    captions_per_image: int = 5,
    class_scale: float = 1.0,
    noise: float = 1.0,
    aug_noise: float = 0.3,
    seed: int = 0,
) -> dict:
    """Features with planted class structure (placeholder for real ones).

    Each class has a random centre per modality; an image is its centre plus
    Gaussian noise (std `noise`), each of its captions the text centre plus
    noise, and the augmented views add `aug_noise` more. Splits follow the
    UCM JSON layout (per class: 80 % train, 10 % test, 10 % val).
    """
    rng = np.random.default_rng(seed)
    n, c, k = num_images, num_classes, captions_per_image
    codes = np.arange(n) % c
    ci = class_scale * rng.normal(size=(c, image_dim))
    ct = class_scale * rng.normal(size=(c, text_dim))
    img = ci[codes] + noise * rng.normal(size=(n, image_dim))
    txt = ct[codes][:, None] + noise * rng.normal(size=(n, k, text_dim))
    f32 = lambda a: a.astype(np.float32)
    return {
        "image_features": f32(img),
        "image_features_aug": f32(img + aug_noise * rng.normal(size=img.shape)),
        "text_features": f32(txt),
        "text_features_aug": f32(txt + aug_noise * rng.normal(size=txt.shape)),
        "labels": np.eye(c, dtype=np.float32)[codes],
        "json_split": json_like_split(codes),
    }


def h5_features(
    h5_path: str,
    json_path: str,
    dataset: str = "UCM",
    image_aug: str = "aug_center",
    text_aug: str = "rb",
) -> dict:
    """Raw (unstandardised) reference features and the caption JSON's
    labels and splits (`duch_h5.feature_paths` names the four files)."""
    from jaxcxai.data.captions import load_caption_json

    if not json_path:
        raise ValueError("h5 features need json_path (labels and splits)")
    meta = load_caption_json(json_path)
    paths = duch_h5.feature_paths(h5_path, dataset, image_aug, text_aug)
    n, k = meta.num_images, meta.captions_per_image
    # Row counts are checked against the JSON's images and captions (a caption
    # file with other rows must not be reshaped into scrambled captions), and
    # non-finite values are an error naming the file.
    arrays, _ = duch_h5.load_raw_features(paths, n, k)
    f32 = lambda name: np.asarray(arrays[name], np.float32)  # noqa: E731
    num_classes = len(meta.class_names)
    return {
        "image_features": f32("image"),
        "image_features_aug": f32("image_aug"),
        "text_features": f32("caption").reshape(n, k, -1),
        "text_features_aug": f32("caption_aug").reshape(n, k, -1),
        "labels": np.eye(num_classes, dtype=np.float32)[meta.labels],
        "json_split": np.asarray(meta.splits, object),
    }


def prepare_data(
    image_features,
    text_features,
    labels,
    *,
    image_features_aug=None,
    text_features_aug=None,
    json_split=None,
    standardize=True,
    standardize_with_eval_rows=True,
    random_split=True,
    train_frac=0.5,
    query_frac=0.2,
    seed=42,
) -> dict:
    """Train/query/db subsets of per-image features (as the reference code
    splits, picks captions and standardises).

    Args:
      image_features: (N, Di); image_features_aug: view 2 (default: view 1).
      text_features: (N, K, Dt) or (N, Dt); text_features_aug likewise.
      labels: (N, L) multi-hot (or (N,) class codes).
      json_split: (N,) "train"/"val"/"test", used when not `random_split`
        (query = test, db = train + val).
      standardize: scalar mean/std standardisation of each array, over all
        rows (`standardize_with_eval_rows`, the reference) or train rows only.
      random_split: the reference's seeded 50/10/40 split.
      seed: split and caption-choice seed.

    Returns:
      {'train', 'query', 'db'}, each a dict with `image_idx`, `img`,
      `img_aug`, `txt`, `txt_aug` (the chosen caption), `labels` (n, L);
      train also has `txt_all`, `txt_aug_all` (n, K, Dt).
    """
    x = np.asarray(image_features, np.float32)
    n = x.shape[0]
    x_aug = x if image_features_aug is None else np.asarray(image_features_aug)
    t = np.asarray(text_features, np.float32)
    t = t[:, None] if t.ndim == 2 else t
    t_aug = t if text_features_aug is None else np.asarray(text_features_aug)
    t_aug = t_aug[:, None] if t_aug.ndim == 2 else t_aug
    labels = np.asarray(labels, np.float32)
    if labels.ndim == 1:
        labels = np.eye(int(labels.max()) + 1, dtype=np.float32)[labels.astype(int)]
    for name, a in [
        ("image_features_aug", x_aug),
        ("text_features", t),
        ("text_features_aug", t_aug),
    ]:
        if a.shape[0] != n or labels.shape[0] != n:
            raise ValueError(
                f"row counts differ: image_features {x.shape}, {name} {a.shape}, "
                f"labels {labels.shape}"
            )
    if random_split:
        s = duch_h5.split_indexes(n, train_frac, query_frac, seed)
        parts = {"train": s.train, "query": s.query, "db": s.db}
    else:
        if json_split is None:
            raise ValueError("random_split=False needs json_split (N,) values")
        js = np.asarray(json_split)
        parts = {
            "train": np.flatnonzero(js == "train"),
            "query": np.flatnonzero(js == "test"),
            "db": np.flatnonzero((js == "train") | (js == "val")),
        }
    empty = [name for name, idx in parts.items() if len(idx) == 0]
    if empty:
        how = (f"random split of {n} rows with train_frac={train_frac}, "
               f"query_frac={query_frac}" if random_split else
               "json_split (query = 'test', db = 'train' + 'val' rows)")  # fmt: skip
        sizes = {name: len(idx) for name, idx in parts.items()}
        raise ValueError(
            f"empty split(s) {empty} from the {how}: sizes {sizes}; every split "
            "needs rows (more data, other fractions or another json_split)"
        )
    if standardize:
        rows = slice(None) if standardize_with_eval_rows else parts["train"]
        names = ("image_features", "image_features_aug", "text_features",
                 "text_features_aug")  # fmt: skip
        x, x_aug, t, t_aug = (
            _standardize(name, a, rows) for name, a in zip(names, (x, x_aug, t, t_aug))
        )
    out = {}
    for name, idx in parts.items():
        off = duch_h5.caption_offsets(len(idx), t.shape[1], seed) % t.shape[1]
        out[name] = {
            "image_idx": idx,
            "img": x[idx],
            "img_aug": x_aug[idx],
            "txt": t[idx, off],
            "txt_aug": t_aug[idx, off],
            "labels": labels[idx],
        }
    out["train"]["txt_all"] = t[parts["train"]]
    out["train"]["txt_aug_all"] = t_aug[parts["train"]]
    return out


def _standardize(name: str, a: np.ndarray, rows) -> np.ndarray:
    """`a` minus its scalar mean over `rows`, over their std (float32).

    Raises:
      ValueError: naming `name` when that std is 0 or not finite.
    """
    sample = a[rows]
    mean, sd = sample.mean(), sample.std()
    if not sd > 0:
        raise ValueError(
            f"cannot standardise {name}: its standard deviation over the "
            f"standardisation rows is {sd} (constant or non-finite values); "
            "pass standardize=False to keep them"
        )
    return ((a - mean) / sd).astype(np.float32)


def class_ids(labels: np.ndarray) -> np.ndarray:
    """(n,) ids of distinct label vectors ("another label" = another id)."""
    return np.unique(labels, axis=0, return_inverse=True)[1].reshape(-1)


def chnr_sets(
    train: dict,
    *,
    noise_prob: float,
    clean_fraction: float,
    seed: int = 42,
    always_clean_20: bool = True,
    clean_label_bug: bool = True,
    buffer_index_mismatch: bool = True,
) -> tuple[dict, dict]:
    """CHNR's (noisy main-phase set, clean meta-phase set), as the CHNR
    reference code (comrados/noisy_captions) builds them.

    Args:
      train: the `prepare_data` train part.
      noise_prob: caption replacement probability p.
      clean_fraction: size of the clean (meta) subset.
      seed: seed of the noise replay and the clean subset.
      always_clean_20: QUIRK, the always-clean subset is 20 % whatever
        `clean_fraction` (False: it is `clean_fraction`).
      clean_label_bug: QUIRK, the clean set yields `labels[t]`.
      buffer_index_mismatch: QUIRK, the meta-phase B/buffer rows are
        clean-subset positions (False: train positions).

    Returns:
      main: `train` with the text arrays of noisy rows taken from their
        source rows, plus `buffer_idx` (n,) and `noisy` (n,) bool.
      meta: `train` restricted to the clean subset, plus `class_ids` (the
        labels the fake-pair draw sees) and `buffer_idx`.
    """
    n = len(train["img"])
    ids = class_ids(train["labels"])
    always = 0.2 if always_clean_20 else clean_fraction
    k = train["txt_all"].shape[1]
    nz = noise.inject_noise(ids, noise_prob, k, seed, always)
    main = {
        key: v[nz.source] if key.startswith("txt") else v for key, v in train.items()
    }
    main["buffer_idx"] = np.arange(n)
    main["noisy"] = nz.noisy
    clean_idx = noise.clean_subset(n, clean_fraction, seed)
    meta = {key: v[clean_idx] for key, v in train.items()}
    meta["class_ids"] = noise.clean_subset_labels(ids, clean_idx, clean_label_bug)
    meta["buffer_idx"] = (
        np.arange(len(clean_idx)) if buffer_index_mismatch else clean_idx
    )
    return main, meta
