"""The semantic-hierarchies study: settings, their checks, file names.

`HierarchyStudy` holds every setting of the study (Schwalbe et al. 2026,
arXiv:2603.26798) that `eval.hierarchy` and the main job's `hierarchy`
stage run: the fields of `configs/hierarchy.py`, one dataclass per section.
Per source and modality (`sources.View`) the study extracts a named tree,
verifies it against the ontology and aligns the embedding space
(`run.hierarchy`).

Files of a study workdir:

  hierarchy_arrays.npz   "<view>.centroids" (n, D) class centroids,
                         "<view>.parent" (M,) extracted tree,
                         "<view>.linkage" (n - 1, 4) scipy linkage,
                         "<view>.leaves" (n,) ontology node of each class,
                         "<view>.onto_parent" (M',) the ontology; views
                         with images also "<view>.samples" (N, D) held-out
                         image embeddings, ".labels" (N,), ".classifier"
                         (n, D) zero-shot class embeddings; <view> is
                         "<source>.<name as a slug>" ("synthaerial.two_tower_image")
  hierarchy_results.json, hierarchy_report.md, PNG figures
"""

from __future__ import annotations

import dataclasses
import os

from jaxcxai.hierarchy import aerial, sources
from jaxcxai.hierarchy import tree as tree_lib
from jaxcxai.metric_writers import read_npz, write_npz_atomic

__all__ = [
    "ARRAYS",
    "REPORT",
    "RESULTS",
    "SOURCES",
    "AerialSettings",
    "AlignSettings",
    "ClipSettings",
    "HeadSettings",
    "HierarchyStudy",
    "ImageNetSettings",
    "VerifySettings",
    "check_study",
    "load_npz",
    "save_npz",
]

ARRAYS = "hierarchy_arrays.npz"
RESULTS, REPORT = "hierarchy_results.json", "hierarchy_report.md"
SOURCES = ("synthaerial", "imagenet", "clip")
ALIGN_KINDS = ("linear", "mlp")
DISTANCES = ("lca", "path")


@dataclasses.dataclass(frozen=True)
class AerialSettings:
    """SynthAerial features of the two-tower model (`aerial`)."""

    features: str = "packaged"  # "packaged" (MobileNetV2 + MiniLM) | "synthetic"
    num_images: int = 1000  # scenes 0..num_images-1
    image_size: int = 128  # generated side (px)
    seed: int = 0  # SynthAerial seed
    crop: float = 200 / 256  # centre crop of the image features
    image_aug: bool = True  # augmented view as extra training images
    cache_dir: str = ""  # "": the hashing stage's feature cache
    batch_size: int = 32  # images per MobileNetV2 call
    test_frac: float = 0.3  # held-out images per class (zero-shot, UAES)
    synthetic_noise: float = 0.5  # noise of the "synthetic" stand-ins


@dataclasses.dataclass(frozen=True)
class HeadSettings:
    """The two-tower projection heads (`heads_training.fit`)."""

    dim: int = 128
    hidden: int = 0
    steps: int = 300
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    fast_compile: bool = False


@dataclasses.dataclass(frozen=True)
class ImageNetSettings:
    """ImageNet classes against WordNet (`sources.imagenet_views`)."""

    num_classes: int = 0  # evenly spaced classes; 0 = all 1000
    templates: tuple[str, ...] = sources.IMAGENET_TEMPLATES[:1]
    classifiers: tuple[str, ...] = tuple(sources.CLASSIFIER_HEADS)
    text: bool = True  # the MiniLM text view
    wordnet_dir: str = ""


@dataclasses.dataclass(frozen=True)
class ClipSettings:
    """An imported OpenCLIP checkpoint (`clip_source`); "" skips it."""

    checkpoint: str = ""
    config: str = ""  # open_clip config name or JSON file; "": inferred
    quick_gelu: bool = True
    vocab: str = ""  # CLIP BPE merges file; "": open-clip-torch's
    num_images: int = 130
    image_size: int = 64
    batch_size: int = 16


@dataclasses.dataclass(frozen=True)
class VerifySettings:
    """Extraction and verification of each tree."""

    linkage: str = "average"
    temperature: float = 0.01
    target_coverage: float = 0.9
    triplet_max_n: int = 0  # 0: exact triplet counts
    ancestor_constraint: bool = False
    onto_distance: str = "path"
    worst: int = 10


@dataclasses.dataclass(frozen=True)
class AlignSettings:
    """Ontology-guided alignment and its lambda sweep (`align`)."""

    kind: str = "mlp"
    hidden: int = 64
    steps: int = 200
    lr: float = 1e-2
    lams: tuple[float, ...] = (3.0, 1.0, 0.3, 0.1, 0.0)
    n_neighbors: int = 5
    min_dist: float = 0.1
    beta: float = 0.0
    target: str = "lca"
    max_classes: int = 200  # classes aligned per view (evenly spaced); 0: all
    zero_shot_weight: float = 0.0


@dataclasses.dataclass(frozen=True)
class HierarchyStudy:
    """Every setting of a semantic-hierarchies study (`configs/hierarchy.py`).

    Attributes:
      seed: seed of the heads, the synthetic features and the alignment.
      sources: embedding sources run, a subset of `SOURCES` ("clip" is
        skipped, and says so, while `clip.checkpoint` is "").
    """

    seed: int
    sources: tuple[str, ...]
    synthaerial: AerialSettings = AerialSettings()
    heads: HeadSettings = HeadSettings()
    imagenet: ImageNetSettings = ImageNetSettings()
    clip: ClipSettings = ClipSettings()
    verify: VerifySettings = VerifySettings()
    align: AlignSettings = AlignSettings()


def check_study(st: HierarchyStudy) -> None:
    """Rejects settings the study would fail on late, naming the field."""
    a, i, c, v, al = st.synthaerial, st.imagenet, st.clip, st.verify, st.align
    bad_templates = [t for t in i.templates if "{}" not in t]
    rules = [
        (not st.sources or [s for s in st.sources if s not in SOURCES],
         f"sources {{}} must be non-empty names from {SOURCES}"),
        (len(set(st.sources)) != len(st.sources), "sources has duplicates"),
        (a.features not in aerial.FEATURES,
         f"synthaerial.features must be one of {aerial.FEATURES}"),
        (not 0.0 < a.test_frac < 1.0, "synthaerial.test_frac must lie in (0, 1)"),
        (not i.templates or bad_templates,
         "imagenet.templates {} must be non-empty, each holding '{}'"),
        ([k for k in i.classifiers if k not in sources.CLASSIFIER_HEADS],
         f"imagenet.classifiers {{}} must be names from {tuple(sources.CLASSIFIER_HEADS)}"),
        (i.wordnet_dir and not os.path.isfile(os.path.join(i.wordnet_dir, "data.noun")),
         f"imagenet.wordnet_dir {i.wordnet_dir!r} holds no WordNet data.noun"),
        (c.checkpoint and not os.path.isfile(c.checkpoint),
         f"clip.checkpoint {c.checkpoint!r} is not a file"),
        (v.linkage not in tree_lib.LINKAGES,
         f"verify.linkage must be one of {sorted(tree_lib.LINKAGES)}"),
        (not 0.0 < v.target_coverage <= 1.0,
         "verify.target_coverage must lie in (0, 1]"),
        (v.triplet_max_n and v.triplet_max_n < 3, "verify.triplet_max_n must be 0 or >= 3"),
        (v.onto_distance not in DISTANCES, f"verify.onto_distance must be one of {DISTANCES}"),
        (al.kind not in ALIGN_KINDS, f"align.kind must be one of {ALIGN_KINDS}"),
        (al.target not in DISTANCES, f"align.target must be one of {DISTANCES}"),
        (not al.lams or [x for x in al.lams if not x >= 0],
         "align.lams {} must be non-empty and >= 0"),
        (not 0.0 <= al.beta <= 1.0, "align.beta must lie in [0, 1]"),
        (al.max_classes and al.max_classes < al.n_neighbors,
         "align.max_classes must be 0 or >= align.n_neighbors"),
    ]  # fmt: skip
    problems = [msg.replace("{}", str(bad), 1) if "{}" in msg else msg
                for bad, msg in rules if bad]  # fmt: skip
    if problems:
        raise ValueError("; ".join(problems))


def save_npz(path: str, arrays: dict) -> None:
    """`np.savez_compressed` to a temporary name, then renamed."""
    write_npz_atomic(path, arrays)


def load_npz(path: str) -> dict:
    """Every array of the study's `.npz` file, loaded into memory."""
    return read_npz(path, "run `python -m eval.hierarchy`")
