"""LoCE study figures: centroid segmentation on held-out scenes, and every PNG
of the report (`evaluation.analyze`)."""

from __future__ import annotations

import functools
import os

import jax
import numpy as np
from PIL import Image

from jaxcxai import plotting
from jaxcxai.concepts.loce import analysis as la
from jaxcxai.concepts.loce import clustering as lc
from jaxcxai.concepts.loce import plots as lp
from jaxcxai.concepts.loce.study import extract, generate
from jaxcxai.data import synthaerial

__all__ = ["figures", "segmentation"]


@functools.partial(jax.jit, static_argnames="size")
def _soft_maps(vectors, acts, size: int):
    """(K, M, size, size) min-max normalized projection maps (LoCE localisation).

    vectors: {layer: (K, C_l)} centroids; acts: {layer: (M, C_l, h_l, w_l)}.
    """

    def one(v, a):
        return la.project_segmentation(v, a, (size, size))[1]

    return jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))(vectors, acts)


def segmentation(study, loces, concepts, apply_fn, size: int, progress=True):
    """IoU of centroid projections on held-out scenes, per concept.

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
    return plotting.save(fig, os.path.join(workdir, name))


_AXES = {"pca": "PC", "umap": "UMAP", "tsne": "t-SNE"}


def _crop(study, table, i: int, size: int, side: int = 64):
    """A square crop around instance row i of the fitting scenes, upscaled,
    and the instance's box in the crop's pixels (y0, x0, y1, x1)."""
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
    crop = image[ys, xs]
    sy, sx = side / crop.shape[0], side / crop.shape[1]
    box = ((y0 - ys.start) * sy, (x0 - xs.start) * sx,
           (y1 - ys.start) * sy, (x1 - xs.start) * sx)  # fmt: skip
    return np.asarray(Image.fromarray(crop).resize((side, side), Image.NEAREST)), box


def figures(workdir, study, table, concepts, main, per_feature, seg) -> list[str]:
    """Writes every PNG into workdir; returns their names."""
    a = study.analysis
    feat = per_feature[a.feature]
    axis = _AXES.get(a.embedding, a.embedding)
    n = len(concepts)
    out = [
        _save(lp.plot_embedding(
            main["emb"], concepts, main["gmms"], axis_name=axis,
            title=f"{n} `{a.feature}` LoCEs in a 2-D {a.embedding} embedding; "
                  "per concept a GMM with k chosen by BIC",
        ), workdir, "embedding.png"),
        _save(lp.plot_embedding(
            main["emb"], [f"component {k}" for k in main["agnostic_assign"]],
            axis_name=axis,
            title=f"The same {n} LoCEs coloured by one label-agnostic GMM "
                  f"(k = {main['agnostic']['k']} by BIC; ARI vs concepts "
                  f"{main['agnostic']['ari_concept']:.2f})",
        ), workdir, "embedding_agnostic.png"),
    ]  # fmt: skip
    idx = lc.sample_per_class(concepts, a.dendrogram_per_class, seed=0)
    sub_labels = concepts[idx]
    z = lc.hac(main["x"][idx], a.hac_method, a.hac_metric)
    p_min, s_max = lc.adaptive_settings(len(idx))
    assign = lc.extract_clusters(z, sub_labels, p_min=p_min, s_max=s_max)
    pur, n_clusters = lc.purity(assign, sub_labels)
    rep = main["purity"]
    out.append(_save(lp.plot_dendrogram(
        z, sub_labels, metric_name=f"({a.hac_method}, {a.hac_metric})",
        title=f"{a.hac_method} clustering of one sample of at most "
              f"{a.dendrogram_per_class} `{a.feature}` LoCEs per concept: purity "
              f"{pur:.2f} with {n_clusters} clusters in this sample (the report's "
              f"figure, over {a.purity_seeds} samples of {a.purity_per_class} "
              f"per concept: {rep['mean']:.2f} ± {rep['std']:.2f}, "
              f"{rep['clusters']:.1f} clusters)",
    ), workdir, "dendrogram.png"))  # fmt: skip
    sep = feat["separation"]
    out.append(
        _save(
            lp.plot_separation_heatmap(
                sep["separation"],
                sep["classes"],
                title=f"Pairwise separation of `{a.feature}` LoCEs (larger = better "
                "separated; 0 on the diagonal)",
                cbar_label="Sep(row, column)",
            ),
            workdir,
            "separation.png",
        )
    )
    out.append(_save(lp.plot_separation_heatmap(
        sep["overlap"], sep["classes"], vmax=1.0,
        title="Overlap: share of the column concept's LoCEs inside the row "
              "concept's GMM region",
        cbar_label="Ov(row <- column)",
    ), workdir, "overlap.png"))  # fmt: skip
    curves = {k: v["retrieval"]["precision_at_k"] for k, v in per_feature.items()}
    out.append(_save(lp.plot_retrieval_curves(
        curves, title=f"Concept retrieval: share of a LoCE's k nearest LoCEs "
                      f"({a.retrieval_metric}) with its concept"),
        workdir, "retrieval.png"))  # fmt: skip
    for c, o in main["outliers"].items():
        tiles = [_crop(study, table, i, seg["size"]) for i in o["top"]]
        scores = np.sort(o["scores"])[::-1][: len(tiles)]
        fig = lp.plot_outlier_tiles(
            [t[0] for t in tiles], scores, boxes=[t[1] for t in tiles],
            score_name="score",
            title=f"{c}: the {len(tiles)} instances (magenta box) whose LoCE has "
                  f"the largest outlier score (sum of cosine distances to the "
                  f"other {len(o['scores']) - 1} {c} LoCEs)",
        )  # fmt: skip
        out.append(_save(fig, workdir, f"outliers_{c}.png"))
    classes = list(seg["classes"])
    for c in a.overlay_concepts:
        if c not in classes:
            continue
        k = classes.index(c)
        truth = seg["class_mask"] == synthaerial.CONCEPTS.index(c) + 1
        present = np.flatnonzero(truth.any(axis=(1, 2)))
        if not len(present):
            continue
        m = int(present[0])
        fig = lp.plot_projection_overlay(
            seg["images"][m], seg["soft"][k, m], threshold=0.5, truth=truth[m],
            title=f"{c}: projection of the mean `ml` LoCE of {c} onto held-out "
                  f"scene {m} (white: thresholded at 0.5; green: true {c} mask)",
        )  # fmt: skip
        out.append(_save(fig, workdir, f"overlay_{c}.png"))
    return out
