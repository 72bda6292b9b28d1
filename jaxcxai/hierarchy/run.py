"""Running a semantic-hierarchies study: sources, then per view extract,
verify and align (Schwalbe et al. 2026, arXiv:2603.26798).

`hierarchy(study, workdir)` builds the views of each configured source
(`sources`, `aerial`, `clip_source`) and runs on each (`analysis`):

* extract: the agglomerative tree of the class centroids, nodes named from
  the concept bank;
* verify: triplet agreement, edge consistency, cophenetic correlation and
  leaf cover against the ontology; where the view has images, zero-shot
  accuracy, UAES metrics at a calibrated threshold and the coverage-accuracy
  curve; on ImageNet classes the worst-placed classes;
* align: the lambda sweep of the ontology-guided alignment (accuracy and
  plausibility per lambda).

It then compares text and image views on the same class set (the paper's
finding: text hierarchies match the ontology better) and writes the
arrays, `hierarchy_results.json`, the report and the figures.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time

import jax
import numpy as np

from jaxcxai.hierarchy import aerial, analysis, figures, report, sources
from jaxcxai.hierarchy import study as study_lib
from jaxcxai.hierarchy.study import HierarchyStudy
from jaxcxai.metric_writers import write_json_atomic, write_text_atomic

__all__ = ["build_views", "compare_modalities", "hierarchy", "view_record"]


def _say(progress: bool, text: str) -> None:
    if progress:
        print(f"[hierarchy] {text}", flush=True)


def _aerial_views(st: HierarchyStudy, key, progress):
    a, h = st.synthaerial, st.heads
    k_feat, k_heads = jax.random.split(key)
    if a.features == "synthetic":
        data = aerial.synthetic_features(k_feat, num_images=a.num_images,
                                         noise=a.synthetic_noise)  # fmt: skip
    else:
        from jaxcxai.models.pretrained import cache_dir

        data = aerial.packaged_features(
            num_images=a.num_images, image_size=a.image_size, seed=a.seed,
            crop=a.crop, image_aug=a.image_aug,
            cache_dir=a.cache_dir or str(cache_dir() / "hashing_features"),
            batch_size=a.batch_size, progress=progress,
        )  # fmt: skip
    return aerial.two_tower_views(
        k_heads, data, test_frac=a.test_frac, dim=h.dim, hidden=h.hidden,
        steps=h.steps, batch_size=h.batch_size, lr=h.lr, weight_decay=h.weight_decay,
        compiler_options={"xla_backend_optimization_level": 0} if h.fast_compile else None,
        progress=progress,
    )  # fmt: skip


def _wordnet_missing(st: HierarchyStudy) -> str:
    """Why the WordNet views cannot run ("" when they can): the default
    WordNet folder is missing (`scripts/setup_env.sh` skips it without
    root); an explicit `imagenet.wordnet_dir` is checked by `check_study`."""
    from jaxcxai.hierarchy import wordnet

    try:
        wordnet.resolve_dir(st.imagenet.wordnet_dir or None)
    except FileNotFoundError as e:
        return f"WordNet 3.0 is not installed ({e})"
    return ""


def build_views(st: HierarchyStudy, key, progress=False):
    """(views, two-tower info or None, skipped {source: why}, seconds)."""
    views, info, skipped, seconds = [], None, {}, {}
    no_wordnet = _wordnet_missing(st) if {"imagenet", "clip"} & set(st.sources) else ""
    for i, source in enumerate(st.sources):
        t0 = time.perf_counter()
        if source == "synthaerial":
            got, info = _aerial_views(st, jax.random.fold_in(key, i), progress)
        elif source == "imagenet" and no_wordnet:
            skipped[source] = no_wordnet
            continue
        elif source == "imagenet":
            im = st.imagenet
            got = sources.imagenet_views(
                num_classes=im.num_classes, templates=im.templates,
                classifiers=im.classifiers, wordnet_dir=im.wordnet_dir,
                text=im.text)  # fmt: skip
        elif not st.clip.checkpoint:
            skipped[source] = "no checkpoint given (`clip.checkpoint` is empty)"
            continue
        else:
            from jaxcxai.hierarchy import clip_source

            got = clip_source.clip_views(st.clip, st.imagenet, st.synthaerial.test_frac,
                                         imagenet_view=not no_wordnet)  # fmt: skip
        views += got
        seconds[source] = time.perf_counter() - t0
        _say(progress, f"{source}: {len(got)} views in {seconds[source]:.1f} s")
    return views, info, skipped, seconds


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _finite(x):
    return float(x) if x is not None and np.isfinite(x) else None


def view_record(view, st: HierarchyStudy, key) -> tuple[dict, dict]:
    """Extract, verify and align one view; (JSON record, arrays)."""
    v = st.verify
    ext = analysis.extract(view, linkage=v.linkage,
                           ancestor_constraint=v.ancestor_constraint)  # fmt: skip
    rec = {
        "name": view.name, "source": view.source, "classes": view.classes,
        "modality": view.modality, "num_classes": len(view.class_names),
        "dim": int(np.shape(view.centroids)[1]), "bank_size": len(view.bank_names),
        "bank_kind": view.bank_kind,
        "structure": {k: _finite(x) for k, x in analysis.structure(
            view, ext, onto_distance=v.onto_distance, triplet_max_n=v.triplet_max_n,
            key=key).items()},
        "node_names": ext.names, "parent": ext.tree.parent.tolist(),
    }  # fmt: skip
    if view.has_images:
        inf = analysis.inference(view, ext.tree, view.samples, view.classifier,
                                 view.train_samples, temperature=v.temperature,
                                 target_coverage=v.target_coverage, curve=True)  # fmt: skip
        rec["curve"] = inf.pop("curve")
        rec["inference"] = {k: _finite(x) for k, x in inf.items()}
        rec["num_test_images"] = int(len(view.samples))
    if view.classes == "imagenet":
        rec["worst"] = analysis.worst_placed(view, ext, v.worst)
    rec["align"] = analysis.align_view(jax.random.fold_in(key, 1), view, st.align, v)
    arrays = {"centroids": np.asarray(view.centroids, np.float32),
              "parent": ext.tree.parent, "linkage": ext.tree.linkage,
              "leaves": np.asarray(view.leaves), "onto_parent": view.onto.parent}  # fmt: skip
    if view.has_images:
        arrays |= {"samples": np.asarray(view.samples, np.float32),
                   "labels": np.asarray(view.labels, np.int32),
                   "classifier": np.asarray(view.classifier, np.float32)}  # fmt: skip
    return rec, arrays


def compare_modalities(records: list[dict]) -> list[dict]:
    """Per class set with both modalities: mean triplet agreement and
    cophenetic correlation of its text and image views, and whether text
    matches the ontology better on both (the paper's finding)."""
    out = []
    for classes in dict.fromkeys(r["classes"] for r in records):
        group = [r for r in records if r["classes"] == classes]
        mods = {m: [r for r in group if r["modality"] == m] for m in ("text", "image")}
        if not (mods["text"] and mods["image"]):
            continue
        row = {"classes": classes}
        for m, rs in mods.items():
            for k in ("triplet", "cophenetic"):
                vals = [r["structure"][k] for r in rs if r["structure"][k] is not None]
                row[f"{m}_{k}"] = float(np.mean(vals)) if vals else None
            row[f"{m}_views"] = [r["name"] for r in rs]
        row["text_better"] = all(
            row[f"text_{k}"] is not None
            and row[f"image_{k}"] is not None
            and row[f"text_{k}"] > row[f"image_{k}"]
            for k in ("triplet", "cophenetic")
        )
        out.append(row)
    return out


def hierarchy(st: HierarchyStudy, workdir: str, progress=True) -> dict:
    """The whole study: views, extract / verify / align, report, figures.

    Returns:
      {"markdown", "figures" (PNG names in `workdir`), "results" (also in
      `hierarchy_results.json`)}.
    """
    study_lib.check_study(st)
    os.makedirs(workdir, exist_ok=True)
    key = jax.random.key(st.seed)
    views, info, skipped, seconds = build_views(
        st, jax.random.fold_in(key, 0), progress
    )
    records, arrays, trees = [], {}, {}
    t0 = time.perf_counter()
    for i, view in enumerate(views):
        t1 = time.perf_counter()
        rec, arr = view_record(view, st, jax.random.fold_in(key, 1000 + i))
        records.append(rec)
        slug = f"{view.source}.{_slug(view.name)}"
        arrays |= {f"{slug}.{k}": v for k, v in arr.items()}
        trees[view.name] = (arr["linkage"], rec["node_names"], view.class_names)
        s = rec["structure"]
        _say(progress, f"{view.name}: T = {report.num(s['triplet'])}, EdgeCons = "
                       f"{report.num(s['edge'])} ({time.perf_counter() - t1:.1f} s)")  # fmt: skip
    seconds["analysis"] = time.perf_counter() - t0
    study_lib.save_npz(os.path.join(workdir, study_lib.ARRAYS), arrays)
    results = {
        "sources": list(st.sources), "skipped": skipped, "views": records,
        "two_tower": info, "comparison": compare_modalities(records),
        "settings": {k: dataclasses.asdict(getattr(st, k)) for k in
                     ("synthaerial", "heads", "imagenet", "verify", "align")},
        "clip_checkpoint": st.clip.checkpoint,
        "backend": jax.default_backend(), "devices": jax.device_count(),
    }  # fmt: skip
    t0 = time.perf_counter()
    figs = figures.figures(results, trees, workdir)
    results["seconds"] = dict(seconds, figures=time.perf_counter() - t0)
    md = report.markdown(results)
    write_json_atomic(os.path.join(workdir, study_lib.RESULTS), results)
    write_text_atomic(os.path.join(workdir, study_lib.REPORT), md + "\n")
    return {"markdown": md, "figures": figs, "results": results}
