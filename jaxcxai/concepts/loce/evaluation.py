"""Analysing a fitted LoCE study (the LoCE downstream analyses) and reporting it.

`analyze(study, workdir, net)` reads what `study.fit` wrote (`store/`,
`instances.npz`) and writes `loce_report.md`, `loce_results.json` and PNG
figures: the 2-D embedding with per-concept GMM ellipses and the
label-agnostic GMM, a dendrogram, separation and overlap heatmaps, retrieval
curves, outlier tiles and centroid-projection overlays. The questions asked
of SynthAerial's planted structure: are the two sub-concepts of each concept
separate clusters (adjusted Rand index), and is car/truck the least
separated concept pair?
"""

from __future__ import annotations

import math
import os

import numpy as np
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from jaxcxai.concepts.loce import analysis as la
from jaxcxai.concepts.loce import clustering as lc
from jaxcxai.concepts.loce import figures, report, store
from jaxcxai.concepts.loce.study import STORE, LoceStudy, image_size, load_table
from jaxcxai.concepts.loce.summary import (
    _pad,
    feature_vectors,
    iou_summary,
    retrieval,
    separation_summary,
    subconcept_ari,
)
from jaxcxai.metric_writers import write_json_atomic, write_text_atomic
from jaxcxai.training.backbone import TrainedBackbone

__all__ = ["REPORT", "RESULTS", "analyze", "main_feature_analysis", "outlier_analysis"]

REPORT, RESULTS = "loce_report.md", "loce_results.json"


def main_feature_analysis(x, concepts, subs, backgrounds, a) -> dict:
    """Embedding, GMMs, ARIs, purity and outliers of the analysed feature.

    Args:
      x: (N, C) LoCEs; concepts, subs, backgrounds: (N,) names.
      a: the config's `analysis` section.
    """
    n = len(concepts)
    _, s_max = lc.adaptive_settings(n)
    emb = lc.embed_2d(
        x,
        a.embedding,
        n_neighbors=int(np.clip(s_max, 5, n - 1)),
        metric=a.hac_metric,
    )
    gmms = lc.category_gmms(emb, concepts, a.k_max, a.outlier_weight)
    agn, agn_assign = lc.label_agnostic_gmm(emb, a.k_max_agnostic)
    hac2 = subconcept_ari(x, concepts, subs, a.hac_method, a.hac_metric)
    per_concept = {}
    for c, g in gmms.items():
        m = g.members
        if len(np.unique(subs[m])) < 2:
            continue
        per_concept[str(c)] = dict(
            n=int(len(m)),
            sub_counts={str(s): int(np.sum(subs[m] == s)) for s in np.unique(subs[m])},
            k_bic=int(g.gmm.n_components),
            ari_gmm=float(adjusted_rand_score(subs[m], g.component)),
            ari_agnostic=float(adjusted_rand_score(subs[m], agn_assign[m])),
            ari_hac2=hac2.get(str(c), float("nan")),
        )
    for v in per_concept.values():
        v["found"] = bool(max(v["ari_gmm"], v["ari_hac2"]) >= a.ari_found)
    pur = lc.purity_over_seeds(
        x,
        concepts,
        n_per_class=a.purity_per_class,
        seeds=range(a.purity_seeds),
        method=a.hac_method,
        metric=a.hac_metric,
    )
    return dict(
        x=x,
        emb=emb,
        gmms=gmms,
        agnostic_assign=agn_assign,
        subconcepts=per_concept,
        agnostic=dict(
            k=int(agn.n_components),
            ari_concept=float(adjusted_rand_score(concepts, agn_assign)),
            ari_concept_sub=float(
                adjusted_rand_score(
                    [f"{c}/{s}" for c, s in zip(concepts, subs)], agn_assign
                )
            ),
        ),
        purity=dict(
            mean=float(np.mean(pur["purity"])),
            std=float(np.std(pur["purity"])),
            clusters=float(np.mean(pur["n_clusters"])),
        ),
        outliers=outlier_analysis(x, concepts, backgrounds, a),
    )


def outlier_analysis(x, concepts, backgrounds, a) -> dict:
    """Cosine outlier scores per concept; for boats, how the planted road
    boats rank (ROC AUC of each score for road vs water)."""
    from sklearn.metrics import roc_auc_score

    out = {}
    for c in a.outlier_concepts:
        members = np.flatnonzero(concepts == c)
        if len(members) < 3:
            continue
        scores = np.asarray(la.cosine_outlier_scores(x[members]))
        top = members[np.argsort(-scores, kind="stable")[: a.outlier_top]]
        res = dict(members=members, scores=scores, top=top)
        road = backgrounds[members] == "road"
        if c == "boat" and 0 < road.sum() < len(members):
            nn = min(20, len(members) - 1)
            all_scores = dict(
                cosine=scores,
                lof=la.lof_scores(x[members], n_neighbors=nn),
                iforest=la.iforest_scores(x[members]),
            )
            res["road_auc"] = {
                k: float(roc_auc_score(road, s)) for k, s in all_scores.items()
            }
            res["road_in_top"] = int(np.sum(backgrounds[top] == "road"))
            res["road_rate"] = float(road.mean())
        out[c] = res
    return out


def analyze(study: LoceStudy, workdir: str, net: TrainedBackbone, progress=True):
    """Runs every analysis on the store in `workdir`; writes report and figures.

    Returns:
      {"markdown", "figures" (names in workdir), "results" (JSON-able)}.
    """
    a = study.analysis
    results = store.load_results(os.path.join(workdir, STORE))
    table = load_table(workdir)
    if len(table["row"]) != results.meta["n"]:
        raise ValueError(
            f"{workdir}: instance table has {len(table['row'])} rows, the store "
            f"{results.meta['n']}"
        )
    layers = list(study.layers)
    feats = feature_vectors(results, layers)
    if a.feature not in feats:
        raise ValueError(f"analysis.feature={a.feature!r}; valid: {list(feats)}")
    concepts = np.asarray(results.index["concept"])
    counts = {str(c): int(np.sum(concepts == c)) for c in np.unique(concepts)}
    keep = np.isin(concepts, [c for c, n in counts.items() if n >= a.min_per_concept])
    if len(np.unique(concepts[keep])) < 2:
        raise ValueError(
            f"need two concepts with >= {a.min_per_concept} LoCEs; have {counts}"
        )
    cons, subs = concepts[keep], np.asarray(results.index["sub_concept"])[keep]
    bgs = np.asarray(results.index["background"])[keep]
    width = max(x.shape[1] for x in feats.values())
    per_feature = {}
    # Small 2-D GMMs and linkages: BLAS threads only add contention.
    with threadpool_limits(1):
        for name, x in feats.items():
            x = _pad(x[keep], width)
            per_feature[name] = dict(
                separation=separation_summary(x, cons, a.separation_metric),
                retrieval=retrieval(x, cons, a.retrieval_ks, a.retrieval_metric),
                ari_hac2=subconcept_ari(x, cons, subs, a.hac_method, a.hac_metric),
            )
        main = main_feature_analysis(feats[a.feature][keep], cons, subs, bgs, a)
    size = image_size(study, net.image_size)
    seg = figures.segmentation(
        study,
        {name: feats[name][keep] for name in layers},
        cons,
        net.apply,
        size,
        progress,
    )
    summary = dict(
        n=int(len(concepts)),
        counts=counts,
        analysed=sorted(set(cons.tolist())),
        layers=layers,
        feature=a.feature,
        iou=iou_summary(results, layers, concepts),
        features={
            k: dict(
                retrieval=v["retrieval"],
                ari_hac2=v["ari_hac2"],
                pairs=v["separation"]["pairs"],
                car_truck=v["separation"].get("car_truck"),
            )
            for k, v in per_feature.items()
        },
        subconcepts=main["subconcepts"],
        agnostic=main["agnostic"],
        purity=main["purity"],
        outliers={
            c: {k: v for k, v in o.items() if k.startswith("road")}
            for c, o in main["outliers"].items()
        },
        segmentation=seg["iou"],
    )
    names = figures.figures(
        workdir,
        study,
        {k: v[keep] for k, v in table.items()},
        cons,
        main,
        per_feature,
        seg,
    )
    markdown = report.markdown(summary, study)
    write_text_atomic(os.path.join(workdir, REPORT), markdown)
    write_json_atomic(os.path.join(workdir, RESULTS), _clean(summary))
    return {"markdown": markdown, "figures": names, "results": _clean(summary)}


def _clean(obj):
    """JSON-safe copy: NaN/inf -> None, numpy -> Python, keys as strings."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
