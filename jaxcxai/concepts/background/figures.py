"""Figures of a background-bias study (house style of `jaxcxai.plotting`).

* `background_iou.png`: mean test IoU per (method, training randomisation)
  x test group, one heatmap panel per (concept, layer);
* `sample_views.png`: the first training object of the first concept in
  each training randomisation (a row each, its n views across).
"""

from __future__ import annotations

import os

import numpy as np

from jaxcxai import plotting

__all__ = ["figures", "plot_ious", "plot_views"]


def plot_ious(results: dict, path: str) -> str:
    """Heatmaps of mean IoU: rows (method, training kind), cols test groups."""
    cells = {(r["concept"], r["layer"], r["method"], r["train"], r["test"]): r["mean"]
             for r in results["iou"]}  # fmt: skip
    concepts, layers, groups = (
        results["concepts"],
        results["layers"],
        results["test_groups"],
    )
    rows = [(m, k) for m in results["methods"] for k in results["train_kinds"]]
    fig, axes = plotting.figure(len(concepts), len(layers), squeeze=False,
                                size=(5.5 * len(layers) + 1.0,
                                      0.45 * len(rows) * len(concepts) + 2.2 * len(concepts)))  # fmt: skip
    for i, c in enumerate(concepts):
        for j, layer in enumerate(layers):
            ax = axes[i, j]
            v = np.asarray(
                [[cells[c, layer, m, k, g] for g in groups] for m, k in rows]
            )
            plotting.heatmap(ax, v, [f"{m} / {k}" for m, k in rows], groups,
                             cbar_label="mean test IoU", vmin=0.0, vmax=1.0)  # fmt: skip
            ax.set_xlabel("test background group")
            ax.set_ylabel("method / training views")
            ax.set_title(f"{c}, {layer}")
    fig.suptitle(f"Concept segmentation IoU (80 x 80 grid) of held-out objects\nby "
                 f"test background, {results['num_test']} objects per concept")  # fmt: skip
    return plotting.save(fig, path)


def plot_views(samples: dict, path: str) -> str:
    """A row of training views per randomisation (first object)."""
    views = samples["views"]
    n = max(len(v) for v in views.values())
    fig, axes = plotting.figure(len(views), n, squeeze=False,
                                size=(max(1.6 * n + 1.0, 6.0), 1.7 * len(views) + 0.6))  # fmt: skip
    for i, (kind, v) in enumerate(views.items()):
        for j in range(n):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(v):
                ax.imshow(np.asarray(v[j]), interpolation="nearest")
            else:
                ax.axis("off")
            if j == 0:
                ax.set_ylabel(kind)
            if i == 0:
                ax.set_title(f"view {j + 1}")
    fig.suptitle(f"Training views of one {samples['concept']} object\nper "
                 "randomisation (rows)")  # fmt: skip
    return plotting.save(fig, path)


def figures(results: dict, samples: dict | None, workdir: str) -> list[str]:
    """Writes every figure into `workdir`; returns their file names."""
    out = [plot_ious(results, os.path.join(workdir, "background_iou.png"))]
    if samples:
        out.append(plot_views(samples, os.path.join(workdir, "sample_views.png")))
    return out
