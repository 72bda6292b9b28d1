"""The markdown report of a LoCE study (`evaluation.analyze`)."""

from __future__ import annotations

import numpy as np

__all__ = ["markdown"]


def _f(v, fmt=".3f") -> str:
    return (
        "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:{fmt}}"
    )


def markdown(summary: dict, study) -> str:
    """The report: counts, own IoU, sub-concepts, car/truck, retrieval, segmentation."""
    a = study.analysis
    feat = summary["features"][a.feature]
    lines = [
        f"{summary['n']} per-instance LoCEs (layers {', '.join(summary['layers'])}) "
        f"of {study.data.num_images} SynthAerial scenes; per concept: "
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
        f"{pur['clusters']:.1f} clusters ({study.analysis.purity_seeds} seeds).",
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
        f"{study.data.num_eval_images} held-out scenes, images containing the "
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
