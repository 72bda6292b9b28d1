"""Figures for LoCE analyses (matplotlib, no pyplot global state).

Every function returns a `matplotlib.figure.Figure`; save it with
`fig.savefig(path)`. Inputs are the outputs of `analysis` and
`clustering`.
"""

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse
from scipy.cluster import hierarchy

__all__ = [
    "plot_dendrogram",
    "plot_embedding",
    "plot_outlier_tiles",
    "plot_projection_overlay",
    "plot_retrieval_curves",
    "plot_separation_heatmap",
]


def _colors(n: int):
    from matplotlib import colormaps

    cmap = colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]


def _ellipse(mean, cov, color):
    # 1-sigma ellipse, axes 2 sqrt(2) sqrt(lambda) as in the reference figures.
    vals, vecs = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    w, h = 2 * np.sqrt(2) * np.sqrt(np.maximum(vals[::-1], 0))
    return Ellipse(mean, w, h, angle=angle, fill=False, color=color, lw=1.5)


def plot_embedding(
    emb, labels, gmms: Mapping | None = None, regions=None, title: str = ""
) -> Figure:
    """2-D embedding scatter per class, with GMM 1-sigma ellipses.

    Args:
      emb: (N, 2) embedding; labels: (N,) class labels.
      gmms: optional {class: CategoryGmm}; kept components get ellipses,
        outlier members are drawn as crosses.
      regions: optional (xs, ys, region) from `decision_regions`.
    """
    emb, labels = np.asarray(emb), np.asarray(labels)
    classes = np.unique(labels)
    colors = dict(zip(classes, _colors(len(classes))))
    fig = Figure(figsize=(7, 6))
    ax = fig.add_subplot()
    if regions is not None:
        xs, ys, region = regions
        ax.contourf(
            xs,
            ys,
            region,
            levels=np.arange(region.max() + 2) - 0.5,
            alpha=0.15,
            cmap="tab20",
        )
    for c in classes:
        pts = emb[labels == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=8, color=colors[c], label=str(c))
        if gmms is not None and c in gmms:
            cat = gmms[c]
            for k in np.flatnonzero(cat.keep):
                ax.add_patch(
                    _ellipse(cat.gmm.means_[k], cat.gmm.covariances_[k], colors[c])
                )
            odd = emb[cat.members[cat.outlier]]
            ax.scatter(odd[:, 0], odd[:, 1], marker="x", s=20, color=colors[c])
    ax.legend(fontsize=7, markerscale=2, loc="best")
    ax.set_title(title)
    return fig


def plot_dendrogram(
    z,
    labels,
    purity: tuple[float, int] | None = None,
    color_threshold: float | None = None,
    title: str = "",
) -> Figure:
    """Dendrogram with leaves labelled by class; purity and #clusters in the title."""
    labels = np.asarray(labels)
    fig = Figure(figsize=(10, 4))
    ax = fig.add_subplot()
    hierarchy.dendrogram(
        z,
        ax=ax,
        labels=[str(x) for x in labels],
        color_threshold=color_threshold,
        leaf_font_size=5,
    )
    if purity is not None:
        title = f"{title} purity={purity[0]:.3f}, {purity[1]} clusters".strip()
    ax.set_title(title)
    return fig


def plot_separation_heatmap(
    matrix,
    classes: Sequence,
    title: str = "",
    vmin: float = 0.0,
    vmax: float | None = None,
) -> Figure:
    """(K, K) heatmap, e.g. pairwise separation or overlap ratios."""
    matrix = np.asarray(matrix)
    fig = Figure(figsize=(6, 5))
    ax = fig.add_subplot()
    im = ax.imshow(matrix, vmin=vmin, vmax=vmax, cmap="viridis")
    ax.set_xticks(
        range(len(classes)), [str(c) for c in classes], rotation=90, fontsize=7
    )
    ax.set_yticks(range(len(classes)), [str(c) for c in classes], fontsize=7)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(
                j,
                i,
                f"{matrix[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=5,
                color="w",
            )
    fig.colorbar(im, ax=ax)
    ax.set_title(title)
    return fig


def plot_retrieval_curves(
    curves: Mapping[str, Mapping[int, float]],
    ylabel: str = "mean precision@k",
    title: str = "",
) -> Figure:
    """One line per setting (e.g. model/layer): value vs k."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for name, values in curves.items():
        ks = sorted(values)
        ax.plot(ks, [values[k] for k in ks], marker="o", label=name)
    ax.set_xlabel("k")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title(title)
    return fig


def plot_outlier_tiles(
    images: Sequence[np.ndarray], scores, n: int = 7, title: str = ""
) -> Figure:
    """The n highest-scoring images as tiles, each titled with its score."""
    scores = np.asarray(scores)
    top = np.argsort(-scores, kind="stable")[:n]
    fig = Figure(figsize=(2 * len(top), 2.4))
    for i, idx in enumerate(top):
        ax = fig.add_subplot(1, len(top), i + 1)
        ax.imshow(images[idx], cmap="gray" if np.ndim(images[idx]) == 2 else None)
        ax.set_title(f"#{idx}: {scores[idx]:.3g}", fontsize=7)
        ax.axis("off")
    fig.suptitle(title)
    return fig


def plot_projection_overlay(
    image, proj, threshold: float | None = None, title: str = ""
) -> Figure:
    """An image with a projection map (same H x W, values in [0, 1]) overlaid;
    with a threshold, the binarized region's contour is drawn too."""
    proj = np.asarray(proj, np.float32)
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    ax.imshow(image)
    ax.imshow(proj, alpha=0.5, cmap="jet", vmin=0, vmax=1)
    if threshold is not None:
        ax.contour(proj > threshold, levels=[0.5], colors="w", linewidths=1.5)
    ax.axis("off")
    ax.set_title(title)
    return fig
