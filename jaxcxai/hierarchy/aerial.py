"""The SynthAerial source: frozen features, the two-tower model, two views.

The project's own vision-language model (`heads`) trained on SynthAerial
image-caption pairs gives the semantic-hierarchies study (Schwalbe et al.
2026, arXiv:2603.26798) a real two-tower space with zero-shot
classification of the 13 scene classes, checked against the SynthAerial
scene taxonomy (`ontology.synthaerial_taxonomy("scenes")`):

* image view: per-class centroids of the training images' embeddings;
* text view: the prompt-template-averaged embeddings of the class names
  (the zero-shot classifier);
* concept bank: the taxonomy's internal node names through the text tower.

Features (`AerialData`):
  "packaged"   pooled MobileNetV2 image features and mean-pooled MiniLM
               caption features of `jaxcxai.hashing.aerial.
               synthaerial_features`, cached where the hashing stage caches
               them (same settings, same files); class-name prompts and bank
               names through MiniLM
  "synthetic"  stand-ins with the taxonomy planted (`synthetic.node_vectors`:
               image features discriminative, caption features hierarchical,
               xai.md 3.4 substitute 1), for CI runs without the encoders
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from jaxcxai import parallel
from jaxcxai.data.synthaerial import SCENES
from jaxcxai.data.synthaerial_captions import SCENE_TEXT
from jaxcxai.hierarchy import centroids as centroids_lib
from jaxcxai.hierarchy import heads as heads_lib
from jaxcxai.hierarchy import heads_training, sources, synthetic
from jaxcxai.hierarchy import ontology as onto_lib

__all__ = [
    "FEATURES",
    "TEMPLATES",
    "AerialData",
    "packaged_features",
    "scene_phrases",
    "split",
    "synthetic_features",
    "two_tower_views",
]

FEATURES = ("packaged", "synthetic")
# Prompt templates around a noun phrase with its article ("an airport"), in
# the wording of SynthAerial's captions ("It is a dense residential area ...").
TEMPLATES = ("It is {}.", "An aerial image of {}.", "{} seen from above.",
             "There is {} in the image.")  # fmt: skip


class AerialData(NamedTuple):
    """Frozen features of SynthAerial scenes and of the prompts.

    Attributes:
      image: (N, Di) image features; image_aug: (N, Di) of the augmented
        view, or None. text: (N, K, Dt) caption features. labels: (N,) scene.
      prompts: (n, T, Dt) features of T prompts per scene class.
      bank: (B, T, Dt) features of the bank names in the same templates.
      bank_names: (B,); bank_onto: (B,) their taxonomy nodes.
      onto, leaves: the scene taxonomy and (n,) its node of each scene.
      kind: "packaged" or "synthetic".
    """

    image: np.ndarray
    image_aug: np.ndarray | None
    text: np.ndarray
    labels: np.ndarray
    prompts: np.ndarray
    bank: np.ndarray
    bank_names: tuple[str, ...]
    bank_onto: np.ndarray
    onto: onto_lib.Ontology
    leaves: np.ndarray
    kind: str


def scene_phrases() -> tuple[str, ...]:
    """The captions' noun phrase of each scene ("an airport"), SCENES order."""
    return tuple(SCENE_TEXT[s][0][0] for s in SCENES)


def _bare(phrase: str) -> str:
    return phrase.split(" ", 1)[1] if phrase.split(" ", 1)[0] in ("a", "an") else phrase


def _prompt_texts(names, templates) -> list[str]:
    return [t.format(n) for n in names for t in templates]


def packaged_features(*, num_images, image_size, seed, crop, image_aug, cache_dir,
                      batch_size, templates=TEMPLATES, encode=None,
                      progress=False) -> AerialData:  # fmt: skip
    """MobileNetV2 / MiniLM features of SynthAerial images 0..num_images-1.

    Args mirror `jaxcxai.hashing.aerial.synthaerial_features` (scene labels,
    no caption augmentation): with the hashing stage's settings the cached
    features are reused. `encode`: `texts -> (N, 384)` for the prompts
    (default `sources.minilm()`).
    """
    from jaxcxai.hashing.aerial import synthaerial_features

    f = synthaerial_features(
        num_images, size=image_size, seed=seed, cache_dir=cache_dir,
        crop=crop, image_aug=image_aug, text_aug=None, labels="scene",
        batch_size=batch_size, progress=progress,
    )  # fmt: skip
    onto, leaves = onto_lib.synthaerial_taxonomy("scenes")
    names, nodes = sources.bank_names(onto)
    encode = encode or sources.minilm()
    t = len(templates)
    # One encode call for class prompts and bank: fewer padded batch shapes.
    both = np.asarray(encode(_prompt_texts(
        [*scene_phrases(), *(sources.with_article(x) for x in names)], templates)))  # fmt: skip
    prompts, bank = both[: len(SCENES) * t], both[len(SCENES) * t :]
    return AerialData(
        f["image_features"], f.get("image_features_aug"), f["text_features"],
        np.argmax(f["labels"], 1).astype(np.int32),
        np.asarray(prompts).reshape(len(SCENES), t, -1),
        np.asarray(bank).reshape(len(names), t, -1), names, nodes, onto, leaves,
        "packaged",
    )  # fmt: skip


def synthetic_features(key, *, num_images, num_templates=len(TEMPLATES), captions=5,
                       image_dim=64, text_dim=48, noise=0.5) -> AerialData:  # fmt: skip
    """Stand-in features with the scene taxonomy planted.

    Node vectors of the taxonomy drawn top-down (`synthetic.node_vectors`),
    one set for the image and one for the text side; images and captions
    are class vectors plus noise with the modality profiles of
    `synthetic.PROFILES` (images: strong cross-branch noise, captions:
    strong within-class noise), prompts and bank names the text node vectors
    plus a little noise.
    """
    onto, leaves = onto_lib.synthaerial_taxonomy("scenes")
    n = len(SCENES)
    per = max(2, num_images // n)
    k_iv, k_tv, k_img, k_cap, k_pr, k_bank = jax.random.split(key, 6)
    img_vec = synthetic.node_vectors(k_iv, onto.parent, leaves, image_dim)
    txt_vec = synthetic.node_vectors(k_tv, onto.parent, leaves, text_dim)
    (iw, ic), (tw, tc) = synthetic.PROFILES["image"], synthetic.PROFILES["text"]
    image, labels = synthetic.sample_embeddings(k_img, img_vec[leaves], per,
                                                noise * iw, noise * ic)  # fmt: skip
    text, _ = synthetic.sample_embeddings(k_cap, txt_vec[leaves], per * captions,
                                          noise * tw, noise * tc)  # fmt: skip
    prompts, _ = synthetic.sample_embeddings(k_pr, txt_vec[leaves], num_templates,
                                             0.1 * noise, 0.0)  # fmt: skip
    names, nodes = sources.bank_names(onto)
    bank, _ = synthetic.sample_embeddings(k_bank, txt_vec[nodes], num_templates,
                                          0.1 * noise, 0.0)  # fmt: skip
    return AerialData(
        image, None, text.reshape(n * per, captions, -1), labels,
        prompts.reshape(n, num_templates, -1), bank.reshape(len(names), num_templates, -1),
        names, nodes, onto, leaves, "synthetic",
    )  # fmt: skip


def split(labels, test_frac: float) -> np.ndarray:
    """(N,) bool test mask: per class, its last round(test_frac * count)
    images (at least one, and at least one left for training)."""
    labels = np.asarray(labels)
    if not 0.0 < test_frac < 1.0:
        raise ValueError(f"test_frac must lie in (0, 1), got {test_frac}")
    test = np.zeros(labels.shape, bool)
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        if pos.size < 2:
            raise ValueError(f"scene class {c} has {pos.size} image(s); need >= 2")
        k = min(max(1, round(test_frac * pos.size)), pos.size - 1)
        test[pos[-k:]] = True
    return test


def two_tower_views(key, data: AerialData, *, test_frac, dim, hidden, steps,
                    batch_size, lr, weight_decay, mesh=None, compiler_options=None,
                    progress=False) -> tuple[list[sources.View], dict]:  # fmt: skip
    """Trains the heads on the training split; the image and text views.

    Returns:
      ([image view, text view], info) with info: training curve, logit
      scale, split sizes and zero-shot accuracy on the held-out images.
    """
    n = len(SCENES)
    test = split(data.labels, test_frac)
    img, txt, lab = data.image[~test], data.text[~test], data.labels[~test]
    if data.image_aug is not None:  # the augmented view: more training images
        img = np.concatenate([img, data.image_aug[~test]])
        txt, lab = np.concatenate([txt, txt]), np.concatenate([lab, lab])
    missing = sorted(set(range(n)) - set(lab.tolist()))
    if missing:
        raise ValueError(f"scene classes {[SCENES[c] for c in missing]} have no "
                         "training image; use more images")  # fmt: skip
    mesh = parallel.make_mesh() if mesh is None else mesh
    n_dev = mesh.shape[parallel.DATA_AXIS]
    batch_size = min(batch_size, len(img) // n_dev * n_dev)  # <= the images
    heads = heads_training.fit(key, img, txt, dim=dim, hidden=hidden, steps=steps,
                          batch_size=batch_size, lr=lr,
                          weight_decay=weight_decay, mesh=mesh,
                          compiler_options=compiler_options, progress=progress)  # fmt: skip
    z_train = heads_lib.encode(heads, data.image[~test], "image")
    z_test = heads_lib.encode(heads, data.image[test], "image")
    classifier = heads_lib.prompt_embeddings(heads, data.prompts)
    bank = heads_lib.prompt_embeddings(heads, data.bank)
    image_cent = np.asarray(
        centroids_lib.class_centroids(z_train, data.labels[~test], n)
    )
    names = tuple(data.onto.names[i] for i in data.leaves)
    exclude = tuple((a, _bare(p)) for a, p in zip(names, scene_phrases()))
    common = dict(source="synthaerial", classes="synthaerial", class_names=names,
                  onto=data.onto, leaves=data.leaves, bank_emb=bank,
                  bank_names=data.bank_names, bank_onto=data.bank_onto,
                  exclude=exclude, samples=z_test, labels=data.labels[test],
                  train_samples=z_train, train_labels=data.labels[~test],
                  classifier=classifier)  # fmt: skip
    views = [
        sources.View(name="two-tower image", modality="image", centroids=image_cent,
                     bank_kind="shared", **common),
        sources.View(name="two-tower text", modality="text", centroids=classifier,
                     bank_kind="same", **common),
    ]  # fmt: skip
    pred = heads_lib.zero_shot(z_test, classifier)
    info = {
        "features": data.kind, "num_train": int((~test).sum()),
        "num_test": int(test.sum()), "train_pairs": int(len(img) * txt.shape[1]),
        "loss_curve": heads.losses.tolist(), "logit_scale": heads.logit_scale,
        "zero_shot_accuracy": float(np.mean(pred == data.labels[test])),
        "zero_shot_train_accuracy": float(np.mean(
            heads_lib.zero_shot(z_train, classifier) == data.labels[~test])),
    }  # fmt: skip
    return views, info
