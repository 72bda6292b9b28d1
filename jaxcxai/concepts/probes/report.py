"""Report pieces of the concept-probe evaluation (`eval.concepts`).

Plain arrays and dicts in, no config: aggregation of a concept's probe runs,
the best layer per concept, held-out CAV accuracy, the set-IoU and TCAV
figures and the markdown report.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jaxcxai import plotting
from jaxcxai.concepts.probes import net2vec


def aggregate_probe(w: np.ndarray, b: np.ndarray) -> net2vec.Probe:
    """(K, R) runs -> one probe per concept (MEAN_NORMALIZED_DIST), (K, 1, ...)."""
    emb = net2vec.probe_to_embedding(net2vec.Probe(w, b))
    probe = net2vec.embedding_to_probe(net2vec.mean_normalized_embedding(emb, 1))
    return jax.tree.map(lambda x: np.asarray(x)[:, None], probe)


def best_layers(iou: dict, concepts) -> dict[str, str | None]:
    """Concept -> layer with the highest mean set IoU (first on ties); None for
    a concept without held-out images (its IoU says nothing)."""
    layers = list(iou)
    return {
        c: max(layers, key=lambda n: (iou[n][c]["set_iou_mean"], -layers.index(n)))
        if iou[layers[0]][c]["test_images"]
        else None
        for c in concepts
    }


def _cav_accuracy(acts, present, direction, norm, bias) -> np.ndarray:
    """Balanced held-out accuracy per run: concept images vs images without it."""
    z = acts @ (direction * norm[:, None]).T + bias  # (N, R)
    if present.all() or not present.any():
        return np.full(direction.shape[0], np.nan)
    return 0.5 * ((z[present] > 0).mean(0) + (z[~present] <= 0).mean(0))


def _save(fig, workdir: str, name: str) -> str:
    return plotting.save(fig, os.path.join(workdir, name))


def plot_iou(iou: dict, concepts, layers, workdir: str) -> str:
    """Grouped bars: set IoU per concept, one bar per layer (std over runs).

    Concepts without held-out images are left out: their IoU would only
    show the smoothing convention (1 when nothing is predicted).
    """
    shown = [c for c in concepts if iou[layers[0]][c]["test_images"]]
    absent = [c for c in concepts if c not in shown]
    fig, ax = plotting.figure(size=(1.6 + 0.75 * max(len(shown), 1), 3.6))
    x, width = np.arange(len(shown)), 0.8 / len(layers)
    for j, n in enumerate(layers):
        mean = [iou[n][c]["set_iou_mean"] for c in shown]
        std = [iou[n][c]["set_iou_std"] for c in shown]
        ax.bar(x + (j - (len(layers) - 1) / 2) * width, mean, width, yerr=std,
               label=n, capsize=2)  # fmt: skip
    ax.set_xticks(x, [f"{c}\n(n={iou[layers[0]][c]['test_images']})" for c in shown],
                  rotation=30, ha="right")  # fmt: skip
    ax.set_ylabel("held-out set IoU")
    ax.set_xlabel("concept (n = held-out images containing it)")
    ax.set_ylim(0, 1)
    plotting.legend_outside(ax, title="layer")
    note = f"; absent from the held-out images: {', '.join(absent)}" if absent else ""
    plotting.title(ax, "Net2Vec probes: set IoU per concept and layer, mean ± "
                   f"std over runs{note}", width=70)  # fmt: skip
    return _save(fig, workdir, "net2vec_iou.png")


def plot_tcav(tc: dict, layers, workdir: str, alpha: float = 0.05) -> str:
    """TCAV score per concept and layer (mean ± std over random runs), the
    random-vs-random mean as a black tick; green bars are significant."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    tested = list(tc[layers[0]])
    fig, axes = plotting.figure(1, len(layers), size=(1.6 + 2.8 * len(layers), 3.8),
                                sharey=True, squeeze=False)  # fmt: skip
    x = np.arange(len(tested))
    for ax, n in zip(axes[0], layers):
        r = [tc[n][c] for c in tested]
        ax.bar(x, [v["mean"] for v in r], yerr=[v["std"] for v in r], capsize=2,
               color=["tab:green" if v["significant"] else "tab:gray" for v in r])  # fmt: skip
        ax.scatter(x, [v["random_mean"] for v in r], marker="_", s=200, color="k",
                   zorder=3)  # fmt: skip
        ax.axhline(0.5, color="0.6", lw=0.8, ls=":")
        ax.set_title(f"layer {n}")
        ax.set_ylim(0, 1.05)
        ax.set_xticks(x, [f"{c} ({tc[n][c]['target']})" for c in tested],
                      rotation=60, ha="right", fontsize=7)  # fmt: skip
    axes[0, 0].set_ylabel("TCAV score (share of class images)")
    handles = [
        Patch(color="tab:green", label=f"significant (Bonferroni, {alpha})"),
        Patch(color="tab:gray", label="not significant"),
        Line2D([], [], color="k", marker="_", ls="", ms=12, label="random CAVs' mean"),
        Line2D([], [], color="0.6", ls=":", label="chance (0.5)"),
    ]  # fmt: skip
    plotting.legend_outside(axes[0, -1], handles=handles)
    fig.suptitle("TCAV: concept (target class) scores, mean ± std over random runs")
    return _save(fig, workdir, "tcav_scores.png")


def markdown(results: dict) -> str:
    """The report: IoU matrix with the best layer per concept, TCAV table."""
    layers, concepts = results["layers"], results["concepts"]
    iou, best = results["net2vec"], results["best_layer"]
    lines = [
        f"### Net2Vec: set IoU on {results['num_test']} held-out images",
        "",
        "Mean ± std over runs; the best layer per concept in bold. A concept "
        "absent from the held-out images has no IoU (n/a).",
        "",
        "| concept | held-out images | " + " | ".join(layers) + " | best layer |",
        "|---|---|" + "---|" * (len(layers) + 1),
    ]
    for c in concepts:
        cells = []
        n_img = iou[layers[0]][c]["test_images"]
        for n in layers:
            r = iou[n][c]
            cell = f"{r['set_iou_mean']:.3f} ± {r['set_iou_std']:.3f}"
            cells.append(
                "n/a" if not n_img else f"**{cell}**" if n == best[c] else cell
            )
        name = best[c] or "n/a"
        lines.append(f"| {c} | {n_img} | " + " | ".join(cells) + f" | {name} |")
    tc = results["tcav"]
    if not tc:
        return "\n".join(lines + ["", "TCAV: no concept had enough images."])
    tested = [c for c in concepts if c in tc[layers[0]]]
    lines += [
        "",
        "### TCAV: score of each concept for its target class",
        "",
        f"Cells: mean score over {len(tc[layers[0]][tested[0]]['scores'])} random "
        "runs (random-vs-random mean), Bonferroni-corrected p over "
        f"{results['tcav_num_tests']} tests"
        + (
            f"; * = significant at {results['tcav_significance']}"
            if any(tc[n][c]["significant"] for n in layers for c in tested)
            else f"; none is significant at {results['tcav_significance']}"
        )
        + "; acc = held-out CAV accuracy; p = n/a where concept and random "
        "scores are all equal (the t-test is undefined).",
        "",
        "| concept | target | " + " | ".join(layers) + " |",
        "|---|---|" + "---|" * len(layers),
    ]
    for c in tested:
        cells = []
        for n in layers:
            r = tc[n][c]
            p = "n/a" if r["p_corrected"] is None else f"{r['p_corrected']:.1e}"
            acc = "" if r["cav_accuracy"] is None else f", acc {r['cav_accuracy']:.2f}"
            star = " *" if r["significant"] else ""
            cells.append(f"{r['mean']:.2f} ({r['random_mean']:.2f}) p={p}{acc}{star}")
        lines.append(
            f"| {c} | {tc[layers[0]][c]['target']} | " + " | ".join(cells) + " |"
        )
    linear = results.get("tcav_linear_head_layers", [])
    if linear:
        lines += [
            "",
            f"Only global pooling and the linear classifier follow {', '.join(linear)}:"
            " the gradient is the same for every image there, so each CAV scores 0 "
            "or 1.",
        ]
    return "\n".join(lines)
