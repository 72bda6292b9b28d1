"""A LoCE study of SynthAerial object instances: settings, data and fitting.

`LoceStudy` holds every setting (the fields of `configs/loce.py`); `fit`
generates scenes of a seed the backbone never saw, keeps the object
instances with at least `min_area` pixels (a seeded subset of at most
`max_per_concept` per concept), extracts the configured layers and fits one
LoCE per instance and layer chunk by chunk into `workdir/store/` (a re-run
resumes after the last finished chunk). `evaluation.analyze` analyses it.

Files of a study workdir: `fingerprint.json` (the backbone's weights digest
and the fit's settings, written first), `instances.npz` (the instance table,
rows in store order) and `store/` (`jaxcxai.concepts.loce.store`, which
records the backbone and a digest of the instance table too). A rerun with
another backbone or changed settings raises `FingerprintError` naming the
field, before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import jax
import numpy as np

from jaxcxai import checks, features, parallel
from jaxcxai.atomic_files import atomic_write, is_temporary
from jaxcxai.concepts.loce import pipeline, store
from jaxcxai.concepts.loce.objectives import LoceConfig
from jaxcxai.data import synthaerial
from jaxcxai.training.backbone import TrainedBackbone

__all__ = [
    "FINGERPRINT",
    "INSTANCES",
    "STORE",
    "LoceAnalysisSettings",
    "LoceData",
    "LoceSettings",
    "LoceStudy",
    "check_workdir",
    "extract",
    "fingerprint_fields",
    "fit",
    "generate",
    "image_size",
    "load_table",
    "loce_config",
]


@dataclasses.dataclass(frozen=True)
class LoceData:
    """SynthAerial scenes of the study (seeds the backbone never saw).

    Attributes:
      num_images: fitting scenes; seed: their seed.
      image_size: 0 = the backbone's training size.
      boat_on_water_p: SynthAerial's planted boat/water correlation.
      min_area: smallest instance (pixels at image_size) that gets a LoCE.
      max_per_concept: seeded subset per concept; 0 keeps all.
      num_eval_images, eval_seed: held-out scenes for segmentation.
    """

    num_images: int = 400
    seed: int = 20_000
    image_size: int = 0
    boat_on_water_p: float = 0.9
    min_area: int = 4
    max_per_concept: int = 150
    num_eval_images: int = 100
    eval_seed: int = 30_000


@dataclasses.dataclass(frozen=True)
class LoceSettings:
    """Per-sample fit settings (`LoceConfig`) plus the target grid and chunking."""

    objective: str = "net2vec"
    steps: int = 50
    lr: float = 0.1
    weight_decay: float = 0.01
    init: str = "zeros"
    upsample: str = "native"
    interp: str = "bilinear"
    grid: int = 0  # target grid side; 0: the image size (binary targets)
    chunk_size: int = 256  # LoCEs per stored chunk


@dataclasses.dataclass(frozen=True)
class LoceAnalysisSettings:
    """Settings of the distribution analyses (`evaluation.analyze`)."""

    feature: str = "ml"  # a layer name, or "ml" (all layers concatenated)
    min_per_concept: int = 4
    embedding: str = "umap"  # "umap" | "pca" | "tsne"
    k_max: int = 5
    k_max_agnostic: int = 10
    outlier_weight: float = 0.1
    hac_method: str = "ward"
    hac_metric: str = "euclidean"
    purity_seeds: int = 10
    purity_per_class: int = 100
    dendrogram_per_class: int = 12
    separation_metric: str = "euclidean"
    retrieval_metric: str = "cosine"
    retrieval_ks: tuple[int, ...] = (1, 5, 10, 20, 30, 40)
    outlier_top: int = 7
    outlier_concepts: tuple[str, ...] = ("car", "boat", "airplane")
    seg_thresholds: tuple[float, ...] = (0.35, 0.5, 0.75)
    overlay_concepts: tuple[str, ...] = ("airplane", "car", "building")
    ari_found: float = 0.5


@dataclasses.dataclass(frozen=True)
class LoceStudy:
    """Every setting of a LoCE study (see `configs/loce.py`).

    Attributes:
      seed: seed of the instance subset and the fits.
      backbone: workdir of the trained backbone.
      layers: activation names.
      batch_size: activation-extraction batch (a multiple of the devices).
    """

    seed: int
    backbone: str
    layers: tuple[str, ...]
    batch_size: int
    data: LoceData = LoceData()
    loce: LoceSettings = LoceSettings()
    analysis: LoceAnalysisSettings = LoceAnalysisSettings()


STORE = "store"
INSTANCES = "instances.npz"
FINGERPRINT = "fingerprint.json"


def loce_config(c: LoceSettings) -> LoceConfig:
    """The fit's `LoceConfig` of the study's LoCE settings."""
    return LoceConfig(
        objective=c.objective,
        steps=c.steps,
        lr=c.lr,
        weight_decay=c.weight_decay,
        init=c.init,
        upsample=c.upsample,
        interp=c.interp,
    )


def image_size(study: LoceStudy, backbone_size: int) -> int:
    return int(study.data.image_size or backbone_size)


def generate(study: LoceStudy, size: int, held_out: bool = False) -> dict:
    """The fitting scenes, or the held-out ones (`eval_seed`) for segmentation."""
    d = study.data
    num, seed = (d.num_eval_images, d.eval_seed) if held_out else (d.num_images, d.seed)
    return synthaerial.generate(
        num, size=size, seed=seed, boat_on_water_p=d.boat_on_water_p
    )


def extract(apply_fn, images, study: LoceStudy, progress: bool = True) -> dict:
    """{layer: (N, h, w, C) float32} activations of `study.layers`."""
    return features.extract(
        apply_fn,
        images,
        list(study.layers),
        batch_size=study.batch_size,
        mesh=parallel.make_mesh(),
        dtype=np.float32,
        pool=False,
        progress=progress,
    )


def _save_table(path: str, table: dict) -> None:
    if os.path.exists(path):
        with np.load(path) as old:
            same = set(old.files) == set(table) and all(
                np.array_equal(old[k], table[k]) for k in table
            )
        if not same:
            raise ValueError(
                f"{path} holds another instance table (config changed?); "
                "use a new workdir"
            )
        return
    atomic_write(path, lambda f: np.savez(f, **table))


def load_table(workdir: str) -> dict[str, np.ndarray]:
    path = os.path.join(workdir, INSTANCES)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no instance table at {path}; fit the LoCEs first")
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


def fingerprint_fields(study: LoceStudy, net: TrainedBackbone) -> dict:
    """What a study's stored results depend on: the backbone and the settings
    of the fit (not the analysis settings, the held-out scenes, nor the
    backbone's path)."""
    data = dataclasses.asdict(study.data)
    del data["num_eval_images"], data["eval_seed"]  # analysis only
    return {
        "backbone": features.backbone_fingerprint(net),
        "settings": {
            "seed": study.seed,
            "layers": study.layers,
            "batch_size": study.batch_size,
            "data": data,
            "loce": study.loce,
        },
    }


def check_workdir(study: LoceStudy, workdir: str, net: TrainedBackbone) -> None:
    """Raises `FingerprintError` unless `workdir` was fitted by `fit` with
    this backbone and these settings (call it before analysing a workdir)."""
    checks.resume_check(
        os.path.join(workdir, FINGERPRINT), fingerprint_fields(study, net),
        what=f"LoCE study {workdir}", fresh=f"delete {workdir} and fit it again",
        read_only=True,
    )  # fmt: skip


def _finished(store_dir: str) -> bool:
    try:
        with open(os.path.join(store_dir, "meta.json")) as f:
            return bool(json.load(f).get("finished"))
    except (OSError, ValueError):
        return False


def fit(
    study: LoceStudy, workdir: str, net: TrainedBackbone, progress: bool = True
) -> store.LoceResults:
    """Generates scenes, extracts activations and fits the per-instance LoCEs.

    Args:
      study: the study's settings.
      workdir: output directory (`fingerprint.json`, `instances.npz`, `store/`).
      net: the trained backbone (`jaxcxai.training.load_trained`).
      progress: progress bars.

    Returns:
      The stored `LoceResults` (rows as in `instances.npz`).

    Raises:
      FingerprintError: the workdir holds a study of another backbone or
        other settings (names the field; delete the workdir to start afresh).
    """
    os.makedirs(workdir, exist_ok=True)
    store_dir = os.path.join(workdir, STORE)
    fields = fingerprint_fields(study, net)
    checks.resume_check(
        os.path.join(workdir, FINGERPRINT), fields,
        what=f"LoCE study {workdir}", fresh=f"delete {workdir}",
        guard=[os.path.join(workdir, INSTANCES), store_dir],
    )  # fmt: skip
    for name in os.listdir(workdir):
        if name.startswith(INSTANCES) and is_temporary(name):
            os.remove(os.path.join(workdir, name))  # a kill while writing the table
    size = image_size(study, net.image_size)
    kw = dict(config=loce_config(study.loce), grid=study.loce.grid or size,
              chunk_size=study.loce.chunk_size, mesh=parallel.make_mesh(),
              key=jax.random.key(study.seed),
              fingerprint={"backbone": fields["backbone"]})  # fmt: skip
    if _finished(store_dir) and os.path.exists(os.path.join(workdir, INSTANCES)):
        logging.info("LoCE store %s is complete; nothing to fit", store_dir)
        # The store checks its own record (and cleans up) without refitting.
        return pipeline.fit_instances(
            None, None, load_table(workdir), store_dir, progress=False, **kw
        )
    data = generate(study, size)
    table = pipeline.select_instances(
        data,
        min_area=study.data.min_area,
        max_per_concept=study.data.max_per_concept,
        seed=study.seed,
    )
    _save_table(os.path.join(workdir, INSTANCES), table)
    counts = np.bincount(table["concept"], minlength=len(synthaerial.CONCEPTS) + 1)
    logging.info(
        "%d instances: %s",
        len(table["row"]),
        ", ".join(f"{n} {c}" for c, n in zip(synthaerial.CONCEPTS, counts[1:])),
    )
    acts = extract(net.apply, data["image"], study, progress)
    return pipeline.fit_instances(
        acts, data["instance_mask"], table, store_dir, progress=progress, **kw
    )
