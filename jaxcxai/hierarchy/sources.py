"""Embedding sources of the semantic-hierarchies study: one `View` per
(source, modality), with its ontology and concept bank.

Schwalbe et al. 2026 (arXiv:2603.26798) compare image- and text-encoder
hierarchies of VLMs against human ontologies. A `View` holds what the study
needs of one modality of one source: class centroids (n, D), the ontology and
its leaves, a concept bank in the same space and, where images exist,
held-out image embeddings for zero-shot and UAES inference.

Sources:
  synthaerial  the project's two-tower model on SynthAerial (`aerial`):
               image view = per-class centroids of image embeddings, text
               view = prompt-template-averaged class-name embeddings;
               ontology: the SynthAerial scene taxonomy
  imagenet     (`imagenet_views`) real encoders on the 1000 ImageNet classes
               against WordNet: MiniLM embeddings of the class names with
               prompt templates (text), and the packaged ImageNet
               classifiers' class weight vectors (MobileNetV2,
               EfficientNet-Lite0) as class centroids (an image-side view)
  clip         an imported OpenCLIP checkpoint (`clip_source`), optional

Concept banks: the ontology's internal node names, embedded like the class
names (`text_bank`); for the classifier views, which have no text space,
each ontology node's mean class weight vector (`centroid_bank`,
Reconstruction).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import numpy as np

from jaxcxai.checks import check_finite
from jaxcxai.hierarchy import centroids as centroids_lib
from jaxcxai.hierarchy import ontology as onto_lib
from jaxcxai.hierarchy import trees

__all__ = [
    "BANK_KINDS",
    "CLASSIFIER_HEADS",
    "IMAGENET_TEMPLATES",
    "View",
    "bank_names",
    "centroid_bank",
    "ensemble",
    "imagenet_views",
    "minilm",
    "normalize",
    "text_bank",
    "with_article",
]

# How a view's bank moves when the view is aligned: "same" (the bank lives
# in the view's own space: transformed with it), "shared" (the other tower
# of a two-tower space: left as is), "centroid" (recomputed from the
# aligned centroids).
BANK_KINDS = ("same", "shared", "centroid")
# Packaged ImageNet classifiers -> their final Dense layer (1280 -> 1000).
CLASSIFIER_HEADS = {"mobilenet_v2": "classifier.1", "efficientnet_lite0": "_fc"}
IMAGENET_TEMPLATES = ("a photo of a {}.", "a blurry photo of the {}.",
                      "a close-up photo of a {}.", "a drawing of a {}.",
                      "a photo of the small {}.")  # fmt: skip


@dataclasses.dataclass(frozen=True, eq=False)
class View:
    """One modality of one source, ready to extract, verify and align.

    Attributes:
      name: label in tables and figures ("two-tower image").
      source: "synthaerial" | "imagenet" | "clip".
      classes: the class set, "synthaerial" (13 scenes) or "imagenet".
      modality: "image" or "text".
      class_names: (n,) names. centroids: (n, D) unit class centroids.
      onto: the ontology; leaves: (n,) its node of each class.
      bank_emb: (B, D) concept bank; bank_names: (B,); bank_onto: (B,)
        ontology node of each entry; bank_kind: one of `BANK_KINDS`.
      exclude: (n,) names (or synonym tuples) a node may not be named after.
      samples, labels: (N, D) held-out image embeddings and (N,) classes,
        or None (no images: no zero-shot or UAES).
      train_samples, train_labels: the training images (calibration of h*).
      classifier: (n, D) zero-shot class embeddings (text), or None.
    """

    name: str
    source: str
    classes: str
    modality: str
    class_names: tuple[str, ...]
    centroids: np.ndarray
    onto: onto_lib.Ontology
    leaves: np.ndarray
    bank_emb: np.ndarray
    bank_names: tuple[str, ...]
    bank_onto: np.ndarray
    bank_kind: str
    exclude: tuple
    samples: np.ndarray | None = None
    labels: np.ndarray | None = None
    train_samples: np.ndarray | None = None
    train_labels: np.ndarray | None = None
    classifier: np.ndarray | None = None

    def __post_init__(self):
        n, d = np.shape(self.centroids)
        if len(self.class_names) != n or np.shape(self.leaves) != (n,):
            raise ValueError(f"view {self.name!r}: {n} centroids, "
                             f"{len(self.class_names)} names, leaves {np.shape(self.leaves)}")  # fmt: skip
        if np.shape(self.bank_emb)[1:] != (d,) or len(self.bank_names) != len(
            self.bank_emb
        ):
            raise ValueError(f"view {self.name!r}: bank {np.shape(self.bank_emb)} "
                             f"for centroids of width {d}")  # fmt: skip
        if self.bank_kind not in BANK_KINDS or self.modality not in ("image", "text"):
            raise ValueError(f"view {self.name!r}: bank_kind {self.bank_kind!r} / "
                             f"modality {self.modality!r}")  # fmt: skip
        check_finite({f"{self.name} centroids": self.centroids,
                      f"{self.name} bank": self.bank_emb})  # fmt: skip

    @property
    def has_images(self) -> bool:
        return self.samples is not None and self.classifier is not None


def normalize(x) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32)."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def with_article(name: str) -> str:
    """'a forest', 'an airport' (prompt templates want the article)."""
    return ("an " if name[:1].lower() in "aeiou" else "a ") + name


def ensemble(encode: Callable, names: Sequence[str], templates: Sequence[str]):
    """(n, D) prompt-ensembled embeddings: each name in every template,
    encoded in one batched call, then `centroids.text_centroids`."""
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(
            f"templates must be non-empty and hold '{{}}', got {templates}"
        )
    texts = [t.format(n) for n in names for t in templates]
    emb = np.asarray(encode(texts), np.float32)
    emb = emb.reshape(len(names), len(templates), -1)
    return np.asarray(centroids_lib.text_centroids(emb))


def bank_names(onto: onto_lib.Ontology) -> tuple[tuple[str, ...], np.ndarray]:
    """Names and ontology nodes of the bank: every internal node, each name
    once (the shallowest node of a repeated name, nodes being root first)."""
    leaf = np.zeros(len(onto), bool)
    leaf[onto_lib.leaf_nodes(onto)] = True
    names, nodes = {}, []
    for i in np.flatnonzero(~leaf):
        key = onto.names[i].lower()
        if key not in names:
            names[key] = onto.names[i]
            nodes.append(i)
    return tuple(names.values()), np.asarray(nodes, np.int32)


def text_bank(onto, embed: Callable) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """(bank_emb (B, D), names, onto nodes) with `embed(names) -> (B, D)`."""
    names, nodes = bank_names(onto)
    return normalize(embed(list(names))), names, nodes


def centroid_bank(centroids, onto, leaves, nodes=None):
    """Bank of an image-side view without a text space.

    Reconstruction: the paper names nodes by text embeddings; a classifier's
    weight space has none, so each internal ontology node is represented by
    the normalised mean of the centroids of the classes below it.

    Args:
      centroids: (n, D) class centroids; leaves: (n,) their ontology nodes.
      nodes: (B,) ontology nodes of the bank (default: `bank_names(onto)`).

    Returns:
      (bank_emb (B, D), names, onto nodes), as `text_bank`.
    """
    if nodes is None:
        names, nodes = bank_names(onto)
    else:
        nodes = np.asarray(nodes, np.int32)
        names = tuple(onto.names[i] for i in nodes)
    below = trees.is_ancestor(onto.parent, nodes[:, None], np.asarray(leaves)[None])
    return normalize(below.astype(np.float32) @ normalize(centroids)), names, nodes


@functools.cache
def minilm(batch_size: int = 128) -> Callable[[list[str]], np.ndarray]:
    """The packaged all-MiniLM-L6-v2 as `texts -> (N, 384)` (loaded once:
    jitted, shape-bucketed batches, `jaxcxai.models.minilm.TextEncoder`)."""
    from jaxcxai.models.minilm import TextEncoder

    return TextEncoder(batch_size=batch_size).encode


def _class_subset(num_classes: int) -> np.ndarray:
    """Evenly spaced ImageNet indices (0 or >= 1000: all), so a subset still
    spans the WordNet branches (the classes are sorted by WordNet id)."""
    if num_classes <= 0 or num_classes >= 1000:
        return np.arange(1000)
    return np.unique(np.linspace(0, 999, num_classes).round().astype(int))


def classifier_weights(name: str) -> np.ndarray:
    """(1000, 1280) class weight vectors of a packaged ImageNet classifier."""
    from jaxcxai.models.pretrained import load_pretrained

    if name not in CLASSIFIER_HEADS:
        raise ValueError(
            f"unknown classifier {name!r}; valid: {sorted(CLASSIFIER_HEADS)}"
        )
    _, variables = load_pretrained(name)
    return np.asarray(variables["params"][CLASSIFIER_HEADS[name]]["kernel"]).T


def imagenet_views(*, num_classes=0, templates=IMAGENET_TEMPLATES,
                   classifiers=tuple(CLASSIFIER_HEADS), wordnet_dir="",
                   text=True, encode=None) -> list[View]:  # fmt: skip
    """ImageNet classes against WordNet: MiniLM text and classifier views.

    Args:
      num_classes: classes used (evenly spaced; 0 = all 1000).
      templates: prompt templates of the text view ("a photo of a {}.").
      classifiers: names of `CLASSIFIER_HEADS` giving image-side views.
      wordnet_dir: WordNet 3.0 folder ("" = `wordnet.resolve_dir` default).
      text: build the MiniLM text view. encode: `texts -> (N, D)` (default
        `minilm()`).
    """
    from jaxcxai.hierarchy import wordnet

    full, full_leaves = wordnet.wordnet_imagenet(wordnet_dir or None)
    pick = _class_subset(num_classes)
    onto, leaves = onto_lib.restrict(full, [full.ids[i] for i in full_leaves[pick]])
    names = tuple(onto.names[i] for i in leaves)
    exclude = tuple((n, onto.names[i]) for n, i in zip(names, leaves))
    common = dict(source="imagenet", classes="imagenet", class_names=names,
                  onto=onto, leaves=leaves, exclude=exclude)  # fmt: skip
    views = []
    if text:
        bnames, bnodes = bank_names(onto)
        # One encode call for classes and bank: fewer padded batch shapes.
        emb = ensemble(encode or minilm(), [*names, *bnames], templates)
        views.append(View(name="MiniLM text", modality="text",
                          centroids=emb[: len(names)], bank_emb=emb[len(names) :],
                          bank_names=bnames, bank_onto=bnodes, bank_kind="same",
                          **common))  # fmt: skip
    for clf in classifiers:
        cent = normalize(classifier_weights(clf)[pick])
        bank, bnames, bnodes = centroid_bank(cent, onto, leaves)
        views.append(View(name=f"{clf} classifier", modality="image",
                          centroids=cent, bank_emb=bank, bank_names=bnames,
                          bank_onto=bnodes, bank_kind="centroid", **common))  # fmt: skip
    return views
