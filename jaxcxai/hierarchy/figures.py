"""Figures of a semantic-hierarchies study (house style of `jaxcxai.plotting`).

* `dendrograms.png`: the named tree of every view with at most
  `FULL_TREE_MAX` classes (SynthAerial scenes), internal nodes labelled
  with their bank names at their merge points;
* `dendrograms_large.png`: the top `TOP_CLUSTERS` clusters of the tree of
  every larger view (ImageNet classes), named; leaf clusters show their size;
* `coverage_accuracy.png`: UAES selective accuracy and hierarchical
  correctness against leaf coverage, before and after alignment;
* `tradeoff.png`: per alignment strength lambda, zero-shot accuracy against
  triplet agreement (views with images) and embedding distortion against
  triplet agreement (every view).
"""

from __future__ import annotations

import os

import numpy as np

from jaxcxai import plotting

__all__ = ["figures", "named_dendrogram", "plot_coverage", "plot_dendrograms",
           "plot_tradeoff"]  # fmt: skip

FULL_TREE_MAX = 40  # classes drawn leaf by leaf
TOP_CLUSTERS = 24  # clusters shown of a larger tree


def named_dendrogram(ax, linkage, names, class_names, *, top=None, xlabel=""):
    """scipy's dendrogram of `linkage` (right-facing) with each internal
    node's name written at its merge point.

    Args:
      linkage: (n - 1, 4) scipy linkage; node n + t is row t.
      names: (2n - 1,) node names. class_names: (n,) leaf labels.
      top: show only the last `top` merges (leaf clusters get "name (size)").
    """
    from scipy.cluster import hierarchy

    z = np.asarray(linkage, np.float64)
    n = len(class_names)
    sizes = {n + t: int(z[t, 3]) for t in range(n - 1)}

    def label(i):
        if i < n:
            return class_names[i]
        return f"{names[i] or 'cluster'} ({sizes[i]})"

    kw = dict(truncate_mode="lastp", p=top) if top and top < n else {}
    r = hierarchy.dendrogram(z, ax=ax, orientation="right", leaf_label_func=label,
                             color_threshold=0, above_threshold_color="0.35",
                             leaf_font_size=7, **kw)  # fmt: skip
    y = {int(i): 5.0 + 10.0 * k for k, i in enumerate(r["leaves"])}
    for t in range(n - 1):  # children before parents
        a, b = int(z[t, 0]), int(z[t, 1])
        if a in y and b in y:
            y[n + t] = 0.5 * (y[a] + y[b])
            if names[n + t]:
                ax.text(z[t, 2], y[n + t], f" {names[n + t]}", fontsize=6.5,
                        va="center", ha="left", color="tab:blue")  # fmt: skip
    if kw:  # zoom onto the merges shown (the top ones are close together)
        lo, hi = z[n - top :, 2].min(), z[-1, 2]
        pad = 0.05 * (hi - lo) or 0.01
        ax.set_xlim(lo - pad, hi + 4 * pad)
    ax.set_xlabel(xlabel)


def _xlabel(linkage_name: str) -> str:
    what = "Ward distance" if linkage_name == "ward" else "cosine distance"
    return f"merge height ({what}, {linkage_name} linkage)"


def plot_dendrograms(results, trees, path, *, large: bool) -> str | None:
    """One panel per view (small class sets, or large ones with `large`)."""
    picked = [r for r in results["views"]
              if (r["num_classes"] > FULL_TREE_MAX) == large]  # fmt: skip
    if not picked:
        return None
    link = results["settings"]["verify"]["linkage"]
    rows = max(min(r["num_classes"], TOP_CLUSTERS) for r in picked)
    fig, axes = plotting.figure(len(picked), 1, squeeze=False,
                                size=(9.5, len(picked) * (0.28 * rows + 1.4)))  # fmt: skip
    for ax, r in zip(axes[:, 0], picked):
        z, names, classes = trees[r["name"]]
        named_dendrogram(ax, z, names, classes, xlabel=_xlabel(link),
                         top=TOP_CLUSTERS if large else None)  # fmt: skip
        s = r["structure"]
        part = f"top {TOP_CLUSTERS} clusters of " if large else ""
        plotting.title(ax, f"{r['name']} ({r['source']}): {part}{r['num_classes']} "
                           f"classes; T = {_num(s['triplet'])}, EdgeCons = "
                           f"{_num(s['edge'])}", width=90)  # fmt: skip
    fig.suptitle("Agglomerative trees of the class centroids, internal nodes "
                 "named by the concept bank (blue)")  # fmt: skip
    return plotting.save(fig, path)


def _num(x, fmt=".3f") -> str:
    return "n/a" if x is None else format(x, fmt)


def plot_coverage(results, path) -> str | None:
    """UAES curves before (solid) and after (dashed) alignment."""
    views = [r for r in results["views"] if "curve" in r]
    if not views:
        return None
    fig, axes = plotting.figure(1, 2, size=(11.0, 4.2))
    colors = plotting.colors(len(views))
    for r, col in zip(views, colors):
        lam = r["align"]["best_lam"]
        for curve, style, tag in ((r["curve"], "-", "before"),
                                  (r["align"].get("curve_after"), "--",
                                   f"after, lambda = {lam:g}")):  # fmt: skip
            if curve is None:
                continue
            cov = np.asarray(curve["coverage"])
            order = np.argsort(cov)
            for ax, k in zip(axes, ("selective_accuracy", "hierarchical_correctness")):
                y = np.asarray(curve[k], np.float64)[order]
                ax.plot(cov[order], y, style, color=col, label=f"{r['name']} ({tag})")
    axes[0].set_ylabel("leaf accuracy among covered images")
    axes[1].set_ylabel("hierarchical correctness (class in stop node)")
    for ax in axes:
        ax.set_xlabel("leaf coverage (share of images reaching a leaf)")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
    plotting.legend_outside(axes[1])
    fig.suptitle("UAES coverage-accuracy curves over the stopping threshold h*")
    return plotting.save(fig, path)


def plot_tradeoff(results, path) -> str:
    """Accuracy (or distortion) against plausibility per lambda."""
    fig, axes = plotting.figure(1, 2, size=(11.5, 4.4))
    views = results["views"]
    colors = plotting.colors(len(views))
    shown = [False, False]
    for r, col in zip(views, colors):
        al = r["align"]
        lams = ["inf" if x is None else f"{x:g}" for x in al["lams"]]
        trip = np.asarray(
            [np.nan if v is None else v for v in al["metrics"]["triplet"]]
        )
        xs = (al["metrics"].get("zero_shot_accuracy"), al["metrics"]["fidelity"])
        for i, (ax, x) in enumerate(zip(axes, xs)):
            if x is None:
                continue
            x = np.asarray([np.nan if v is None else v for v in x], np.float64)
            ax.plot(x, trip, "o-", color=col, label=r["name"], ms=4)
            for xi, yi, lab in zip(x, trip, lams):
                ax.annotate(lab, (xi, yi), fontsize=6.5, xytext=(3, 3),
                            textcoords="offset points")  # fmt: skip
            shown[i] = True
    axes[0].set_xlabel("zero-shot accuracy on held-out images")
    axes[1].set_xlabel("distortion: mean ||g(z) - z||^2 of the class centroids")
    for ax, ok in zip(axes, shown):
        ax.set_ylabel("triplet agreement T with the ontology")
        if ok:
            plotting.legend_outside(ax, "below")
        else:
            ax.text(
                0.5, 0.5, "no view with images", ha="center", transform=ax.transAxes
            )
    fig.suptitle("Accuracy-plausibility trade-off of the ontology-guided alignment "
                 "(points: lambda, inf = unaligned)")  # fmt: skip
    return plotting.save(fig, path)


def figures(results: dict, trees: dict, workdir: str) -> list[str]:
    """Writes every figure into `workdir`; returns their file names.

    Args:
      trees: {view name: (linkage, node names, class names)}.
    """
    out = [
        plot_dendrograms(results, trees, os.path.join(workdir, "dendrograms.png"),
                         large=False),
        plot_dendrograms(results, trees,
                         os.path.join(workdir, "dendrograms_large.png"), large=True),
        plot_coverage(results, os.path.join(workdir, "coverage_accuracy.png")),
        plot_tradeoff(results, os.path.join(workdir, "tradeoff.png")),
    ]  # fmt: skip
    return [f for f in out if f]
