"""Figures for LoCE analyses, in the house style (`jaxcxai.plotting`).

Every function returns a `matplotlib.figure.Figure`; save it with
`jaxcxai.plotting.save`. Inputs are the outputs of `analysis` and
`clustering`. Titles say exactly what is drawn; numbers in them are passed
in by the caller from the same results the report prints.
"""

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse, Patch, Rectangle
from scipy.cluster import hierarchy

from jaxcxai import plotting

__all__ = [
    "plot_dendrogram",
    "plot_embedding",
    "plot_outlier_tiles",
    "plot_projection_overlay",
    "plot_retrieval_curves",
    "plot_separation_heatmap",
]


def _ellipse(mean, cov, color):
    # 1-sigma ellipse, axes 2 sqrt(2) sqrt(lambda) as in the reference figures.
    vals, vecs = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    w, h = 2 * np.sqrt(2) * np.sqrt(np.maximum(vals[::-1], 0))
    return Ellipse(mean, w, h, angle=angle, fill=False, color=color, lw=1.5)


def plot_embedding(
    emb, labels, gmms: Mapping | None = None, regions=None, title: str = "",
    axis_name: str = "component",
):  # fmt: skip
    """2-D embedding scatter per class, with GMM 1-sigma ellipses.

    Args:
      emb: (N, 2) embedding; labels: (N,) class labels.
      gmms: optional {class: CategoryGmm}; kept components get ellipses,
        members of dropped (low-weight) components are drawn as crosses.
      regions: optional (xs, ys, region) from `decision_regions`.
      axis_name: what the axes are ("PC" for PCA, "UMAP", "t-SNE").
    """
    emb, labels = np.asarray(emb), np.asarray(labels)
    classes = np.unique(labels)
    colors = dict(zip(classes, plotting.colors(len(classes))))
    fig, ax = plotting.figure(size=(7.2, 5.0))
    if regions is not None:
        xs, ys, region = regions
        ax.contourf(xs, ys, region, levels=np.arange(region.max() + 2) - 0.5,
                    alpha=0.15, cmap="tab20")  # fmt: skip
    for c in classes:
        pts = emb[labels == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=9, color=colors[c], label=str(c))
        if gmms is not None and c in gmms:
            cat = gmms[c]
            for k in np.flatnonzero(cat.keep):
                ax.add_patch(
                    _ellipse(cat.gmm.means_[k], cat.gmm.covariances_[k], colors[c])
                )
            odd = emb[cat.members[cat.outlier]]
            ax.scatter(odd[:, 0], odd[:, 1], marker="x", s=28, color=colors[c])
    handles, names = ax.get_legend_handles_labels()
    if gmms is not None:
        handles += [
            Line2D([], [], color="0.3", lw=1.5, label="GMM component (1σ)"),
            Line2D([], [], color="0.3", marker="x", ls="", label="in a dropped component"),
        ]  # fmt: skip
        names += [h.get_label() for h in handles[-2:]]
    plotting.legend_outside(ax, handles=handles, labels=names, title="concept")
    ax.set_xlabel(f"{axis_name} 1")
    ax.set_ylabel(f"{axis_name} 2")
    plotting.title(ax, title)
    return fig


def plot_dendrogram(z, labels, title: str = "", metric_name: str = "distance"):
    """Dendrogram with leaves labelled and coloured by class.

    Args:
      z: scipy linkage matrix; labels: (n,) leaf classes.
      title: what was clustered and its purity, from the caller's results.
      metric_name: the linkage distance (y axis).
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    colors = dict(zip(classes, plotting.colors(len(classes))))
    fig, ax = plotting.figure(size=(10.0, 4.2))
    hierarchy.dendrogram(z, ax=ax, labels=[str(x) for x in labels],
                         color_threshold=0, above_threshold_color="0.4",
                         leaf_font_size=6)  # fmt: skip
    for tick in ax.get_xticklabels():
        tick.set_color(colors[tick.get_text()] if tick.get_text() in colors else "k")
    ax.set_ylabel(f"linkage {metric_name}")
    ax.set_xlabel("LoCE (leaf label = its concept)")
    plotting.title(ax, title, width=110)
    return fig


def plot_separation_heatmap(
    matrix, classes: Sequence, title: str = "", cbar_label: str = "",
    vmin: float = 0.0, vmax: float | None = None,
):  # fmt: skip
    """(K, K) heatmap with readable cell values, e.g. separation or overlap."""
    fig, ax = plotting.figure(size=(6.4, 5.2))
    names = [str(c) for c in classes]
    plotting.heatmap(ax, matrix, names, names, cbar_label=cbar_label or title,
                     vmin=vmin, vmax=vmax)  # fmt: skip
    ax.set_xlabel("concept (column)")
    ax.set_ylabel("concept (row)")
    plotting.title(ax, title)
    return fig


def plot_retrieval_curves(
    curves: Mapping[str, Mapping[int, float]],
    ylabel: str = "mean precision@k",
    title: str = "",
):
    """One line per setting (e.g. a layer, or `ml`): value vs k."""
    fig, ax = plotting.figure(size=(6.4, 3.8))
    for name, values in curves.items():
        ks = sorted(values)
        ax.plot(ks, [values[k] for k in ks], marker="o", label=name)
    ax.set_xlabel("k (nearest LoCEs retrieved)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    plotting.legend_outside(ax, title="LoCE feature")
    plotting.title(ax, title)
    return fig


def plot_outlier_tiles(
    images: Sequence[np.ndarray], scores, boxes=None, title: str = "",
    score_name: str = "score",
):  # fmt: skip
    """Tiles of the highest-scoring instances, in decreasing score order.

    Args:
      images: crops around each instance.
      scores: their outlier scores.
      boxes: optional (y0, x0, y1, x1) per crop: the instance, outlined.
      score_name: what the score is (shown in each tile's title).
    """
    scores = np.asarray(scores)
    top = np.argsort(-scores, kind="stable")
    fig, axes = plotting.figure(1, len(top), size=(1.7 * len(top) + 0.4, 2.4),
                                squeeze=False)  # fmt: skip
    for i, (ax, idx) in enumerate(zip(axes[0], top)):
        ax.imshow(images[idx], cmap="gray" if np.ndim(images[idx]) == 2 else None)
        if boxes is not None:
            y0, x0, y1, x1 = boxes[idx]
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0,
                                   fill=False, color="magenta", lw=1.5))  # fmt: skip
        ax.set_title(f"#{i + 1}: {score_name} {scores[idx]:.3g}", fontsize=7)
        ax.axis("off")
    fig.suptitle(title)
    return fig


def plot_projection_overlay(
    image, proj, threshold: float | None = None, truth=None, title: str = ""
):
    """An image with a projection map (same H x W, values in [0, 1]) overlaid.

    With `threshold`, the binarised region's outline is drawn (white); with
    `truth`, the true concept mask's outline (green).
    """
    proj = np.asarray(proj, np.float32)
    fig, ax = plotting.figure(size=(5.4, 4.4))
    ax.imshow(image)
    im = ax.imshow(proj, alpha=0.5, cmap="jet", vmin=0, vmax=1)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    cbar.set_label("projection, min-max normalised")
    handles = []
    if threshold is not None and (proj > threshold).any():
        ax.contour(proj > threshold, levels=[0.5], colors="w", linewidths=1.5)
        handles.append(
            Patch(fill=False, edgecolor="w", label=f"projection > {threshold}")
        )
    if truth is not None and np.asarray(truth).any():
        ax.contour(
            np.asarray(truth, float), levels=[0.5], colors="lime", linewidths=1.2
        )
        handles.append(Patch(fill=False, edgecolor="lime", label="true mask"))
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02),
                  ncol=2, facecolor="0.85")  # fmt: skip
    ax.axis("off")
    plotting.title(ax, title)
    return fig
