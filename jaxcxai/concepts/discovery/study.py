"""A concept-discovery study of a trained backbone: settings, data, files.

`DiscoveryStudy` holds every setting of the study that `eval.discover` and
the main job's `discovery` stage run (the fields of `configs/discover.py`,
one dataclass per section): NMF (ICE, Zhang et al. 2021) and TopK SAE
dictionaries of several layers x seeds, scored against the concepts that
SynthAerial plants (object masks and background regions). This module builds
the study's images and concept masks, extracts the layers' activations, and
names and writes the files of a study workdir:

  data.npz           images (N, S, S, 3) uint8, masks (N, S, S, c) bool,
                     scene labels (N,), concept names
  dictionaries.npz   per layer and method: components (seeds, k, d), the
                     reconstruction mean (seeds, d) and seed 0's codes
                     (rows, k), rows = N h w in (image, y, x) order
  discover_results.json, discover_report.md and PNG figures (`report`)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxcxai import features
from jaxcxai.data import synthaerial
from jaxcxai.metric_writers import read_npz, write_npz_atomic
from jaxcxai.training.backbone import TrainedBackbone

__all__ = [
    "DATA",
    "DICTIONARIES",
    "METHODS",
    "REPORT",
    "RESULTS",
    "DiscoveryData",
    "DiscoveryStudy",
    "NmfSettings",
    "QualitySettings",
    "ReportSettings",
    "SaeSettings",
    "build_data",
    "check_study",
    "concept_names",
    "extract",
    "image_size",
    "load_npz",
    "save_npz",
]

DATA, DICTIONARIES = "data.npz", "dictionaries.npz"
RESULTS, REPORT = "discover_results.json", "discover_report.md"
METHODS = ("nmf", "sae")
THRESHOLDS = ("area", "quantile")


@dataclasses.dataclass(frozen=True)
class DiscoveryData:
    """SynthAerial scenes the dictionaries are fitted and scored on.

    Attributes:
      num_images: N scenes (unseen seed: the backbone trains on 0 and 10_000).
      image_size: side in pixels; 0 = the backbone's training size.
      seed: SynthAerial seed of the scenes.
      boat_on_water_p: SynthAerial's planted boat/water correlation.
    """

    num_images: int = 200
    image_size: int = 0
    seed: int = 50_000
    boat_on_water_p: float = 0.9


@dataclasses.dataclass(frozen=True)
class NmfSettings:
    """NMF of each layer's spatial activations (ICE's non-negative CAVs)."""

    solver: str = "mu"  # "mu" | "hals" (`nmf.SOLVERS`)
    iters: int = 200
    l1: float = 0.0  # L1 penalty on the codes


@dataclasses.dataclass(frozen=True)
class SaeSettings:
    """TopK sparse autoencoder over the same activation rows."""

    num_latents: int = 10  # dictionary size m
    active: int = 3  # TopK: latents kept per row
    batch_size: int = 256  # rows per Adam step
    learning_rate: float = 5e-3
    steps: int = 600  # at least this many steps: whole passes over the rows


@dataclasses.dataclass(frozen=True)
class QualitySettings:
    """How a component's presence map is scored against concept masks.

    Attributes:
      threshold: "area" (component j is thresholded, per concept c, at the
        value leaving as many pixels as c covers) or "quantile" (NetDissect's
        fixed top quantile of the low-resolution presence values).
      top_quantile: the quantile of "quantile" (NetDissect: 0.005).
      iou_threshold: a concept counts as recovered when some component's
        IoU reaches this.
    """

    threshold: str = "area"
    top_quantile: float = 0.005
    iou_threshold: float = 0.3


@dataclasses.dataclass(frozen=True)
class ReportSettings:
    reference_layers: tuple[str, ...] = ()  # layers with a reference-crop grid
    num_references: int = 6  # crops per component
    crop: float = 0.5  # crop side as a fraction of the image side


@dataclasses.dataclass(frozen=True)
class DiscoveryStudy:
    """Every setting of a discovery study (see `configs/discover.py`).

    Attributes:
      seed: seed of the dictionary inits and the SAE's row order.
      backbone: workdir of the trained backbone.
      layers: spatial activations (N, h, w, C) to factorize.
      methods: subset of `METHODS`.
      num_components: k, NMF rank (SAE size is `sae.num_latents`).
      num_seeds: dictionaries per (layer, method), for seed stability.
      concepts: planted object concepts scored (SynthAerial `CONCEPTS`).
      backgrounds: planted background regions scored (`BACKGROUNDS`).
      batch_size: activation-extraction batch (a multiple of the devices).
    """

    seed: int
    backbone: str
    layers: tuple[str, ...]
    methods: tuple[str, ...]
    num_components: int
    num_seeds: int
    concepts: tuple[str, ...]
    backgrounds: tuple[str, ...]
    batch_size: int
    data: DiscoveryData = DiscoveryData()
    nmf: NmfSettings = NmfSettings()
    sae: SaeSettings = SaeSettings()
    quality: QualitySettings = QualitySettings()
    report: ReportSettings = ReportSettings()


def check_study(st: DiscoveryStudy) -> None:
    """Rejects settings the fits would fail on late, naming the field."""
    bad = [m for m in st.methods if m not in METHODS]
    if bad or not st.methods:
        raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {bad}")
    unknown = [c for c in st.concepts if c not in synthaerial.CONCEPTS]
    unknown += [b for b in st.backgrounds if b not in synthaerial.BACKGROUNDS]
    if unknown:
        raise ValueError(
            f"unknown SynthAerial concepts/backgrounds {unknown}; have "
            f"{synthaerial.CONCEPTS} and {synthaerial.BACKGROUNDS}"
        )
    if not st.concepts and not st.backgrounds:
        raise ValueError("concepts and backgrounds are both empty: nothing to score")
    if st.num_seeds < 2:
        raise ValueError(
            f"num_seeds must be >= 2 for seed stability, got {st.num_seeds}"
        )
    if st.quality.threshold not in THRESHOLDS:
        raise ValueError(
            f"quality.threshold must be one of {THRESHOLDS}, got "
            f"{st.quality.threshold!r}"
        )
    extra = [n for n in st.report.reference_layers if n not in st.layers]
    if extra:
        raise ValueError(f"report.reference_layers {extra} are not in layers")
    if st.sae.active > st.sae.num_latents:
        raise ValueError(
            f"sae.active={st.sae.active} exceeds sae.num_latents={st.sae.num_latents}"
        )


def image_size(st: DiscoveryStudy, net: TrainedBackbone) -> int:
    return int(st.data.image_size or net.image_size)


def concept_names(st: DiscoveryStudy) -> list[str]:
    """Column names of the masks: objects, then backgrounds as "bg:<name>"."""
    return list(st.concepts) + [f"bg:{b}" for b in st.backgrounds]


def build_data(st: DiscoveryStudy, size: int) -> dict[str, np.ndarray]:
    """{"image" (N, S, S, 3) uint8, "masks" (N, S, S, c) bool, "scene" (N,)}.

    Object masks are SynthAerial's class masks; a background's mask is the
    region of that background left visible by the objects (SynthAerial's
    per-pixel background map with object pixels removed).
    """
    d = st.data
    g = synthaerial.generate(
        d.num_images, size=size, seed=d.seed, boat_on_water_p=d.boat_on_water_p
    )
    cls, bg = g["class_mask"], g["background_map"]
    masks = [cls == synthaerial.CONCEPTS.index(c) + 1 for c in st.concepts]
    masks += [(bg == synthaerial.BACKGROUNDS.index(b)) & (cls == 0)
              for b in st.backgrounds]  # fmt: skip
    return {
        "image": g["image"],
        "masks": np.stack(masks, axis=-1),
        "scene": g["scene"].astype(np.int32),
    }


def extract(net: TrainedBackbone, images, st: DiscoveryStudy, progress=False):
    """{layer: (N, h, w, C) float32} activations of `st.layers`, in memory."""
    return features.spatial_maps(
        net.apply, images, st.layers, batch_size=st.batch_size, progress=progress,
        who="discovery",
    )  # fmt: skip


def save_npz(path: str, arrays: dict) -> None:
    """`np.savez_compressed` to a temporary name, then renamed."""
    write_npz_atomic(path, arrays)


def load_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of an `.npz` file of the study, loaded into memory."""
    return read_npz(path, "run `python -m eval.discover`")
