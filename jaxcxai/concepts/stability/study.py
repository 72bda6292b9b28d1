"""A concept-stability study of a trained backbone: settings, data, files.

`StabilityStudy` holds every setting of the study (Mikriukov et al. 2023,
arXiv 2304.14864) that `eval.stability` and the main job's `stability`
stage run: the fields of `configs/stability.py`, one dataclass per section.

Concepts come at three abstraction levels, all labelled per image from
SynthAerial's planted ground truth (positives: scenes where the concept is
present; negatives: scenes where it is absent):

  object      a planted object class ("car"): some object of that class
  subconcept  a planted sub-concept ("car:red"): some object of that class
              with that sub-concept (SynthAerial `SUBCONCEPTS`)
  scene       a scene class ("forest"): the scene's label

Files of a study workdir:

  data.npz   image (N, S, S, 3) uint8 (the pool, then the held-out scenes),
             labels (N, K) bool, scene (N,), concepts and levels (K,),
             heldout_rows (K, 2, M)
  cavs.npz   "<concept>.n<n>.pos_rows" / ".neg_rows" (R, n): each run's pool
             rows; "<concept>.<layer>.<dim>.n<n>.weight" (R, D) and ".bias"
             (R,) for views of D <= `run.SAVE_WIDTH`; "attributed.<layer>.
             <dim>" (K', D): the unit CAVs whose attribution is measured
  stability_results.json, stability_report.md, PNG figures
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxcxai import features
from jaxcxai.concepts.stability.representations import DIMS
from jaxcxai.data import synthaerial
from jaxcxai.metric_writers import read_npz, write_npz_atomic
from jaxcxai.training.backbone import TrainedBackbone

__all__ = [
    "CAVS",
    "DATA",
    "REPORT",
    "RESULTS",
    "AttributionSettings",
    "IceSettings",
    "RetrievalSettings",
    "StabilityData",
    "StabilityStudy",
    "build_data",
    "check_study",
    "concept_table",
    "draw_cells",
    "extract",
    "heldout_rows",
    "image_size",
    "load_npz",
    "save_npz",
]

DATA, CAVS = "data.npz", "cavs.npz"
RESULTS, REPORT = "stability_results.json", "stability_report.md"
METRICS = ("accuracy", "auc")
METHODS = ("logistic", "hinge", "sgd", "mean_diff")  # `probes.cavs.METHODS`
BATCH_MODES = ("sum", "vmap")


@dataclasses.dataclass(frozen=True)
class StabilityData:
    """SynthAerial scenes: a pool (the runs' subsets) and a held-out split."""

    num_train: int = 600  # pool scenes
    num_heldout: int = 200  # held-out scenes (separation, attribution)
    image_size: int = 0  # side in pixels; 0 = the backbone's training size
    seed: int = 70_000  # unseen: the backbone trains on seeds 0 and 10_000
    scenes: tuple[str, ...] = ()  # scene classes drawn (uniformly); () = all


@dataclasses.dataclass(frozen=True)
class RetrievalSettings:
    """Retrieval stability S = separation x consistency (reconstruction).

    Attributes:
      dims: CAV views, a subset of ("1d", "2d", "3d").
      samples: n concept + n non-concept scenes per run.
      runs: R CAVs per (concept, layer, view, n).
      method, alpha, steps: the classifier (`probes.cavs.fit_cavs`).
      metric: held-out separation, "accuracy" or "auc".
    """

    dims: tuple[str, ...] = DIMS
    samples: tuple[int, ...] = (10, 30, 100)
    runs: int = 5
    method: str = "logistic"
    alpha: float = 0.01
    steps: int = 50
    metric: str = "accuracy"


@dataclasses.dataclass(frozen=True)
class IceSettings:
    """ICE (NMF) concepts of each layer, one dictionary per seed."""

    num_images: int = 50  # pool scenes whose activation rows are factorized
    num_components: int = 6  # k, NMF rank
    seeds: int = 5  # dictionaries per layer (random inits)
    iters: int = 100  # multiplicative-update iterations


@dataclasses.dataclass(frozen=True)
class AttributionSettings:
    """Stability of concept attribution <d logit / d A, CAV>.

    Attributes:
      num_images: held-out scenes attributed (their predicted scene logit).
      repeats: T repeated attributions with fresh noise keys (>= 2).
      copies: n noisy copies of SmoothGrad (plus the clean image).
      sigma: noise level relative to the image's value range.
      quirk_noise_scale: the reference code's noise std (sigma range)^2.
      batch_mode: batched vs one-image-at-a-time gradients, "sum" (the
        reference's fast mode) or "vmap".
    """

    num_images: int = 8
    repeats: int = 3
    copies: int = 10
    sigma: float = 0.1
    quirk_noise_scale: bool = False
    batch_mode: str = "sum"


@dataclasses.dataclass(frozen=True)
class StabilityStudy:
    """Every setting of a stability study (see `configs/stability.py`).

    Attributes:
      seed: seed of the runs' subsets, NMF inits and attribution noise.
      backbone: workdir of the trained backbone.
      layers: spatial activations (N, h, w, C) studied.
      concepts: object-level concepts (SynthAerial `CONCEPTS`).
      subconcepts: "concept:sub" sub-concepts; each parent in `concepts`.
      scenes: scene-level concepts (in `data.scenes` when that is set).
      batch_size: activation-extraction batch (a multiple of the devices).
      sharded: split the runs and attributed images over the devices.
    """

    seed: int
    backbone: str
    layers: tuple[str, ...]
    concepts: tuple[str, ...]
    subconcepts: tuple[str, ...]
    scenes: tuple[str, ...]
    batch_size: int
    sharded: bool = False
    data: StabilityData = StabilityData()
    retrieval: RetrievalSettings = RetrievalSettings()
    ice: IceSettings = IceSettings()
    attribution: AttributionSettings = AttributionSettings()


def check_study(st: StabilityStudy) -> None:
    """Rejects settings the study would fail on late, naming the field."""
    r, a, d = st.retrieval, st.attribution, st.data
    pool = d.scenes or synthaerial.SCENES
    parents = [s.partition(":") for s in st.subconcepts]
    rules = [
        (not st.layers, "layers is empty"),
        ([c for c in st.concepts if c not in synthaerial.CONCEPTS],
         f"concepts {{}} are not SynthAerial concepts {synthaerial.CONCEPTS}"),
        ([s for s, (p, _, _) in zip(st.subconcepts, parents) if p not in st.concepts],
         "subconcepts {} need their parent in concepts (they are compared with it)"),
        ([s for s, (p, _, sub) in zip(st.subconcepts, parents)
          if p in st.concepts and sub not in synthaerial.SUBCONCEPTS[p]],
         f"subconcepts {{}} are not concept:sub of {synthaerial.SUBCONCEPTS}"),
        ([s for s in d.scenes if s not in synthaerial.SCENES],
         f"data.scenes {{}} are not SynthAerial scenes {synthaerial.SCENES}"),
        ([s for s in st.scenes if s not in pool], f"scenes {{}} are not among {pool}"),
        (not st.concepts and not st.scenes, "concepts and scenes are both empty"),
        (not r.dims or [x for x in r.dims if x not in DIMS],
         f"retrieval.dims must be a non-empty subset of {DIMS}"),
        (len(set(r.samples)) != len(r.samples) or not r.samples,
         f"retrieval.samples must be distinct sample counts, got {r.samples}"),
        (r.runs < 2, f"retrieval.runs must be >= 2 (pairs of runs), got {r.runs}"),
        (r.metric not in METRICS, f"retrieval.metric must be one of {METRICS}"),
        (r.method not in METHODS, f"retrieval.method must be one of {METHODS}"),
        (st.ice.seeds < 2, f"ice.seeds must be >= 2, got {st.ice.seeds}"),
        (st.ice.num_images > d.num_train,
         f"ice.num_images={st.ice.num_images} exceeds data.num_train={d.num_train}"),
        (a.repeats < 2, f"attribution.repeats must be >= 2, got {a.repeats}"),
        (a.num_images > d.num_heldout, f"attribution.num_images={a.num_images} "
         f"exceeds data.num_heldout={d.num_heldout}"),
        (a.batch_mode not in BATCH_MODES,
         f"attribution.batch_mode must be one of {BATCH_MODES}"),
    ]  # fmt: skip
    problems = [msg.replace("{}", str(bad)) for bad, msg in rules if bad]
    if problems:
        raise ValueError("; ".join(problems))


def image_size(st: StabilityStudy, net: TrainedBackbone) -> int:
    return int(st.data.image_size or net.image_size)


def concept_table(st: StabilityStudy) -> list[dict]:
    """[{"name", "level", "parent"}]: objects, sub-concepts, then scenes."""
    out = [{"name": c, "level": "object", "parent": None} for c in st.concepts]
    out += [{"name": s, "level": "subconcept", "parent": s.partition(":")[0]}
            for s in st.subconcepts]  # fmt: skip
    out += [{"name": s, "level": "scene", "parent": None} for s in st.scenes]
    return out


def _labels(g: dict, concepts: list[dict]) -> np.ndarray:
    cols = []
    for c in concepts:
        if c["level"] == "scene":
            cols.append(g["scene"] == synthaerial.SCENES.index(c["name"]))
            continue
        parent, _, sub = c["name"].partition(":")
        hit = g["obj_class"] == synthaerial.CONCEPTS.index(parent) + 1
        if sub:
            k = synthaerial.SUBCONCEPTS[parent].index(sub)
            hit &= g["obj_subconcept"] == k
        cols.append(hit.any(axis=1))
    return np.stack(cols, axis=1)


def build_data(st: StabilityStudy, size: int) -> dict[str, np.ndarray]:
    """{"image" (N, S, S, 3) uint8, "labels" (N, K) bool, "scene" (N,)}.

    The first `data.num_train` scenes are the pool, the rest held out.
    """
    d = st.data
    g = synthaerial.generate(d.num_train + d.num_heldout, size=size, seed=d.seed,
                             scenes=tuple(d.scenes) or None)  # fmt: skip
    return {
        "image": g["image"],
        "labels": _labels(g, concept_table(st)),
        "scene": g["scene"].astype(np.int32),
    }


def heldout_rows(labels: np.ndarray, seed: int) -> np.ndarray:
    """(K, 2, M) held-out rows: M positives and M negatives per concept.

    M is the smallest count of held-out positives or negatives over the
    concepts, so every concept's separation rests on as many scenes.
    """
    m = int(min(labels.sum(0).min(), (~labels).sum(0).min()))
    if m < 2:
        raise ValueError(f"a concept has {m} held-out positives or negatives; "
                         "raise data.num_heldout")  # fmt: skip
    rng = np.random.default_rng([seed, 1])
    return np.stack([[rng.choice(np.flatnonzero(col == v), m, replace=False)
                      for v in (True, False)] for col in labels.T])  # fmt: skip


def draw_cells(labels: np.ndarray, samples, runs: int, seed: int) -> dict:
    """{(k, n): (pos_rows (R, n), neg_rows (R, n))} pool rows per concept and
    sample count; absent where the pool has fewer than n of either side."""
    out = {}
    for k, col in enumerate(labels.T):
        pos, neg = np.flatnonzero(col), np.flatnonzero(~col)
        for n in samples:
            if n > min(len(pos), len(neg)):
                continue
            rng = np.random.default_rng([seed, k, n])
            out[k, n] = tuple(np.stack([rng.choice(rows, n, replace=False)
                                        for _ in range(runs)]).astype(np.int32)
                              for rows in (pos, neg))  # fmt: skip
    return out


def extract(net: TrainedBackbone, images, st: StabilityStudy, progress=False):
    """{layer: (N, h, w, C) float32} activations of `st.layers`, in memory."""
    return features.spatial_maps(
        net.apply, images, st.layers, batch_size=st.batch_size, progress=progress,
        who="the stability study",
    )  # fmt: skip


def save_npz(path: str, arrays: dict) -> None:
    """`np.savez_compressed` to a temporary name, then renamed."""
    write_npz_atomic(path, arrays)


def load_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of an `.npz` file of the study, loaded into memory."""
    return read_npz(path, "run `python -m eval.stability`")
