"""Summaries of LoCE analyses over plain arrays (`evaluation`).

Feature vectors per layer and multi-layer, pairwise separation, overlap and
centroid cosine with the rank of the car/truck pair, sub-concept ARIs of
2-cluster HAC cuts, retrieval and own-projection IoU per concept.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score

from jaxcxai.concepts.loce import analysis as la
from jaxcxai.concepts.loce import clustering as lc
from jaxcxai.concepts.loce import store

CONFUSED_PAIR = ("car", "truck")


def feature_vectors(results: store.LoceResults, layers) -> dict[str, np.ndarray]:
    """{layer: (N, C_l)} LoCEs plus "ml": the layers concatenated (ML-LoCE)."""
    out = {name: np.asarray(results.layers[name]["loce"]) for name in layers}
    out["ml"] = np.concatenate([out[name] for name in layers], axis=1)
    return out


def _pad(x: np.ndarray, width: int) -> np.ndarray:
    # Appending zero coordinates changes no Euclidean or cosine distance (nor
    # centroid direction), and one (N, width) shape compiles each jitted
    # analysis once for all features instead of once per layer.
    return np.pad(x, ((0, 0), (0, width - x.shape[1])))


def _pair_rank(values: dict, pair, descending: bool) -> int:
    order = sorted(values, key=lambda p: -values[p] if descending else values[p])
    return order.index(pair) + 1


def separation_summary(x, labels, metric: str = "euclidean") -> dict:
    """Pairwise separation, overlap and centroid cosine; where car/truck ranks.

    Returns:
      {"classes", "separation" (K, K), "overlap" (K, K), "pairs": {"a/b":
      {sep, overlap, cosine}}, and for car/truck (if both present) its rank
      among the pairs: 1 = least separated / most overlapping / most similar}.
    """
    classes, sep = la.pairwise_separation(x, labels, metric)
    _, ov = la.overlap_ratio(x, labels, metric)
    _, cents = la.centroids(x, labels)
    sep, ov, cents = np.asarray(sep), np.asarray(ov), np.asarray(cents, np.float64)
    unit = cents / np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
    cos = unit @ unit.T
    names = [str(c) for c in classes]
    pairs = {}
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            pairs[(names[i], names[j])] = dict(
                sep=float(sep[i, j]),
                overlap=float((ov[i, j] + ov[j, i]) / 2),
                cosine=float(cos[i, j]),
            )
    out = {
        "classes": names,
        "separation": sep,
        "overlap": ov,
        "pairs": {f"{a}/{b}": v for (a, b), v in pairs.items()},
    }
    ct = tuple(sorted(CONFUSED_PAIR))
    if ct in pairs:
        i, j = names.index(CONFUSED_PAIR[0]), names.index(CONFUSED_PAIR[1])
        get = lambda key: {p: v[key] for p, v in pairs.items()}
        out["car_truck"] = dict(
            pairs[ct],
            overlap_car_from_truck=float(ov[i, j]),
            overlap_truck_from_car=float(ov[j, i]),
            rank_sep=_pair_rank(get("sep"), ct, descending=False),
            rank_overlap=_pair_rank(get("overlap"), ct, descending=True),
            rank_cosine=_pair_rank(get("cosine"), ct, descending=True),
            n_pairs=len(pairs),
        )
    return out


def subconcept_ari(x, concepts, subs, method="ward", metric="euclidean") -> dict:
    """Per concept: ARI of a 2-cluster HAC cut of its raw LoCEs vs sub-concepts."""
    from scipy.cluster import hierarchy

    out = {}
    for c in np.unique(concepts):
        m = concepts == c
        if m.sum() < 3 or len(np.unique(subs[m])) < 2:
            continue
        z = lc.hac(x[m], method, metric)
        cut = hierarchy.fcluster(z, 2, criterion="maxclust")
        out[str(c)] = float(adjusted_rand_score(subs[m], cut))
    return out


def retrieval(x, labels, ks, metric) -> dict:
    """Mean precision@k (the reference's "mAP@k") and true average precision."""
    ks = [k for k in ks if k <= len(labels) - 1]
    prec = la.mean_precision_at_k(x, labels, ks, metric=metric)
    ap, _ = la.average_precision(x, labels, metric=metric)
    return {"precision_at_k": prec, "average_precision": ap}


def iou_summary(results, layers, concepts) -> dict:
    """Own-projection IoU per layer and concept: mean, std, fraction zero."""
    out = {}
    for name in layers:
        iou = np.asarray(results.layers[name]["iou"])
        out[name] = {
            str(c): dict(
                mean=float(iou[concepts == c].mean()),
                std=float(iou[concepts == c].std()),
                zero=float(np.mean(iou[concepts == c] == 0)),
            )
            for c in np.unique(concepts)
        }
    return out
