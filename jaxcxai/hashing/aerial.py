"""Hashing features of SynthAerial: pooled CNN image features, MiniLM captions.

The offline analogue of the reference's feature extraction (the DUCH
reference code's `images_augment.py` and `captions_embed.py`), with offline
substitutes, as no ResNet18 or BERT weights ship in a package: the packaged
ImageNet MobileNetV2 (global-average-pooled 1280-d, eval-mode BatchNorm,
ImageNet normalisation, at the generated image size rather than 224 px, for
CPU cost) instead of ResNet18, and all-MiniLM-L6-v2 (mean-pooled 384-d)
instead of BERT.

Views (reconstruction of the reference's `center_crop_only` / `aug_center`):
  view 1  center crop of `crop` of the side (reference 200 of 256), resized to
          the backbone input size;
  view 2  Gaussian blur (sigma ~ U[1.1, 1.3] at 256 px, scaled with the image
          side), rotation by U[-10, -5] degrees (nearest, black fill), then
          the same crop and resize; one fixed draw per image (seeded), as the
          reference computes its single augmented copy once offline.
Captions are cleaned as in `captions_embed.py` (`. , ! ?` removed,
lowercased). The text augmentation `"synonyms"` reconstructs the rule-based
`aug_rb`: its GloVe neighbours with the same part of speech are replaced by a
fixed table of synonyms for the nouns and verbs of the SynthAerial caption
grammar (no GloVe, NLTK or BERTScore offline), and "there is" becomes "it is".

Each part (captions and labels, the image views, each caption variant) is
cached as one `.npz` under `cache_dir`, named by a hash of the settings it
depends on, written to a temporary name and renamed.
"""

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from jaxcxai.atomic_files import atomic_write

__all__ = [
    "LABEL_MODES",
    "SYNONYMS",
    "augment_caption",
    "clean_caption",
    "image_views",
    "json_like_split",
    "synthaerial_features",
]

LABEL_MODES = ("scene_objects", "scene", "objects")
# Bump when a computation changes, so stale caches are not reused.
_CACHE_VERSION = 1
_REFERENCE_SIDE = 256  # UCM tiles; blur sigma and crop are given at this side

# Noun and verb substitutes (GloVe-style neighbours, same part of speech).
SYNONYMS = {
    "airplane": "aircraft", "airplanes": "aircraft", "plane": "jet",
    "planes": "jets", "airport": "airfield", "apron": "ramp", "area": "region",
    "beach": "shore", "boat": "vessel", "boats": "vessels",
    "building": "structure", "buildings": "structures", "built": "constructed",
    "car": "vehicle", "cars": "vehicles", "court": "pitch", "courts": "pitches",
    "crops": "harvests", "docked": "anchored", "driving": "moving",
    "farmland": "cropland", "field": "meadow", "forest": "woodland",
    "freeway": "motorway", "grass": "turf", "ground": "soil",
    "growing": "thriving", "harbor": "marina", "highway": "motorway",
    "houses": "homes", "image": "picture", "lawn": "yard", "lying": "resting",
    "moored": "anchored", "parked": "stationed", "planted": "sown",
    "river": "stream", "road": "street", "roofs": "rooftops", "sand": "dunes",
    "scattered": "spread", "seen": "observed", "site": "complex",
    "snow": "ice", "standing": "sitting", "stopped": "halted", "tank": "container",
    "tanks": "containers", "tree": "shrub", "trees": "shrubs",
    "truck": "lorry", "trucks": "lorries", "water": "waters", "waves": "surf",
}  # fmt: skip


def clean_caption(text: str) -> str:
    """The reference's caption cleaning: drop `. , ! ?`, lowercase."""
    return re.sub(r"[.,!?]", "", text).lower()


def augment_caption(text: str) -> str:
    """Rule-based augmentation: synonym substitution, "there is" -> "it is"."""
    words = text.split(" ")
    out = []
    for i, w in enumerate(words):
        nxt = words[i + 1].lower() if i + 1 < len(words) else ""
        low = w.lower()
        if low == "there" and nxt == "is":
            new = "it"
        else:
            new = SYNONYMS.get(low, low)
        out.append(new.capitalize() if w[:1].isupper() else new)
    return " ".join(out)


def json_like_split(codes: np.ndarray) -> np.ndarray:
    """(N,) object array: per class, the first 80 % "train", 10 % "test",
    the rest "val" (the layout of the `split` field of the reference's UCM
    caption JSON, `data/UCM.json`)."""
    codes = np.asarray(codes)
    split = np.empty(len(codes), object)
    for c in np.unique(codes):
        pos = np.flatnonzero(codes == c)
        n_train, n_test = int(0.8 * len(pos)), int(0.1 * len(pos))
        split[pos[:n_train]] = "train"
        split[pos[n_train : n_train + n_test]] = "test"
        split[pos[n_train + n_test :]] = "val"
    return split


def _crop_resize(img: Image.Image, crop: float, out: int) -> Image.Image:
    side = img.size[0]
    c = max(1, round(crop * side))
    lo = (side - c) // 2
    return img.crop((lo, lo, lo + c, lo + c)).resize((out, out), Image.BILINEAR)


def image_views(
    images: np.ndarray, *, crop: float, out_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The two views of each image (see the module docstring).

    Args:
      images: (N, S, S, 3) uint8.
      crop: kept fraction of the side for the center crop.
      out_size: side of the returned views.
      seed: seed of the per-image blur and rotation draws.

    Returns:
      (view1, view2), each (N, out_size, out_size, 3) uint8.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 (N, S, S, 3), got {images.dtype} {images.shape}"
        )
    scale = images.shape[1] / _REFERENCE_SIDE
    v1, v2 = [], []
    for i, x in enumerate(images):
        rng = np.random.default_rng([seed, i])
        img = Image.fromarray(x)
        v1.append(np.asarray(_crop_resize(img, crop, out_size)))
        sigma, angle = rng.uniform(1.1, 1.3), rng.uniform(-10.0, -5.0)
        aug = img.filter(ImageFilter.GaussianBlur(sigma * scale))
        aug = aug.rotate(angle, resample=Image.NEAREST, fillcolor=(0, 0, 0))
        v2.append(np.asarray(_crop_resize(aug, crop, out_size)))
    return np.stack(v1), np.stack(v2)


def _cached(cache_dir, kind: str, settings: dict, compute) -> dict:
    """`compute()` (a dict of arrays), stored under a hash of `settings`."""
    if cache_dir is None:
        return compute()
    settings = dict(settings, kind=kind, version=_CACHE_VERSION)
    blob = json.dumps(settings, sort_keys=True)
    path = (
        Path(cache_dir) / f"{kind}-{hashlib.sha1(blob.encode()).hexdigest()[:16]}.npz"
    )
    if path.is_file():
        with np.load(path) as f:
            return {k: f[k] for k in f.files if k != "settings"}
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.savez(f, settings=np.asarray(blob), **arrays))
    return arrays


def _labels(scene: np.ndarray, objects: np.ndarray, mode: str) -> np.ndarray:
    from jaxcxai.data.synthaerial import SCENES

    one_hot = np.eye(len(SCENES), dtype=np.float32)[scene]
    parts = {
        "scene": [one_hot],
        "objects": [objects.astype(np.float32)],
        "scene_objects": [one_hot, objects.astype(np.float32)],
    }[mode]
    return np.concatenate(parts, axis=1)


def synthaerial_features(
    num: int,
    *,
    size: int = 128,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    image_backbone: str = "mobilenet_v2",
    input_size: int | None = None,
    crop: float = 200 / 256,
    image_aug: bool = True,
    text_aug: str | None = "synonyms",
    labels: str = "scene_objects",
    batch_size: int = 32,
    progress: bool = False,
) -> dict:
    """Image and caption features of SynthAerial images 0..num-1.

    Args:
      num: number of images (`synthaerial.generate(num, size=, seed=)`).
      size: generated image side.
      seed: dataset seed (also seeds the view-2 draws).
      cache_dir: cache folder (None: compute, cache nothing).
      image_backbone: a `pretrained.load_pretrained` name.
      input_size: backbone input side (default `size`).
      crop: center-crop fraction of both views.
      image_aug: also compute view 2 (`image_features_aug`).
      text_aug: "synonyms" (rule-based, module docstring) or None (no
        `text_features_aug`).
      labels: "scene_objects" (scene one-hot then objects present, L = 13 +
        8), "scene" (one-hot, single-label like UCM) or "objects".
      batch_size: images per backbone call (a multiple of the device count).
      progress: show progress bars.

    Returns:
      `image_features` (N, C) float32, `image_features_aug` (N, C) if
      `image_aug`, `text_features` (N, 5, 384) float32, `text_features_aug`
      (N, 5, 384) if `text_aug`, `labels` (N, L) float32 multi-hot,
      `json_split` (N,) per-scene 80/10/10 "train"/"test"/"val".
    """

    if labels not in LABEL_MODES:
        raise ValueError(f"labels must be one of {LABEL_MODES}, got {labels!r}")
    if text_aug not in (None, "synonyms"):
        raise ValueError(f"text_aug must be None or 'synonyms', got {text_aug!r}")
    input_size = input_size or size
    base = dict(num=num, size=size, seed=seed)
    generated = {}  # rendered once, only if some part is not cached

    def generate() -> dict:
        if not generated:
            from jaxcxai.data import synthaerial

            generated.update(synthaerial.generate(num, size=size, seed=seed))
        return generated

    meta = _cached(
        cache_dir, "meta", base,
        lambda: {k: generate()[k] for k in ("scene", "objects_present", "captions")},
    )  # fmt: skip

    def image_features() -> dict:
        v1, v2 = image_views(
            generate()["image"], crop=crop, out_size=input_size, seed=seed
        )
        # Both views in one extraction: one compilation.
        x = np.concatenate([v1, v2]) if image_aug else v1
        f = _pool_features(image_backbone, x, batch_size, progress)
        return {"view1": f[:num], "view2": f[num:]} if image_aug else {"view1": f}

    img_settings = dict(
        base, backbone=image_backbone, input_size=input_size, crop=crop, aug=image_aug
    )
    img = _cached(cache_dir, "image", img_settings, image_features)
    out = {"image_features": img["view1"]}
    if image_aug:
        out["image_features_aug"] = img["view2"]

    captions = [clean_caption(str(c)) for c in meta["captions"].reshape(-1)]
    encoder = {}

    def encode(texts) -> dict:
        if not encoder:
            from jaxcxai.models.minilm import TextEncoder

            encoder["enc"] = TextEncoder()
        emb = encoder["enc"].encode(texts)
        return {"features": emb.reshape(*meta["captions"].shape, -1)}

    txt = dict(base, encoder="all-MiniLM-L6-v2/mean")
    out["text_features"] = _cached(cache_dir, "text", txt, lambda: encode(captions))[
        "features"
    ]
    if text_aug:
        aug = [augment_caption(c) for c in captions]
        out["text_features_aug"] = _cached(
            cache_dir, f"text_{text_aug}", txt, lambda: encode(aug)
        )["features"]
    out["labels"] = _labels(meta["scene"], meta["objects_present"], labels)
    out["json_split"] = json_like_split(meta["scene"])
    return out


def _pool_features(name: str, images: np.ndarray, batch_size: int, progress: bool):
    """(N, C) float32 global-average-pooled backbone features (eval mode)."""
    from jaxcxai import features
    from jaxcxai.models.preprocess import preprocess
    from jaxcxai.models.pretrained import load_pretrained

    model, variables = load_pretrained(name)

    def apply_fn(x):
        return model.apply(
            variables, preprocess(name, x), train=False, layers=("pool",)
        )

    out = features.extract(
        apply_fn, images, ["pool"], batch_size=batch_size, dtype=np.float32,
        pool=False, progress=progress,
    )  # fmt: skip
    return np.asarray(out["pool"], np.float32)
