"""A probe study of a trained backbone: its settings, data and stored arrays.

`ProbeStudy` holds every setting of a Net2Vec + TCAV study (the fields of
`configs/probes.py`, one dataclass per section); `run.fit` fits it and
`evaluation.evaluate` evaluates it. This module builds the study's data
(SynthAerial scenes of unseen seeds, or COCO / VOC annotations), names the
files a study writes, and reads them back.

Files of a study workdir:
  fingerprint.json  the backbone's weights digest and the study's settings,
                written first; a rerun with another backbone or other
                settings stops with `FingerprintError` naming the field
  data.npz      held-out images and per-concept masks
  features/     cached activations of the training and held-out splits
  net2vec.npz   per layer: probe weights (K, R, C), biases (K, R), thresholds
  tcav.npz      per layer: concept and random CAVs, the example sets
  probes.json   the run summary (sizes, targets, timings); written last
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from jaxcxai import checks, features, parallel
from jaxcxai.concepts.probes import pipeline
from jaxcxai.data import synthaerial
from jaxcxai.metric_writers import read_npz, write_npz_atomic
from jaxcxai.training.backbone import TrainedBackbone

__all__ = [
    "DATA",
    "FINGERPRINT",
    "META",
    "NET2VEC",
    "SOURCES",
    "TCAV",
    "CocoSource",
    "Net2VecSettings",
    "ProbeData",
    "ProbeStudy",
    "ReportSettings",
    "TcavSettings",
    "VocSource",
    "build_data",
    "check_workdir",
    "class_images",
    "extract",
    "fingerprint_fields",
    "image_size",
    "load_npz",
    "save_npz",
    "tcav_targets",
]

DATA, NET2VEC, TCAV, META = "data.npz", "net2vec.npz", "tcav.npz", "probes.json"
FINGERPRINT = "fingerprint.json"
SOURCES = ("synthaerial", "coco", "voc")


@dataclasses.dataclass(frozen=True)
class CocoSource:
    annotations: str = ""  # instances_*.json
    images: str = ""  # folder of the JSON's file_names
    max_per_concept: int = 500  # 0 keeps all
    mask_variant: str = "exact"  # "exact" | "rectangle" | "ellipse"


@dataclasses.dataclass(frozen=True)
class VocSource:
    root: str = ""  # VOC2012 folder
    split: str = "train"


@dataclasses.dataclass(frozen=True)
class ProbeData:
    """Where the probe images and masks come from.

    Attributes:
      source: one of `SOURCES`.
      image_size: side of the images; 0 = the backbone's training size.
      num_train, num_test: SynthAerial scenes per split.
      seed, test_seed: SynthAerial seeds (unseen by the backbone).
      boat_on_water_p: SynthAerial's boat/water correlation.
      test_fraction: held-out share of real (COCO / VOC) images.
    """

    source: str = "synthaerial"
    image_size: int = 0
    num_train: int = 600
    num_test: int = 200
    seed: int = 20_000
    test_seed: int = 30_000
    boat_on_water_p: float = 0.9
    test_fraction: float = 0.25
    coco: CocoSource = CocoSource()
    voc: VocSource = VocSource()


@dataclasses.dataclass(frozen=True)
class Net2VecSettings:
    objective: str = "balanced_bce"  # a key of net2vec.OBJECTIVES
    pos_weight: float = 0.0  # 0: the objective's default
    optimizer: str = "adamw"  # "adamw" | "sgd"
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = 20
    runs: int = 3  # R independently initialised probes per (concept, layer)
    init: str = "uniform"
    threshold_quantile: float = 0.0  # NetDissect top quantile; 0: off


@dataclasses.dataclass(frozen=True)
class TcavSettings:
    targets: tuple[str, ...] = ()  # "concept:output name" entries
    method: str = "logistic"  # "logistic" | "hinge" | "sgd" | "mean_diff"
    alpha: float = 0.01  # L2 strength of the CAV classifier
    pool: str = "flatten"  # "flatten" (3D-CAV) | "mean" (1D-CAV)
    num_random: int = 10  # R random sets (>= 3)
    num_concept_images: int = 40
    num_random_images: int = 40
    num_class_images: int = 50  # per target scene
    class_seed: int = 40_000
    significance: float = 0.05  # family-wise level (Bonferroni)


@dataclasses.dataclass(frozen=True)
class ReportSettings:
    num_examples: int = 3  # images per concept in the mask figure


@dataclasses.dataclass(frozen=True)
class ProbeStudy:
    """Every setting of a Net2Vec + TCAV study (see `configs/probes.py`).

    Attributes:
      seed: seed of splits, probe inits, minibatch orders and TCAV sets.
      backbone: workdir of the trained backbone.
      layers: activation names probed.
      concepts: concept names (SynthAerial concepts or COCO/VOC classes).
      batch_size: activation-extraction batch (a multiple of the devices).
    """

    seed: int
    backbone: str
    layers: tuple[str, ...]
    concepts: tuple[str, ...]
    batch_size: int
    data: ProbeData = ProbeData()
    net2vec: Net2VecSettings = Net2VecSettings()
    tcav: TcavSettings = TcavSettings()
    report: ReportSettings = ReportSettings()


def image_size(study: ProbeStudy, net: TrainedBackbone) -> int:
    return int(study.data.image_size or net.image_size)


def _split(data: dict, test_fraction: float, seed: int):
    n = len(data["image"])
    if n < 2:
        raise ValueError(f"need at least 2 annotated images for a split, got {n}")
    n_test = min(max(1, round(test_fraction * n)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    pick = lambda idx: {k: v[np.sort(idx)] for k, v in data.items()}  # noqa: E731
    return pick(perm[n_test:]), pick(perm[:n_test])


def build_data(study: ProbeStudy, size: int) -> tuple[dict, dict]:
    """(train, test) splits: {"image" (N, S, S, 3) uint8, "masks" (N, K, S, S)}.

    SynthAerial splits also carry "scene" (N,).
    """
    d, concepts = study.data, list(study.concepts)
    if d.source == "synthaerial":
        unknown = [c for c in concepts if c not in synthaerial.CONCEPTS]
        if unknown:
            raise ValueError(
                f"unknown SynthAerial concepts {unknown}; have {synthaerial.CONCEPTS}"
            )
        ids = [synthaerial.CONCEPTS.index(c) + 1 for c in concepts]

        def split(num, seed):
            g = synthaerial.generate(num, size=size, seed=seed,
                                     boat_on_water_p=d.boat_on_water_p)  # fmt: skip
            masks = pipeline.concept_masks(g["class_mask"], ids)
            return {"image": g["image"], "masks": masks, "scene": g["scene"]}

        return split(d.num_train, d.seed), split(d.num_test, d.test_seed)
    if d.source == "coco":
        data = pipeline.coco_probe_data(
            d.coco.annotations, d.coco.images, concepts, size,
            max_per_concept=d.coco.max_per_concept or None,
            variant=d.coco.mask_variant,
        )  # fmt: skip
    elif d.source == "voc":
        data = pipeline.voc_probe_data(d.voc.root, concepts, size, split=d.voc.split)
    else:
        raise ValueError(f"unknown data.source {d.source!r}; use one of {SOURCES}")
    return _split(data, d.test_fraction, study.seed)


def tcav_targets(study: ProbeStudy, outputs) -> dict[str, tuple[str, int]]:
    """{concept: (target name, logit index)} from "concept:target" entries."""
    out = {}
    for entry in study.tcav.targets:
        concept, sep, target = entry.partition(":")
        if not sep:
            raise ValueError(f"tcav.targets entry {entry!r} is not 'concept:target'")
        if concept not in study.concepts:
            continue  # a concept this run does not probe
        if target in outputs:
            out[concept] = (target, outputs.index(target))
        elif target.isdigit() and int(target) < len(outputs):
            out[concept] = (target, int(target))
        else:
            raise ValueError(
                f"TCAV target {target!r} of {concept!r} is not an output of the "
                f"backbone; have {list(outputs)}"
            )
    return out


def class_images(study: ProbeStudy, target: str, size: int, test_images):
    """Images of a TCAV target class: generated scenes of that class on
    SynthAerial, otherwise all held-out images."""
    if study.data.source == "synthaerial" and target in synthaerial.SCENES:
        g = synthaerial.generate(
            study.tcav.num_class_images, size=size,
            seed=study.tcav.class_seed + synthaerial.SCENES.index(target),
            boat_on_water_p=study.data.boat_on_water_p, scenes=(target,),
        )  # fmt: skip
        return g["image"]
    return np.asarray(test_images)


def fingerprint_fields(study: ProbeStudy, net: TrainedBackbone) -> dict:
    """What a study's fitted files depend on: the backbone's weights and meta
    and the settings `run.fit` uses (not the backbone's path, the report's
    settings, or TCAV's evaluation-only class images and significance)."""
    settings = {f.name: getattr(study, f.name) for f in dataclasses.fields(study)}
    del settings["backbone"], settings["report"]
    eval_only = ("num_class_images", "class_seed", "significance")
    settings["tcav"] = {
        k: v for k, v in dataclasses.asdict(study.tcav).items() if k not in eval_only
    }
    return {"backbone": features.backbone_fingerprint(net), "settings": settings}


def check_workdir(study: ProbeStudy, workdir: str, net: TrainedBackbone) -> None:
    """Raises `FingerprintError` unless `workdir` was fitted by `run.fit` with
    this backbone and these settings (call it before evaluating a workdir)."""
    checks.resume_check(
        os.path.join(workdir, FINGERPRINT), fingerprint_fields(study, net),
        what=f"probe study {workdir}", fresh=f"delete {workdir} and fit it again",
        read_only=True,
    )  # fmt: skip


def extract(net: TrainedBackbone, images, study: ProbeStudy, cache_dir=None,
            progress=True, fingerprint=None):  # fmt: skip
    """Activations of `study.layers` (float16 cache, or float32 in memory);
    a cache records `fingerprint` (see `features.extract`)."""
    return features.extract(
        net.apply, images, list(study.layers), batch_size=study.batch_size,
        mesh=parallel.make_mesh(), dtype=np.float16 if cache_dir else np.float32,
        pool=False, cache_dir=cache_dir, fingerprint=fingerprint, progress=progress,
    )  # fmt: skip


def save_npz(path: str, arrays: dict) -> None:
    """`np.savez_compressed` to a temporary name, then renamed."""
    write_npz_atomic(path, arrays)


def load_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of an `.npz` file of the study, loaded into memory."""
    return read_npz(path, "fit the probes first")
