"""A background-bias study of a trained backbone: settings, data, files.

`BackgroundStudy` holds every setting of the study (Schwalbe et al. 2025,
arXiv 2504.08602) that `eval.background` and the main job's `background`
stage run: the fields of `configs/background.py`, one dataclass per section.

Objects come from SynthAerial scenes (an unseen seed) with instance masks:
per concept, the largest object of that class in each scene that has one
(at least `data.min_pixels` pixels), the first `data.num_train` for the
training side, the next `data.num_test` held out. The planted bias: a boat
lies on water with probability 0.9, else on road.

Files of a study workdir:

  background_arrays.npz  "<concept>.<layer>.<method>.<kind>.vector" (C,):
                         the concept vectors (GloCE or Net2Vec) per training
                         randomisation; "<concept>.test.<group>.image"
                         (M, S, S, 3) uint8 and ".mask" (M, S, S) the test
                         views and their targets; "<concept>.<layer>.<group>.
                         iou" (M, K) IoU per view and vector (`vector_order`
                         of the results)
  background_results.json, background_report.md, PNG figures
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxcxai import features
from jaxcxai.concepts.background import filtering, multiview, paste, pools
from jaxcxai.data import synthaerial
from jaxcxai.metric_writers import read_npz, write_npz_atomic
from jaxcxai.training.backbone import TrainedBackbone

__all__ = [
    "ARRAYS",
    "REPORT",
    "RESULTS",
    "FILTERS",
    "SOURCES",
    "VANILLA",
    "BackgroundData",
    "BackgroundStudy",
    "FitSettings",
    "PoolSettings",
    "ViewSettings",
    "build_objects",
    "groups",
    "check_study",
    "extract",
    "image_size",
    "load_npz",
    "save_npz",
]

ARRAYS = "background_arrays.npz"
RESULTS, REPORT = "background_results.json", "background_report.md"
VANILLA = "vanilla"  # the test group of the objects in their own scenes


@dataclasses.dataclass(frozen=True)
class BackgroundData:
    """SynthAerial scenes the objects are cut from."""

    num_scenes: int = 400  # scenes generated (objects are taken from them)
    num_train: int = 24  # training objects per concept
    num_test: int = 16  # held-out objects per concept
    min_pixels: int = 4  # smallest object mask kept (pixels)
    image_size: int = 0  # side in pixels; 0 = the backbone's training size
    seed: int = 80_000  # unseen: the backbone trains on seeds 0 and 10_000
    scenes: tuple[str, ...] = ()  # scene classes drawn (uniformly); () = all


@dataclasses.dataclass(frozen=True)
class ViewSettings:
    """Background-randomised views (`paste.make_views`)."""

    train: int = 4  # n views per training object (full, voronoi)
    test: int = 1  # views per held-out object and test group
    resize: str = "cover"  # background fit: "cover" | "squash"


SOURCES = ("backgrounds", "scenes")
FILTERS = ("none", "presence", "imagenet")
WHEN_SHORT = ("error", "least_likely")


@dataclasses.dataclass(frozen=True)
class PoolSettings:
    """SynthAerial background pools and their filtering.

    `source` "backgrounds": scene layouts without objects
    (`pools.synthaerial_pool`); "scenes": whole scenes, objects included
    (`pools.synthaerial_scene_pool`) for a `scene_fraction` of the
    backgrounds, which may show the concept, as the paper's Places photos do. `filter` (spec concepts.md §7.2) rejects, per
    concept, backgrounds a classifier sees the concept in: "presence" the
    backbone's `has_<concept>` output above `filter_threshold`, "imagenet"
    the packaged MobileNetV2's top-`filter_top_k` against
    `filtering.IMAGENET_CONCEPTS`; `candidates` backgrounds are drawn per one
    kept, and the first kept ones of each group are used. A group with too
    few kept backgrounds is an error, or (`when_short` "least_likely") is
    completed with the rejected ones the classifier finds least
    concept-like, and the report says so.
    """

    train_per_group: int = 4  # training backgrounds per scene group
    test_per_group: int = 4  # test backgrounds per scene group
    seed: int = 1  # training pool seed
    test_seed: int = 2  # test pool seed (disjoint backgrounds)
    groups: tuple[str, ...] = ()  # scene groups; () = all `pools.SCENE_GROUPS`
    source: str = "backgrounds"  # "backgrounds" | "scenes"
    scene_fraction: float = 0.5  # "scenes": share of whole scenes (the rest: none)
    filter: str = "none"  # "none" | "presence" | "imagenet"
    filter_threshold: float = 0.5  # presence probability that rejects
    filter_top_k: int = 5  # ImageNet top-k inspected (the reference's 5)
    candidates: int = 3  # backgrounds drawn per one kept, when filtering
    when_short: str = "error"  # too few kept: "error" | "least_likely" (fill)


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """Multi-view LoCE / Net2Vec fits (`multiview`; defaults: the paper's)."""

    steps: int = 30  # LoCE AdamW steps
    epochs: int = 30  # Net2Vec passes over the views
    batch: int = 512  # Net2Vec views per batch
    cosine_atol: float = 1e-8  # "about 0" of the embedding-shift cosine


@dataclasses.dataclass(frozen=True)
class BackgroundStudy:
    """Every setting of a background-bias study (see `configs/background.py`).

    Attributes:
      seed: seed of the views' backgrounds and the Net2Vec shuffle.
      backbone: workdir of the trained backbone.
      layers: spatial activations (N, h, w, C) studied.
      concepts: object concepts (SynthAerial `CONCEPTS`).
      methods: "loce" / "loce_proper_bce" (GloCE of multi-view LoCEs),
        "net2vec" / "net2vec_proper_bce" (`multiview.METHODS`).
      train_kinds: training randomisations, a subset of `paste.KINDS`
        including "vanilla" (the embedding shift is measured against it).
      batch_size: activation-extraction batch (a multiple of the devices).
    """

    seed: int
    backbone: str
    layers: tuple[str, ...]
    concepts: tuple[str, ...]
    methods: tuple[str, ...]
    train_kinds: tuple[str, ...]
    batch_size: int
    data: BackgroundData = BackgroundData()
    views: ViewSettings = ViewSettings()
    pool: PoolSettings = PoolSettings()
    fit: FitSettings = FitSettings()


def groups(st: BackgroundStudy) -> tuple[str, ...]:
    """The scene groups of the pools (the test groups besides vanilla)."""
    return tuple(st.pool.groups) or pools.SCENE_GROUPS


def check_study(st: BackgroundStudy) -> None:
    """Rejects settings the study would fail on late, naming the field."""
    d, v, p = st.data, st.views, st.pool
    n_train_pool = p.train_per_group * len(groups(st))
    rules = [
        (not st.layers, "layers is empty"),
        (not st.concepts or [c for c in st.concepts if c not in synthaerial.CONCEPTS],
         f"concepts {{}} must be non-empty SynthAerial concepts {synthaerial.CONCEPTS}"),
        (len(set(st.concepts)) != len(st.concepts), "concepts has duplicates"),
        (not st.methods or [m for m in st.methods if m not in multiview.METHODS],
         f"methods {{}} must be non-empty names from {list(multiview.METHODS)}"),
        ([k for k in st.train_kinds if k not in paste.KINDS] or
         "vanilla" not in st.train_kinds,
         f"train_kinds {{}} must be names from {paste.KINDS} including 'vanilla'"),
        ([g for g in p.groups if g not in pools.SCENE_GROUPS],
         f"pool.groups {{}} are not scene groups {pools.SCENE_GROUPS}"),
        ([s for s in d.scenes if s not in synthaerial.SCENES],
         f"data.scenes {{}} are not SynthAerial scenes {synthaerial.SCENES}"),
        (p.source not in SOURCES, f"pool.source must be one of {SOURCES}"),
        (not 0 <= p.scene_fraction <= 1, "pool.scene_fraction must be in [0, 1]"),
        (p.filter not in FILTERS, f"pool.filter must be one of {FILTERS}"),
        (p.when_short not in WHEN_SHORT, f"pool.when_short must be one of {WHEN_SHORT}"),
        (p.filter == "imagenet" and
         [c for c in st.concepts if c not in filtering.IMAGENET_CONCEPTS.values()],
         "pool.filter 'imagenet' has no ImageNet class for concepts {}"),
        (p.filter != "none" and (p.candidates < 1 or not 0 < p.filter_threshold < 1
                                 or p.filter_top_k < 1),
         "pool.candidates and pool.filter_top_k must be >= 1 and "
         "pool.filter_threshold in (0, 1)"),
        (v.resize not in paste.RESIZE_MODES,
         f"views.resize must be one of {paste.RESIZE_MODES}"),
        ("voronoi" in st.train_kinds and n_train_pool < 12,
         f"pool.train_per_group x groups = {n_train_pool} backgrounds; voronoi "
         "views need at least 12 (one per cell)"),
        (d.num_train < 2, f"data.num_train must be >= 2, got {d.num_train}"),
        (v.test < 1 or v.train < 1, "views.train and views.test must be >= 1"),
    ]  # fmt: skip
    problems = [msg.replace("{}", str(bad)) for bad, msg in rules if bad]
    if problems:
        raise ValueError("; ".join(problems))


def image_size(st: BackgroundStudy, net: TrainedBackbone) -> int:
    return int(st.data.image_size or net.image_size)


def build_objects(st: BackgroundStudy, size: int) -> dict:
    """{concept: {"image" (N, S, S, 3) uint8, "mask" (N, S, S) bool (the
    object), "class_mask" (N, S, S) bool (every object of the class),
    "on" (N,) background name under the object}}, train then test rows.

    Raises:
      ValueError: fewer objects than `data.num_train + data.num_test`.
    """
    d = st.data
    g = synthaerial.generate(d.num_scenes, size=size, seed=d.seed,
                             scenes=tuple(d.scenes) or None)  # fmt: skip
    need, out = d.num_train + d.num_test, {}
    for concept in st.concepts:
        cls = synthaerial.CONCEPTS.index(concept) + 1
        rows, masks, on = [], [], []
        for i in range(len(g["image"])):
            best, area = None, d.min_pixels - 1
            for j in np.flatnonzero(g["obj_class"][i] == cls):
                m = g["instance_mask"][i] == j + 1
                if m.sum() > area:
                    best, area = (j, m), int(m.sum())
            if best is not None:
                rows.append(i)
                masks.append(best[1])
                on.append(synthaerial.BACKGROUNDS[int(g["obj_background"][i, best[0]])])
            if len(rows) == need:
                break
        if len(rows) < need:
            raise ValueError(
                f"{len(rows)} {concept} objects of >= {d.min_pixels} px in "
                f"data.num_scenes={d.num_scenes} scenes, need data.num_train + "
                f"data.num_test = {need}; raise data.num_scenes or add scenes "
                "with that object to data.scenes"
            )
        rows = np.asarray(rows)
        out[concept] = {"image": g["image"][rows], "mask": np.stack(masks),
                        "class_mask": g["class_mask"][rows] == cls,
                        "on": np.asarray(on)}  # fmt: skip
    return out


def extract(net: TrainedBackbone, images, st: BackgroundStudy) -> dict:
    """{layer: (N, C, h, w) float32} activations (channels first, as the
    multi-view fits and `bias.view_ious` take them)."""
    maps = features.spatial_maps(
        net.apply, images, st.layers, batch_size=st.batch_size,
        who="the background study",
    )  # fmt: skip
    return {name: a.transpose(0, 3, 1, 2) for name, a in maps.items()}


def save_npz(path: str, arrays: dict) -> None:
    """`np.savez_compressed` to a temporary name, then renamed."""
    write_npz_atomic(path, arrays)


def load_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of an `.npz` file of the study, loaded into memory."""
    return read_npz(path, "run `python -m eval.background`")
