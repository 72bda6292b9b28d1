"""Figures of discovered concepts: reference grids and IoU heatmaps.

Drawn on `matplotlib.figure.Figure` objects (Agg canvas, no pyplot state),
one PNG per call. Each function is small so a shared style can wrap it.
"""

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from jaxcxai.concepts.discovery.references import References, reference_samples

__all__ = ["plot_references", "save_layer_references", "plot_iou_heatmap"]


def _image(a):
    a = np.asarray(a)
    if a.dtype != np.uint8:
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a, np.float32)
    return a[..., 0] if a.shape[-1] == 1 else a


def plot_references(
    refs: References, path, *, names=None, title=None, alpha=0.45, cmap="jet"
):
    """One grid: a row per concept, its top-n crops with the presence overlay.

    Each row's overlay shares one colour scale (0 to the row's max presence);
    the colourbar shows it for the last row drawn. Column titles give the
    rank and image score.

    Args:
      refs: `References` of k concepts.
      path: output PNG path.
      names: optional k row labels (default "concept j").
      title: figure title.
      alpha: overlay opacity.
      cmap: overlay colour map.

    Returns:
      `path`.
    """
    k, n = refs.indices.shape
    names = [f"concept {j}" for j in range(k)] if names is None else list(names)
    fig = Figure(figsize=(1.6 * n + 1.2, 1.6 * k + 0.6), layout="constrained")
    axes = np.asarray(fig.subplots(k, n, squeeze=False))
    overlay = None
    for j in range(k):
        vmax = max(float(refs.maps[j].max()), 1e-12)
        for i in range(n):
            ax = axes[j, i]
            ax.imshow(_image(refs.crops[j, i]), cmap="gray")
            overlay = ax.imshow(
                refs.maps[j, i], cmap=cmap, alpha=alpha, vmin=0, vmax=vmax
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(
                f"#{i + 1} img {refs.indices[j, i]}: {refs.scores[j, i]:.2g}",
                fontsize=7,
            )
        axes[j, 0].set_ylabel(names[j], fontsize=8)
    fig.colorbar(overlay, ax=axes[:, -1].tolist(), shrink=0.6, label="presence")
    fig.suptitle(title or "Concept reference samples")
    fig.savefig(path, dpi=100)
    return path


def save_layer_references(
    images,
    presence: Mapping[str, object],
    out_dir,
    *,
    n=6,
    crop=None,
    names: Mapping[str, Sequence[str]] | None = None,
    prefix="references",
):
    """Writes one reference-grid PNG per layer.

    Args:
      images: (N, H, W, ch) images.
      presence: layer name -> (N, h, w, k) presence maps.
      out_dir: output folder (created).
      n: samples per concept.
      crop: as `reference_samples`.
      names: optional layer name -> k concept names.
      prefix: file name prefix; files are `{prefix}_{layer}.png`.

    Returns:
      layer name -> PNG path.
    """
    os.makedirs(out_dir, exist_ok=True)
    out = {}
    for layer, pres in presence.items():
        refs = reference_samples(images, pres, n, crop=crop)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in layer)
        path = os.path.join(out_dir, f"{prefix}_{safe}.png")
        layer_names = None if names is None else names.get(layer)
        out[layer] = plot_references(
            refs, path, names=layer_names, title=f"Reference samples: {layer}"
        )
    return out


def plot_iou_heatmap(iou, concept_names, path, *, title=None, component_names=None):
    """Component-vs-concept IoU heatmap (k rows, c columns), values annotated.

    Returns:
      `path`.
    """
    iou = np.asarray(iou)
    k, c = iou.shape
    rows = (
        [f"comp {j}" for j in range(k)] if component_names is None else component_names
    )
    fig = Figure(figsize=(1.0 + 0.7 * c, 1.0 + 0.4 * k), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(iou, cmap="viridis", vmin=0, vmax=max(float(iou.max()), 1e-12))
    ax.set_xticks(range(c), list(concept_names), rotation=45, ha="right")
    ax.set_yticks(range(k), list(rows))
    ax.set_xlabel("concept")
    ax.set_ylabel("component")
    for j in range(k):
        for i in range(c):
            ax.text(
                i,
                j,
                f"{iou[j, i]:.2f}",
                ha="center",
                va="center",
                fontsize=6,
                color="w",
            )
    fig.colorbar(im, ax=ax, label="IoU")
    ax.set_title(title or "Component vs concept IoU")
    fig.savefig(path, dpi=100)
    return path
