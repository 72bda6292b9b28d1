"""Parts of `eval.loce`: centroid segmentation, figures and the markdown report."""

from __future__ import annotations

import functools
import os

import jax
import numpy as np
from PIL import Image

from jaxcxai.concepts import loce_analysis as la
from jaxcxai.concepts import loce_clustering as lc
from jaxcxai.concepts import loce_plots as lp
from jaxcxai.data import synthaerial
from train import loce as train_loce


@functools.partial(jax.jit, static_argnames="size")
def _soft_maps(vectors, acts, size: int):
    """(K, M, size, size) min-max normalized projection maps (§4.1).

    vectors: {layer: (K, C_l)} centroids; acts: {layer: (M, C_l, h_l, w_l)}.
    """

    def one(v, a):
        return la.project_segmentation(v, a, (size, size))[1]

    return jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))(vectors, acts)


def segmentation(config, loces, concepts, apply_fn, size: int, progress=True):
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
    data = train_loce.generate(config, size, held_out=True)
    acts = train_loce.extract(apply_fn, data["image"], config, progress)
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
            for thr in config.analysis.seg_thresholds:
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


def _crop(config, table, i: int, size: int, side: int = 64) -> np.ndarray:
    """A square crop around instance row i of the fitting scenes, upscaled."""
    image = synthaerial.generate(
        1,
        size=size,
        seed=config.data.seed,
        start=int(table["image_index"][i]),
        boat_on_water_p=config.data.boat_on_water_p,
    )["image"][0]
    y0, x0, y1, x1 = (int(v) for v in table["bbox"][i])
    half = max(y1 - y0, x1 - x0) // 2 + max(4, size // 16)
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    ys = slice(max(cy - half, 0), min(cy + half, size))
    xs = slice(max(cx - half, 0), min(cx + half, size))
    return np.asarray(
        Image.fromarray(image[ys, xs]).resize((side, side), Image.NEAREST)
    )


def figures(workdir, config, table, concepts, main, per_feature, seg) -> list[str]:
    """Writes every PNG into workdir; returns their names."""
    a = config.analysis
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
        crops = [_crop(config, table, i, seg["size"]) for i in o["top"]]
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


def _f(v, fmt=".3f") -> str:
    return (
        "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:{fmt}}"
    )


def markdown(summary: dict, config) -> str:
    """The report: counts, own IoU, sub-concepts, car/truck, retrieval, segmentation."""
    a = config.analysis
    feat = summary["features"][a.feature]
    lines = [
        f"{summary['n']} per-instance LoCEs (layers {', '.join(summary['layers'])}) "
        f"of {config.data.num_images} SynthAerial scenes; per concept: "
        + ", ".join(f"{c} {n}" for c, n in summary["counts"].items())
        + f". Analyses use `{a.feature}` LoCEs of the concepts with at least "
        f"{a.min_per_concept} LoCEs.",
        "",
        "**Own-projection IoU** (each LoCE against its own instance mask; "
        "mean, fraction zero):",
        "",
        "| concept | " + " | ".join(summary["layers"]) + " |",
        "|---|" + "---|" * len(summary["layers"]),
    ]
    for c in summary["counts"]:
        cells = [
            f"{summary['iou'][name][c]['mean']:.2f} ({summary['iou'][name][c]['zero']:.2f})"
            for name in summary["layers"]
        ]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "**Planted sub-concepts** (adjusted Rand index vs the planted labels: "
        f"per-concept GMM on the {a.embedding} embedding with k by BIC, the "
        "label-agnostic GMM over all concepts restricted to the concept, and a "
        "2-cluster ward cut of the raw LoCEs):",
        "",
        "| concept | sub-concepts | k (BIC) | ARI GMM | ARI agnostic | ARI HAC-2 | found |",
        "|---|---|---|---|---|---|---|",
    ]
    found, missed = [], []
    for c, v in summary["subconcepts"].items():
        subs = ", ".join(f"{s} {n}" for s, n in v["sub_counts"].items())
        lines.append(
            f"| {c} | {subs} | {v['k_bic']} | {_f(v['ari_gmm'])} | "
            f"{_f(v['ari_agnostic'])} | {_f(v['ari_hac2'])} | "
            f"{'yes' if v['found'] else 'no'} |"
        )
        (found if v["found"] else missed).append(c)
    lines += [
        "",
        f"Sub-concepts found (ARI >= {a.ari_found}): {', '.join(found) or 'none'}. "
        f"Not found: {', '.join(missed) or 'none'}.",
        "",
    ]
    ct = feat["car_truck"]
    pairs = feat["pairs"]
    least = sorted(pairs, key=lambda p: pairs[p]["sep"])[:3]
    if ct is None:
        lines.append("Car/truck confusion: not testable (too few car or truck LoCEs).")
    else:
        verdict = (
            "found: car/truck is the least separated pair"
            if ct["rank_sep"] == 1
            else f"NOT found by separation: car/truck ranks {ct['rank_sep']} of "
            f"{ct['n_pairs']} pairs (1 = least separated)"
        )
        lines += [
            f"**Car/truck confusion** ({a.feature}): {verdict}. Sep(car, truck) = "
            f"{ct['sep']:.3f}; least separated pairs: "
            + ", ".join(f"{p} {pairs[p]['sep']:.3f}" for p in least)
            + f". Overlap Ov(car <- truck) = {ct['overlap_car_from_truck']:.2f}, "
            f"Ov(truck <- car) = {ct['overlap_truck_from_car']:.2f} (rank "
            f"{ct['rank_overlap']} by mean overlap); centroid cosine "
            f"{ct['cosine']:.2f} (rank {ct['rank_cosine']}).",
        ]
        other = {
            k: v["car_truck"]["rank_sep"]
            for k, v in summary["features"].items()
            if v["car_truck"] is not None
        }
        lines.append(
            "Car/truck separation rank per feature: "
            + ", ".join(f"{k} {r}" for k, r in other.items())
            + "."
        )
    agn, pur = summary["agnostic"], summary["purity"]
    lines += [
        "",
        f"Label-agnostic GMM: k = {agn['k']} (BIC), ARI vs concepts "
        f"{agn['ari_concept']:.3f}, vs concept/sub-concept {agn['ari_concept_sub']:.3f}. "
        f"Adaptive HAC purity {pur['mean']:.3f} +- {pur['std']:.3f} with "
        f"{pur['clusters']:.1f} clusters ({config.analysis.purity_seeds} seeds).",
        "",
    ]
    ks = list(next(iter(summary["features"].values()))["retrieval"]["precision_at_k"])
    lines += [
        '**Retrieval** (mean precision@k, the reference\'s "mAP@k", and true AP):',
        "",
        "| feature | " + " | ".join(f"P@{k}" for k in ks) + " | AP |",
        "|---|" + "---|" * (len(ks) + 1),
    ]
    for name, v in summary["features"].items():
        r = v["retrieval"]
        cells = [f"{r['precision_at_k'][k]:.3f}" for k in ks]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {r['average_precision']:.3f} |"
        )
    boat = summary["outliers"].get("boat", {})
    if "road_auc" in boat:
        lines += [
            "",
            f"**Outliers**: boats on road (planted background bias, rate "
            f"{boat['road_rate']:.2f}) among the top {a.outlier_top} cosine "
            f"outliers: {boat['road_in_top']}; ROC AUC road-vs-water: "
            + ", ".join(f"{k} {v:.2f}" for k, v in boat["road_auc"].items())
            + ".",
        ]
    thr = [f"t={t}" for t in a.seg_thresholds]
    seg = summary["segmentation"]
    lines += [
        "",
        "**Centroid projection segmentation** (mean IoU with the class mask on "
        f"{config.data.num_eval_images} held-out scenes, images containing the "
        "concept; `ml` threshold columns, then the best threshold per layer):",
        "",
        "| concept | images | "
        + " | ".join(thr)
        + " | "
        + " | ".join(summary["layers"])
        + " |",
        "|---|---|" + "---|" * (len(thr) + len(summary["layers"])),
    ]
    for c, row in seg["ml"].items():
        best = [
            _f(
                max(
                    (seg[n][c][t] for t in thr if seg[n][c][t] is not None),
                    default=None,
                )
            )
            for n in summary["layers"]
        ]
        lines.append(
            f"| {c} | {row['n_images']} | "
            + " | ".join(_f(row[t]) for t in thr)
            + " | "
            + " | ".join(best)
            + " |"
        )
    return "\n".join(lines) + "\n"
