"""An explanation study: its settings, the explained image items, its files.

`ExplainStudy` holds every setting of `configs/explain.py` (one frozen
dataclass per section); `run.explain` runs it. This module builds the
explained image items and names the files a study writes.

Image items: held-out SynthAerial scenes (a seed the backbone never saw),
each paired with an object concept it contains. The explained number is the
backbone's object-presence logit `has_<concept>`, and the ground truth for
localisation is that concept's class mask (`class_mask == concept id`): the
generator planted the objects, so the mask is exactly where the evidence for
the logit lies. An image that contains several concepts can give several
items.

Files of a study workdir:
  attributions.npz  items (image, mask, target, concept index) and, per
                    method, the maps (N, H, W), the second-key maps of the
                    sampled methods and the maps after each randomisation
                    step
  tabular.npz       the explained rows and every (model, method)'s phi
  results.json      every number of the report (written last)
  explain_report.md the report; PNG figures beside it
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxcxai.data import synthaerial
from jaxcxai.metric_writers import read_npz, write_npz_atomic

__all__ = [
    "ATTRIBUTIONS",
    "REPORT",
    "RESULTS",
    "TABULAR",
    "ExplainStudy",
    "ImageData",
    "ImageMethods",
    "ImageMetrics",
    "TabularStudy",
    "build_items",
    "load_npz",
    "save_npz",
]

ATTRIBUTIONS, TABULAR = "attributions.npz", "tabular.npz"
RESULTS, REPORT = "results.json", "explain_report.md"


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Which held-out scenes and concepts are explained.

    Attributes:
      concepts: SynthAerial object concepts; each needs a `has_<concept>`
        output of the backbone.
      per_concept: items per concept (the first scenes of the pool that
        contain at least `min_area` pixels of it).
      pool: scenes generated to choose from.
      seed: SynthAerial seed of the pool (unseen by the backbone).
      image_size: side of the scenes; 0 = the backbone's training size.
      min_area: mask pixels a concept needs in a scene to be explained there.
      boat_on_water_p: SynthAerial's boat/water correlation.
    """

    concepts: tuple[str, ...] = tuple(synthaerial.CONCEPTS)
    per_concept: int = 3
    pool: int = 200
    seed: int = 30_000
    image_size: int = 0
    min_area: int = 16
    boat_on_water_p: float = 0.9


@dataclasses.dataclass(frozen=True)
class ImageMethods:
    """The image explainers and their settings (see `methods`)."""

    names: tuple[str, ...] = (
        "saliency", "gradient_x_input", "integrated_gradients", "smoothgrad",
        "grad_cam", "grad_cam_plus_plus", "occlusion", "rise", "lime",
    )  # fmt: skip
    layer: str = "conv3"  # Grad-CAM / Grad-CAM++ layer
    ig_steps: int = 32
    ig_method: str = "gausslegendre"
    smooth_n: int = 25
    smooth_sigma: float = 0.15  # relative to the input range (Smilkov et al.)
    occlusion_window: int = 8
    occlusion_stride: int = 4
    occlusion_baseline: float = 0.5  # grey, in [0, 1] image units
    rise_masks: int = 500
    rise_grid: int = 8
    rise_p: float = 0.5
    lime_samples: int = 300
    lime_segments: int = 40  # SLIC n_segments
    lime_compactness: float = 10.0


@dataclasses.dataclass(frozen=True)
class ImageMetrics:
    """How the image maps are scored (see `scores`)."""

    deletion_steps: int = 16
    insertion_blur: float = 4.0  # Gaussian sigma (px) of the insertion start
    pointing_tolerance: float = 2.0  # px
    randomization_layers: tuple[str, ...] = ("fc", "conv3", "conv2", "conv1")
    randomization_methods: tuple[str, ...] = (
        "saliency", "gradient_x_input", "integrated_gradients", "smoothgrad",
        "grad_cam", "grad_cam_plus_plus",
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class TabularStudy:
    """The tabular part (see `tabular`).

    Attributes:
      dataset: "wine" or "breast_cancer" (scikit-learn's bundled sets).
      test_fraction: held-out share (explained rows come from it).
      hidden: hidden widths of the scikit-learn MLP (run as a JAX port).
      mlp_iters: its maximum training iterations.
      forest_trees, forest_depth: the random forest (TreeSHAP).
      num_explain: held-out rows explained.
      background: training rows of the KernelSHAP background.
      kernel_shap_nsamples: coalitions per row; 0 = shap's "auto".
      lime_samples, lime_features: LIME's neighbourhood and features kept.
      ig_steps: Integrated Gradients steps (zero baseline = training mean).
      smooth_n, smooth_sigma: SmoothIG copies and absolute noise std.
      removal_ks: top-k features removed for the log-odds shift.
      mlp_methods, forest_methods: the methods run (`tabular.MLP_METHODS`,
        `tabular.FOREST_METHODS`).
      randomization_layers: MLP layers randomised top-down.
      randomization_methods: MLP methods given the randomisation check.
    """

    dataset: str = "wine"
    test_fraction: float = 0.33
    hidden: tuple[int, ...] = (32,)
    mlp_iters: int = 2000
    forest_trees: int = 100
    forest_depth: int = 6
    num_explain: int = 40
    background: int = 50
    kernel_shap_nsamples: int = 0
    lime_samples: int = 5000
    lime_features: int = 10
    ig_steps: int = 50
    smooth_n: int = 50
    smooth_sigma: float = 0.1
    removal_ks: tuple[int, ...] = (1, 2, 3, 4, 5)
    mlp_methods: tuple[str, ...] = (
        "saliency", "gradient_x_input", "integrated_gradients", "smooth_ig",
        "kernel_shap", "lime",
    )  # fmt: skip
    forest_methods: tuple[str, ...] = ("tree_shap", "lime")
    randomization_layers: tuple[str, ...] = ("dense1", "dense0")
    randomization_methods: tuple[str, ...] = (
        "saliency", "gradient_x_input", "integrated_gradients", "kernel_shap",
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ExplainStudy:
    """Every setting of an explanation study (see `configs/explain.py`).

    Attributes:
      seed: seed of the sampled explainers, randomisation draws and splits.
      backbone: workdir of the trained backbone.
      sharded: split the explained images over all devices.
      num_examples: items shown in the attribution grid.
    """

    seed: int
    backbone: str
    sharded: bool = True
    num_examples: int = 4
    data: ImageData = ImageData()
    methods: ImageMethods = ImageMethods()
    metrics: ImageMetrics = ImageMetrics()
    tabular: TabularStudy = TabularStudy()


def build_items(d: ImageData, size: int, outputs) -> dict[str, np.ndarray]:
    """The explained (scene, concept) items of a held-out SynthAerial pool.

    Args:
      d: the data settings.
      size: image side in pixels.
      outputs: the backbone's output names (must hold `has_<concept>`).

    Returns:
      {"image" (N, S, S, 3) uint8, "mask" (N, S, S) bool (the concept's
      class mask), "target" (N,) int32 (index of `has_<concept>`),
      "concept" (N,) int32 (index into `d.concepts`), "scene" (N,) int32
      (index of the scene in the pool)}; concepts come in `d.concepts`
      order, fewer than `per_concept` items where the pool has fewer.

    Raises:
      ValueError: an unknown concept, or one the backbone has no output for,
        or no item at all.
    """
    unknown = [c for c in d.concepts if c not in synthaerial.CONCEPTS]
    if unknown:
        raise ValueError(
            f"unknown concepts {unknown}; SynthAerial has {synthaerial.CONCEPTS}"
        )
    missing = [c for c in d.concepts if f"has_{c}" not in outputs]
    if missing:
        raise ValueError(
            f"the backbone has no has_<concept> output for {missing}; its outputs "
            f"are {list(outputs)}"
        )
    g = synthaerial.generate(
        d.pool, size=size, seed=d.seed, boat_on_water_p=d.boat_on_water_p
    )
    rows, concept = [], []
    for k, c in enumerate(d.concepts):
        mask = g["class_mask"] == synthaerial.CONCEPTS.index(c) + 1
        found = np.flatnonzero(mask.sum((1, 2)) >= d.min_area)[: d.per_concept]
        rows += found.tolist()
        concept += [k] * len(found)
    if not rows:
        raise ValueError(
            f"no scene of the {d.pool} in the pool holds {d.min_area} pixels of "
            f"any of {list(d.concepts)}; raise data.pool or lower data.min_area"
        )
    rows, concept = np.asarray(rows), np.asarray(concept, np.int32)
    ids = np.asarray([synthaerial.CONCEPTS.index(d.concepts[k]) + 1 for k in concept])
    return {
        "image": g["image"][rows],
        "mask": g["class_mask"][rows] == ids[:, None, None],
        "target": np.asarray(
            [outputs.index(f"has_{d.concepts[k]}") for k in concept], np.int32
        ),
        "concept": concept,
        "scene": rows.astype(np.int32),
    }


def save_npz(path: str, arrays: dict) -> None:
    """`np.savez_compressed` to a temporary name, then renamed."""
    write_npz_atomic(path, arrays)


def load_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of an `.npz` file, loaded into memory."""
    return read_npz(path)
