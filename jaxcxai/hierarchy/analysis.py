"""Extract, verify and align one view (Schwalbe et al. 2026, arXiv:2603.26798).

Per `sources.View` (xai.md 3.2; the pipeline is a reconstruction):

* `extract`: the agglomerative binary tree of the class centroids
  (`tree.build`) and its internal nodes named from the concept bank
  (`naming.match_bank`), with match margins and each name's ontology node;
* `structure`: triplet agreement, cophenetic correlation, edge consistency
  and leaf cover against the ontology (`consistency`);
* `inference`: flat zero-shot accuracy and UAES at a threshold calibrated
  on the training images for a target leaf coverage, plus the whole
  coverage-accuracy curve (`uaes`), where the view has images;
* `worst_placed`: the classes whose tree neighbours are farthest in the
  ontology (placement error, Reconstruction);
* `align_view`: the lambda sweep of the ontology-guided alignment
  (`align.lambda_sweep`), each lambda re-extracted and re-verified.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from jaxcxai.hierarchy import align, consistency, fuzzy, naming, sources, trees, uaes
from jaxcxai.hierarchy import ontology as onto_lib
from jaxcxai.hierarchy import tree as tree_lib

__all__ = [
    "Extracted",
    "align_view",
    "extract",
    "inference",
    "structure",
    "subset_view",
    "worst_placed",
]

UAES_KEYS = ("leaf_accuracy", "coverage", "selective_accuracy",
             "hierarchical_correctness", "stop_depth", "mistake_severity")  # fmt: skip


class Extracted(NamedTuple):
    """A named tree: `tree.Tree`, (M,) names, (M,) margins (NaN at leaves),
    (M,) ontology node of each name (-1: unnamed)."""

    tree: tree_lib.Tree
    names: list[str]
    margins: np.ndarray
    node_onto: np.ndarray


def extract(view, centroids=None, bank=None, *, linkage="average",
            ancestor_constraint=False) -> Extracted:  # fmt: skip
    """Tree of `centroids` (default the view's) named from `bank` (default
    the view's bank); leaves keep their class names."""
    cent = view.centroids if centroids is None else centroids
    bank = view.bank_emb if bank is None else bank
    t = tree_lib.build(cent, linkage)
    ok = None
    if ancestor_constraint:
        ok = naming.bank_ancestor_matrix(view.onto.parent, view.bank_onto, view.leaves)
    index, margin = naming.match_bank(t, bank, bank_names=view.bank_names,
                                      exclude=view.exclude, ancestor_ok=ok)  # fmt: skip
    names = [view.bank_names[i] if i >= 0 else "" for i in index]
    for c, node in enumerate(t.leaves):
        names[node] = view.class_names[c]
    node_onto = naming.node_ontology_index(t, index, view.bank_onto, view.leaves)
    return Extracted(t, names, np.asarray(margin, np.float64), node_onto)


def structure(view, ext: Extracted, *, onto_distance="path", triplet_max_n=0,
              key=None) -> dict:  # fmt: skip
    """Tree-level and edge-level consistency of a named tree (floats)."""
    t, onto = ext.tree, view.onto
    internal = t.internal
    return {
        "triplet": consistency.triplet_agreement(
            t.parent, t.leaves, onto.parent, view.leaves,
            max_n=triplet_max_n or None, key=key),
        "cophenetic": consistency.cophenetic_correlation(
            t, onto.parent, view.leaves, onto_kind=onto_distance),
        "edge": consistency.edge_consistency(t, ext.node_onto, onto),
        "leaf_cover": consistency.leaf_cover(t, ext.node_onto, onto),
        "margin": float(np.nanmean(ext.margins[internal])) if internal.size else np.nan,
    }  # fmt: skip


def inference(view, t, samples, classifier, train_samples, *, temperature,
              target_coverage, curve=False) -> dict:  # fmt: skip
    """Zero-shot accuracy and UAES metrics of the held-out images on tree
    `t` (h* calibrated on `train_samples`); `curve`: the coverage curve."""
    labels = np.asarray(view.labels)
    pred = np.argmax(np.asarray(samples) @ np.asarray(classifier).T, axis=1)
    h = uaes.calibrate(train_samples, t, temperature, target_coverage)
    inf = uaes.infer(samples, t, temperature, h)
    m = uaes.metrics(inf, labels, t, onto=(view.onto.parent, view.leaves))
    out = {"zero_shot_accuracy": float(np.mean(pred == labels)), "h_star": float(h),
           **{k: float(m[k]) for k in UAES_KEYS}}  # fmt: skip
    if curve:
        c = uaes.coverage_curve(samples, labels, t, temperature)
        # JSON-able: NaN (selective accuracy at zero coverage) -> None.
        out["curve"] = {k: [float(x) if np.isfinite(x) else None for x in np.asarray(v)]
                        for k, v in c.items() if k != "h_star"}  # fmt: skip
    return out


def _lca_node(onto, a: int, b: int) -> int:
    up = set(onto_lib.ancestors(onto, a))
    return next(u for u in onto_lib.ancestors(onto, b) if u in up)


def worst_placed(view, ext: Extracted, k: int = 10) -> list[dict]:
    """The k classes placed worst in the tree relative to the ontology.

    Reconstruction: a class's placement error is the mean height of the
    ontology LCA above it over its tree siblings (the other classes under its
    tree parent): 1 when a sibling shares its ontology parent, up to its
    depth when only the root joins them. Ties are broken by class name.

    Returns:
      k rows {"class", "error", "neighbours" (up to 3 siblings, nearest
      centroid first), "num_siblings", "onto_lca" (name of the ontology LCA
      with the nearest sibling), "tree_parent" (the tree parent's name)}.
    """
    t, onto = ext.tree, view.onto
    lca = trees.lca_depth(onto.parent, view.leaves)
    height = np.diag(lca)[:, None] - lca  # (n, n) height of LCA above row class
    sets = np.asarray(t.leaf_sets)
    rows = []
    for c, node in enumerate(np.asarray(t.leaves)):
        sib = np.flatnonzero(sets[t.parent[node]])
        sib = sib[sib != c]
        order = sib[np.argsort(-(view.centroids[sib] @ view.centroids[c]))]
        lca_node = _lca_node(onto, int(view.leaves[c]), int(view.leaves[order[0]]))
        rows.append({"class": view.class_names[c], "error": float(height[c, sib].mean()),
                     "neighbours": [view.class_names[j] for j in order[:3]],
                     "num_siblings": int(sib.size), "onto_lca": onto.names[lca_node],
                     "tree_parent": ext.names[t.parent[node]]})  # fmt: skip
    rows.sort(key=lambda r: (-r["error"], r["class"]))
    return rows[:k]


def subset_view(view, pick) -> sources.View:
    """The view on classes `pick` (ontology restricted, bank entries outside
    it dropped, images of other classes dropped, labels renumbered)."""
    pick = np.asarray(pick)
    onto, leaves = onto_lib.restrict(
        view.onto, [view.onto.ids[i] for i in view.leaves[pick]]
    )
    new_node = {k: i for i, k in enumerate(onto.ids)}
    bank_new = np.asarray([new_node.get(view.onto.ids[i], -1) for i in view.bank_onto])
    keep = bank_new >= 0
    relabel = np.full(len(view.class_names), -1)
    relabel[pick] = np.arange(pick.size)
    extra = {}
    if view.samples is not None:
        for s, lab in (("samples", "labels"), ("train_samples", "train_labels")):
            m = relabel[np.asarray(getattr(view, lab))] >= 0
            extra[s] = np.asarray(getattr(view, s))[m]
            extra[lab] = relabel[np.asarray(getattr(view, lab))[m]]
        extra["classifier"] = np.asarray(view.classifier)[pick]
    return dataclasses.replace(
        view, class_names=tuple(view.class_names[i] for i in pick),
        centroids=np.asarray(view.centroids)[pick], onto=onto, leaves=leaves,
        bank_emb=np.asarray(view.bank_emb)[keep],
        bank_names=tuple(np.asarray(view.bank_names, object)[keep]),
        bank_onto=bank_new[keep].astype(np.int32),
        exclude=tuple(view.exclude[i] for i in pick), **extra)  # fmt: skip


def _evaluate(view, verify, key):
    """lambda_sweep's evaluate(aligned, transform) for one view."""

    def evaluate(aligned, transform):
        if view.bank_kind == "same":
            bank = np.asarray(transform(view.bank_emb))
        elif view.bank_kind == "centroid":
            bank = sources.centroid_bank(
                aligned, view.onto, view.leaves, view.bank_onto
            )[0]
        else:
            bank = view.bank_emb
        ext = extract(view, aligned, bank, linkage=verify.linkage,
                      ancestor_constraint=verify.ancestor_constraint)  # fmt: skip
        out = structure(view, ext, onto_distance=verify.onto_distance,
                        triplet_max_n=verify.triplet_max_n, key=key)  # fmt: skip
        if view.has_images:  # UAES only at the best lambda (`align_view`)
            samples, classifier, _ = _moved(view, aligned, transform)
            pred = np.argmax(np.asarray(samples) @ np.asarray(classifier).T, axis=1)
            out["zero_shot_accuracy"] = float(np.mean(pred == np.asarray(view.labels)))
        return out

    return evaluate


def _moved(view, aligned, transform):
    """(samples, classifier, train samples) after aligning the view's space:
    an image view moves the images, a text view the class prompts."""
    if view.modality == "image":
        return (np.asarray(transform(view.samples)), view.classifier,
                np.asarray(transform(view.train_samples)))  # fmt: skip
    return view.samples, aligned, view.train_samples


def align_view(key, view, settings, verify) -> dict:
    """The lambda sweep on (a subset of) the view's classes.

    Lambda = inf is the unaligned baseline on the same classes. Per lambda:
    the structure measures of the re-extracted tree and, with images,
    zero-shot accuracy. Returns {"lams", "num_classes", "metrics": {name:
    [per lambda]}, "best_lam" (best triplet agreement)} and, for views with
    images, "after" (zero-shot and UAES metrics at the best lambda) and
    "curve_after" (its coverage-accuracy curve).
    """
    n = len(view.class_names)
    if settings.max_classes and n > settings.max_classes:
        pick = np.unique(
            np.linspace(0, n - 1, settings.max_classes).round().astype(int)
        )
        view = subset_view(view, pick)
    lca = trees.lca_depth(view.onto.parent, view.leaves)
    dist = fuzzy.target_distances(
        lca, settings.beta, view.centroids, kind=settings.target
    )
    p = fuzzy.fuzzy_graph(dist, min(settings.n_neighbors, len(view.class_names)))
    zero_shot = None
    if settings.zero_shot_weight > 0 and view.has_images:
        zero_shot = align.ZeroShot(view.train_samples, view.train_labels,
                                   settings.zero_shot_weight, verify.temperature,
                                   view.modality == "image")  # fmt: skip
    lams = (np.inf, *settings.lams)
    sweep = align.lambda_sweep(
        key, view.centroids, p, lams, evaluate=_evaluate(view, verify, key),
        kind=settings.kind, steps=settings.steps, lr=settings.lr,
        min_dist=settings.min_dist, hidden=settings.hidden, zero_shot=zero_shot,
    )  # fmt: skip
    metrics = {k: [None if not np.isfinite(x) else float(x) for x in v]
               for k, v in sweep.metrics.items()}  # fmt: skip
    trip = np.nan_to_num(np.asarray(sweep.metrics["triplet"][1:], np.float64), nan=-1)
    best = 1 + int(np.argmax(trip))
    out = {"lams": [None, *map(float, settings.lams)], "num_classes": len(view.class_names),
           "metrics": metrics, "best_lam": float(lams[best])}  # fmt: skip
    if view.has_images:
        params = {k: v[best] for k, v in sweep.params.items()}
        transform = lambda x: np.asarray(sweep.apply(params, np.asarray(x)))  # noqa: E731
        aligned = transform(sources.normalize(view.centroids))
        bank = {
            "same": lambda: transform(view.bank_emb),
            "shared": lambda: view.bank_emb,
            "centroid": lambda: sources.centroid_bank(
                aligned, view.onto, view.leaves, view.bank_onto
            )[0],
        }
        ext = extract(view, aligned, bank[view.bank_kind](), linkage=verify.linkage,
                      ancestor_constraint=verify.ancestor_constraint)  # fmt: skip
        after = inference(
            view, ext.tree, *_moved(view, aligned, transform), curve=True,
            temperature=verify.temperature, target_coverage=verify.target_coverage,
        )  # fmt: skip
        out["curve_after"] = after.pop("curve")
        out["after"] = {
            k: None if not np.isfinite(x) else float(x) for k, x in after.items()
        }
    return out
