"""Main-job stage `comparison`: concept-based comparison of the trained
backbone(s), packaged ImageNet networks and each network with itself
(Mikriukov et al., arXiv:2305.07663).

Runs `jaxcxai.concepts.comparison.run.compare` (what `python -m eval.compare`
runs) in the stage directory. The config section is a `configs/compare.py`
config whose `backbone` and `backbones` are relative to the main job's
workdir, where the `backbones` stage trains `small_cnn` (and, in `full`,
`resnet18`) into `backbones/<name>`.
"""

from __future__ import annotations

import time

import numpy as np

from configs import cli
from eval.stages.common import resolve_backbone, with_backbone
from jaxcxai.concepts.comparison import run, study

# Below these sizes the numbers say little (caveats).
MIN_IMAGES = 20  # held-out scenes containing a concept
MIN_PROBE_IOU = 0.05  # a layer whose probes locate nothing has meaningless rows
MIN_IMAGENET_SIZE = 128  # ImageNet networks far below 224 px see foreign scales

RECONSTRUCTIONS = (
    ("concept similarity (spec §6.2)", "set IoU of two layers' thresholded "
     "Net2Vec masks pooled over the held-out scenes, and Pearson correlation "
     "of their CAV signed distances, each averaged over concepts: the paper's "
     "exact measures could not be read"),
    ("common grid", "masks are compared on a G x G grid after bilinear "
     "resampling of the probe logits (G = the scenes' side unless `grid` is "
     "set); the paper's resolution is not known"),
    ("0/0 convention", "a concept neither layer predicts, or a constant "
     "projection, counts as similarity 0, so two silent layers never look "
     "identical"),
    ("relative-depth check", "best match = each row's argmax, distance "
     "|d_i - d_j*| with d = index / (L - 1) over the compared layers, tested "
     "against random assignment; the paper states the finding qualitatively"),
    ("networks and data", "image classifiers on SynthAerial instead of the "
     "paper's object detectors on MS COCO"),
)  # fmt: skip


def caveats(config, results: dict) -> list[str]:
    """Where the sizes are too small for the numbers to carry a conclusion."""
    out = []
    counts = dict(zip(results["concepts"], results["test_images_per_concept"]))
    few = {c: k for c, k in counts.items() if k < MIN_IMAGES}
    if few:
        rarest = max(min(few.values()), 1)
        out.append(
            f"Concepts in fewer than {MIN_IMAGES} of the {results['num_test']} "
            "held-out scenes ("
            + ", ".join(f"{c} {k}" for c, k in few.items())
            + "): their similarities rest on a handful of scenes; about "
            f"{int(np.ceil(results['num_test'] * MIN_IMAGES / rarest))} scenes "
            "(`comparison.data.num_test`) would give each of them "
            f"{MIN_IMAGES}."
        )
    present = np.asarray(results["test_images_per_concept"]) > 0
    weak = []
    for name, n in results["networks"].items():
        iou = np.asarray(n["probe_iou"])[:, present].mean(1) if present.any() else []
        weak += [
            f"{name}:{lay}" for lay, v in zip(n["layers"], iou) if v < MIN_PROBE_IOU
        ]
    if weak:
        out.append(
            f"Layers whose probes reach a held-out IoU below {MIN_PROBE_IOU} ("
            + ", ".join(weak)
            + "): their IoU rows compare masks that locate "
            "nothing; more probe epochs or scenes (`comparison.net2vec.epochs`, "
            "`comparison.data.num_train`) may help."
        )
    short = [f"{k} ({len(n['layers'])})" for k, n in results["networks"].items()
             if len(n["layers"]) < 4]  # fmt: skip
    if short:
        out.append(
            "Networks compared at fewer than 4 layers (" + ", ".join(short) + "): "
            "their relative depths move in steps of 1 / (L - 1) >= 1/3, so a best "
            "match one layer off is already far from the diagonal."
        )
    if config.pretrained and config.pretrained_size < MIN_IMAGENET_SIZE:
        out.append(
            f"The ImageNet networks see {config.pretrained_size} px scenes, far "
            f"below their 224 px training size (`comparison.pretrained_size`)."
        )
    if results["skipped"]:
        out.append("Trained backbones not found and skipped: "
                   + ", ".join(results["skipped"]) + ".")  # fmt: skip
    out.append(
        "The relative-depth p-value pools both directions of every pair, which "
        "share one similarity matrix, so its rows are not independent."
    )
    return out


def comparison(config, stage_dir: str) -> dict:
    """Fits the probes, compares every pair; returns the stage's report part."""
    config = with_backbone(config, stage_dir)  # a copy
    config.backbones = tuple(resolve_backbone(p, stage_dir) for p in config.backbones)
    spec = cli.to_spec(study.CompareStudy, config)
    t0 = time.perf_counter()
    out = run.compare(spec, stage_dir)
    seconds = time.perf_counter() - t0
    res = out["results"]
    nets = ", ".join(
        f"`{k}` ({'ImageNet' if n['kind'] == 'imagenet' else 'trained'}, "
        f"{n['input_size']} px, {len(n['layers'])} layers)"
        for k, n in res["networks"].items()
    )
    d, n2v, cav = config.data, config.net2vec, config.cav
    summary = (
        f"{len(res['networks'])} networks ({nets}); Net2Vec probes "
        f"({n2v.epochs} epochs x {n2v.runs} run{'s' if n2v.runs > 1 else ''}) "
        f"and {cav.method} CAVs "
        f"({cav.num_random} random sets, {cav.pool} pooling) of "
        f"{len(config.concepts)} SynthAerial concepts fitted on {res['num_train']} "
        f"scenes (seed {d.seed}) and compared on {res['num_test']} held-out "
        f"scenes (seed {d.test_seed}) of {res['image_size']} px, masks on a "
        f"{res['grid']} x {res['grid']} grid; {len(res['pairs'])} pairs "
        f"including each network with itself; {seconds:.0f} s."
    )
    return {
        "summary": summary,
        "markdown": out["markdown"] + "\n\nFull report: `comparison/"
        f"{study.REPORT}`; results: `comparison/{study.RESULTS}`.",
        "figures": out["figures"],
        "reconstructions": list(RECONSTRUCTIONS),
        "caveats": caveats(config, res),
        "results": dict(res, stage_seconds=seconds),
    }
