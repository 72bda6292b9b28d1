"""A background-bias study of a trained backbone: settings, data, files.

`BackgroundStudy` holds every setting of the study (Gesina et al. 2025,
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
from jaxcxai.concepts.background import multiview, paste, pools
from jaxcxai.data import synthaerial
from jaxcxai.metric_writers import read_npz, write_npz_atomic
from jaxcxai.training.backbone import TrainedBackbone

__all__ = [
    "ARRAYS",
    "REPORT",
    "RESULTS",
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


@dataclasses.dataclass(frozen=True)
class PoolSettings:
    """SynthAerial background pools (`pools.synthaerial_pool`)."""

    train_per_group: int = 4  # training backgrounds per scene group
    test_per_group: int = 4  # test backgrounds per scene group
    seed: int = 1  # training pool seed
    test_seed: int = 2  # test pool seed (disjoint backgrounds)
    groups: tuple[str, ...] = ()  # scene groups; () = all `pools.SCENE_GROUPS`


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
