"""LoCE study figures: centroid segmentation on held-out scenes, and every PNG
of the report (`evaluation.analyze`)."""

from __future__ import annotations

import functools
import os

import jax
import numpy as np
from PIL import Image

from jaxcxai.concepts.loce import analysis as la
from jaxcxai.concepts.loce import clustering as lc
from jaxcxai.concepts.loce import plots as lp
from jaxcxai.concepts.loce.study import extract, generate
from jaxcxai.data import synthaerial

__all__ = ["figures", "segmentation"]


@functools.partial(jax.jit, static_argnames="size")
def _soft_maps(vectors, acts, size: int):
    """(K, M, size, size) min-max normalized projection maps (§4.1).

    vectors: {layer: (K, C_l)} centroids; acts: {layer: (M, C_l, h_l, w_l)}.
    """

    def one(v, a):
        return la.project_segmentation(v, a, (size, size))[1]

    return jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))(vectors, acts)


def segmentation(study, loces, concepts, apply_fn, size: int, progress=True):
    """IoU of centroid projections on held-out scenes, per concept (§4.1, §4.7).

    Each concept's centroid (mean of L2-normalized LoCEs) is projected on the
    held-out images that contain the concept; the normalized map is
    binarized at each threshold and compared with the concept's class mask
    (all its instances). Features: each layer alone and "ml" (all layers).

    Args:
      loces: {layer: (N, C_l)} LoCEs; concepts: (N,) names.

    Returns:
      {"iou": {feature: {concept: {"n_images", "t=<thr>": mean IoU}}},
      "soft": (K, M, H, W) "ml" maps, "classes", "images", "class_mask"}.
    """
    data = generate(study, size, held_out=True)
    acts = extract(apply_fn, data["image"], study, progress)
    acts = {k: np.ascontiguousarray(v.transpose(0, 3, 1, 2)) for k, v in acts.items()}
    classes = np.unique(concepts)
    cents = {name: la.centroids(x, concepts)[1] for name, x in loces.items()}
    groups = {name: [name] for name in loces} | {"ml": list(loces)}
    ious, soft = {}, None
    for feature, names in groups.items():
        soft = np.asarray(
            _soft_maps({n: cents[n] for n in names}, {n: acts[n] for n in names}, size)
        )
        ious[feature] = {}
        for k, c in enumerate(classes):
            truth = data["class_mask"] == synthaerial.CONCEPTS.index(c) + 1
            present = truth.any(axis=(1, 2))
            row = {"n_images": int(present.sum())}
            for thr in study.analysis.seg_thresholds:
                pred = soft[k, present] > thr
                inter = np.sum(pred & truth[present], axis=(1, 2))
                union = np.sum(pred | truth[present], axis=(1, 2))
                row[f"t={thr}"] = (
                    float(np.mean(inter / np.maximum(union, 1)))
                    if present.any()
                    else None
                )
            ious[feature][str(c)] = row
    return dict(
        iou=ious,
        soft=soft,
        classes=classes,
        images=data["image"],
        class_mask=data["class_mask"],
        size=size,
    )


def _save(fig, workdir: str, name: str) -> str:
    path = os.path.join(workdir, name)
    tmp = f"{path}.tmp-{os.getpid()}"
    fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight")
    os.replace(tmp, path)
    return name


def _crop(study, table, i: int, size: int, side: int = 64) -> np.ndarray:
    """A square crop around instance row i of the fitting scenes, upscaled."""
    image = synthaerial.generate(
        1,
        size=size,
        seed=study.data.seed,
        start=int(table["image_index"][i]),
        boat_on_water_p=study.data.boat_on_water_p,
    )["image"][0]
    y0, x0, y1, x1 = (int(v) for v in table["bbox"][i])
    half = max(y1 - y0, x1 - x0) // 2 + max(4, size // 16)
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    ys = slice(max(cy - half, 0), min(cy + half, size))
    xs = slice(max(cx - half, 0), min(cx + half, size))
    return np.asarray(
        Image.fromarray(image[ys, xs]).resize((side, side), Image.NEAREST)
    )


def figures(workdir, study, table, concepts, main, per_feature, seg) -> list[str]:
    """Writes every PNG into workdir; returns their names."""
    a = study.analysis
    feat = per_feature[a.feature]
    out = [
        _save(
            lp.plot_embedding(
                main["emb"],
                concepts,
                main["gmms"],
                title=f"{a.feature} LoCEs, {a.embedding} + per-concept GMMs (BIC)",
            ),
            workdir,
            "embedding.png",
        ),
        _save(
            lp.plot_embedding(
                main["emb"],
                [f"component {k}" for k in main["agnostic_assign"]],
                title=f"label-agnostic GMM, k={main['agnostic']['k']}",
            ),
            workdir,
            "embedding_agnostic.png",
        ),
    ]
    idx = lc.sample_per_class(concepts, a.dendrogram_per_class, seed=0)
    sub_labels = concepts[idx]
    z = lc.hac(main["x"][idx], a.hac_method, a.hac_metric)
    p_min, s_max = lc.adaptive_settings(len(idx))
    assign = lc.extract_clusters(z, sub_labels, p_min=p_min, s_max=s_max)
    out.append(
        _save(
            lp.plot_dendrogram(
                z,
                sub_labels,
                lc.purity(assign, sub_labels),
                title=f"{a.hac_method}/{a.hac_metric}, {a.dendrogram_per_class}/concept",
            ),
            workdir,
            "dendrogram.png",
        )
    )
    sep = feat["separation"]
    out.append(
        _save(
            lp.plot_separation_heatmap(
                sep["separation"], sep["classes"], f"pairwise separation ({a.feature})"
            ),
            workdir,
            "separation.png",
        )
    )
    out.append(
        _save(
            lp.plot_separation_heatmap(
                sep["overlap"], sep["classes"], "overlap Ov(row <- column)", vmax=1.0
            ),
            workdir,
            "overlap.png",
        )
    )
    curves = {k: v["retrieval"]["precision_at_k"] for k, v in per_feature.items()}
    out.append(
        _save(
            lp.plot_retrieval_curves(curves, title="concept retrieval"),
            workdir,
            "retrieval.png",
        )
    )
    for c, o in main["outliers"].items():
        crops = [_crop(study, table, i, seg["size"]) for i in o["top"]]
        scores = np.sort(o["scores"])[::-1][: len(crops)]
        fig = lp.plot_outlier_tiles(
            crops, scores, n=len(crops), title=f"{c}: top cosine outlier scores"
        )
        out.append(_save(fig, workdir, f"outliers_{c}.png"))
    classes = list(seg["classes"])
    for c in a.overlay_concepts:
        if c not in classes:
            continue
        k = classes.index(c)
        present = np.flatnonzero(
            (seg["class_mask"] == synthaerial.CONCEPTS.index(c) + 1).any(axis=(1, 2))
        )
        if not len(present):
            continue
        m = int(present[0])
        fig = lp.plot_projection_overlay(
            seg["images"][m],
            seg["soft"][k, m],
            threshold=0.5,
            title=f"{c} centroid (ml)",
        )
        out.append(_save(fig, workdir, f"overlay_{c}.png"))
    return out
