"""Report of a discovery study: markdown tables and figures.

Plain results in (`evaluation.evaluate`'s dict), no config. Figures use the
house style of `jaxcxai.plotting`: a reference-crop grid per reported layer
and method (the top crops of every component of seed 0 with its presence
map overlaid) and, per method, the component-vs-concept IoU heatmaps of
seed 0, one panel per layer.
"""

from __future__ import annotations

import os
import textwrap

import numpy as np

from jaxcxai import plotting
from jaxcxai.concepts.discovery.ice import presence_maps
from jaxcxai.concepts.discovery.references import reference_samples

__all__ = ["figures", "markdown", "plot_iou", "plot_references", "recovered"]

LABELS = {"nmf": "NMF (ICE)", "sae": "TopK SAE"}


def recovered(r: dict, num_seeds: int, majority: bool = True) -> list[str]:
    """Concepts recovered by a (layer, method): in at least half of the seeds
    (`majority`), else in any seed; by decreasing mean best IoU."""
    need = (num_seeds + 1) // 2 if majority else 1
    hits = {c: v for c, v in r["recoveries"].items() if v["seeds"] >= need}
    return sorted(hits, key=lambda c: -hits[c]["mean_iou"])


def _rule(results: dict) -> str:
    if results["threshold_rule"] == "area":
        return ("each component thresholded, per concept, at the value that "
                "leaves as many pixels as the concept covers (`area`)")  # fmt: skip
    q = results["top_quantile"]
    return f"each component thresholded at its top {100 * q:g}% presence quantile"


def markdown(results: dict) -> str:
    """The report section: summary table, concept x dictionary IoU table."""
    layers, methods, names = results["layers"], results["methods"], results["concepts"]
    s, thr = results["num_seeds"], results["iou_threshold"]
    d = results["dictionaries"]
    lines = [
        f"### Discovered dictionaries: {len(layers)} layers x {len(methods)} methods "
        f"x {s} seeds on {results['num_images']} scenes",
        "",
        f"R²: reconstruction R² of the layer's activation rows (mean ± std over "
        f"seeds); stability: mean matched cosine between seeds (Hungarian, "
        f"{s * (s - 1) // 2} pairs; min in brackets); dead: components never "
        "active (seed mean); fidelity: share of scenes whose predicted scene is "
        "unchanged when the layer is replaced by its reconstruction (seed mean); "
        "CAV cos: best cosine of a component with each concept's mean-difference "
        "CAV of the same layer, averaged over concepts (seed 0); recovered: "
        f"planted concepts localized by some component with IoU ≥ {thr} "
        f"({_rule(results)}) in at least half of the seeds, with the mean best "
        "IoU and the number of seeds.",
        "",
        "| layer | method | k | R² | stability | dead | fidelity | CAV cos | "
        "recovered |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in layers:
        for m in methods:
            r = d[n][m]
            rec = recovered(r, s)
            rv = r["recoveries"]
            cells = ", ".join(
                f"{c} {rv[c]['mean_iou']:.2f} ({rv[c]['seeds']}/{s})" for c in rec
            )
            cav = (
                "n/a"
                if r["cav_best_cos_mean"] is None
                else f"{r['cav_best_cos_mean']:.2f}"
            )
            lines.append(
                f"| {n} | {LABELS[m]} | {r['k']} | {np.mean(r['r2']):.3f} ± "
                f"{np.std(r['r2']):.3f} | {r['stability']['mean']:.3f} "
                f"({r['stability']['min']:.2f}) | {np.mean(r['dead']):.1f} | "
                f"{np.mean(r['fidelity']['agreement']):.2f} | {cav} | "
                f"{cells or 'none'} |"
            )
    per_layer = []
    for n in layers:
        found = sorted({c for m in methods for c in recovered(d[n][m], s)})
        per_layer.append(f"{n}: {', '.join(found) or 'none'}")
    lines += [
        "",
        "**Planted concepts recovered per layer** (by either method, in at least "
        "half of the seeds): " + "; ".join(per_layer) + ".",
    ]
    cols = [(n, m) for n in layers for m in methods]
    lines += [
        "",
        f"### Best component IoU per planted concept (mean over {s} seeds)",
        "",
        "Cells: the best component's IoU with the concept, averaged over seeds; "
        f"bold where it reaches {thr} in at least half of the seeds. `bg:` marks "
        "a background region; images: scenes containing the concept; area: its "
        "share of all pixels.",
        "",
        "| concept | images | area | "
        + " | ".join(f"{n} {m.upper()}" for n, m in cols)
        + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    for j, c in enumerate(names):
        cells = []
        for n, m in cols:
            r = d[n][m]
            v = float(np.mean(np.asarray(r["best_iou"])[:, j]))
            cells.append(f"**{v:.2f}**" if c in recovered(r, s) else f"{v:.2f}")
        lines.append(
            f"| {c} | {results['concept_images'][c]} | "
            f"{100 * results['concept_area'][c]:.2f}% | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def _mosaic(refs, vmax, cmap, gap=2):
    """The crops of `refs` as one (k, n) RGB mosaic, presence blended in with
    an opacity that grows with presence (the scene stays visible where the
    component is off)."""
    k, n, ch, cw = refs.maps.shape
    out = np.ones((k * (ch + gap) - gap, n * (cw + gap) - gap, 3))
    rgb = refs.crops[..., :3].astype(np.float64) / 255.0
    frac = np.clip(refs.maps / vmax, 0.0, 1.0)
    heat = cmap(frac)[..., :3]
    alpha = 0.75 * frac[..., None]
    blend = (1 - alpha) * rgb + alpha * heat
    for j in range(k):
        for i in range(n):
            y, x = j * (ch + gap), i * (cw + gap)
            out[y : y + ch, x : x + cw] = blend[j, i]
    return out


def plot_references(images, presences: dict, results: dict, path, *, layer, n, crop):
    """One PNG per layer: per method, a row per component (seed 0) with its
    top-n crops and the presence overlay; rows labelled with the component's
    best-matching planted concept and IoU.

    Args:
      images: (N, S, S, 3) uint8.
      presences: method -> (N, h, w, k) presence maps of seed 0.
      results: `evaluation.evaluate`'s dict.
    """
    from matplotlib import cm, colormaps, colors

    cmap = colormaps["plasma"]
    methods = list(presences)
    refs = {m: reference_samples(images, presences[m], n, crop=crop) for m in methods}
    k = max(r.indices.shape[0] for r in refs.values())
    size = (3.6 + 3.4 * len(methods) * n / 6, 1.1 + 0.45 * k)  # room for labels
    fig, axes = plotting.figure(1, len(methods), squeeze=False, size=size)
    side = next(iter(refs.values())).crops.shape[2]
    for ax, m in zip(axes[0], methods):
        r = refs[m]
        vmax = max(float(r.maps.max()), 1e-12)
        ax.imshow(_mosaic(r, vmax, cmap), interpolation="nearest")
        best = results["dictionaries"][layer][m]["best_concept_seed0"]
        step_y, step_x = r.maps.shape[2] + 2, r.maps.shape[3] + 2
        ax.set_yticks([(j + 0.5) * step_y - 1 for j in range(r.indices.shape[0])],
                      [f"comp {j}: {b['concept']} {b['iou']:.2f}"
                       for j, b in enumerate(best)], fontsize=7)  # fmt: skip
        ax.set_xticks([(i + 0.5) * step_x - 1 for i in range(r.indices.shape[1])],
                      [str(i + 1) for i in range(r.indices.shape[1])])  # fmt: skip
        ax.set_xlabel("rank of the scene by peak presence")
        ax.tick_params(length=0)
        ax.set_title(f"{LABELS[m]}: best concept, IoU", fontsize=9)
        sm = cm.ScalarMappable(colors.Normalize(0, vmax), cmap)
        fig.colorbar(sm, ax=ax, shrink=0.6, pad=0.02,
                     label=f"{m.upper()} presence (code)")  # fmt: skip
    text = (f"Reference crops of {layer} (seed 0): per component, the top {n} "
            f"scenes by peak presence, {side} px crops around the peak with the "
            "upsampled presence overlaid; tick label = best-matching planted "
            "concept and its IoU")  # fmt: skip
    fig.suptitle("\n".join(textwrap.wrap(text, 110)), fontsize=9)
    return plotting.save(fig, path)


def plot_iou(results: dict, method: str, path) -> str:
    """Component-vs-concept IoU heatmaps of seed 0, a panel per layer."""
    layers, names = results["layers"], results["concepts"]
    thr, s = results["iou_threshold"], results["num_seeds"]
    k = max(results["dictionaries"][n][method]["k"] for n in layers)
    size = (2.4 + 0.55 * len(names), (1.3 + 0.28 * k) * len(layers))
    fig, axes = plotting.figure(len(layers), 1, squeeze=False, size=size)
    for ax, n in zip(axes[:, 0], layers):
        r = results["dictionaries"][n][method]
        iou = np.asarray(r["iou_seed0"])
        rows = [f"comp {j}" for j in range(iou.shape[0])]
        plotting.heatmap(ax, iou, rows, names, cbar_label="IoU", vmin=0.0, vmax=1.0,
                         annotate=True)  # fmt: skip
        ax.set_ylabel("component")
        rec = ", ".join(recovered(r, s)) or "none"
        text = f"{n}: recovered (IoU ≥ {thr}, ≥ half of {s} seeds): {rec}"
        plotting.title(ax, text, width=90)
    axes[-1, 0].set_xlabel("planted concept (bg: = background region)")
    fig.suptitle(f"{LABELS[method]}: IoU of each component's presence map with each "
                 "planted concept mask, seed 0")  # fmt: skip
    return plotting.save(fig, path)


def figures(st, fitted: dict, results: dict, workdir: str) -> list[str]:
    """Writes every figure into `workdir`; returns their file names."""
    out = []
    images = fitted["data"]["image"]
    for n in st.report.reference_layers:
        spatial = fitted["acts"][n].shape[:3]
        presences = {m: presence_maps(fitted["dictionaries"][n][m].codes[0], spatial)
                     for m in st.methods}  # fmt: skip
        out.append(plot_references(
            images, presences, results, os.path.join(workdir, f"references_{n}.png"),
            layer=n, n=st.report.num_references, crop=st.report.crop,
        ))  # fmt: skip
    for m in st.methods:
        out.append(plot_iou(results, m, os.path.join(workdir, f"iou_{m}.png")))
    return out
