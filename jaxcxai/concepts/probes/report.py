"""Report pieces of the concept-probe evaluation (`eval.concepts`).

Plain arrays and dicts in, no config: aggregation of a concept's probe runs,
the best layer per concept, held-out CAV accuracy, the set-IoU and TCAV
figures and the markdown report.
"""

from __future__ import annotations

import os

import jax
import numpy as np

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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, workdir: str, name: str) -> str:
    path = os.path.join(workdir, name)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    _pyplot().close(fig)
    os.replace(tmp, path)
    return name


def plot_iou(iou: dict, concepts, layers, workdir: str) -> str:
    """Grouped bars: set IoU per concept, one bar per layer (std over runs)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(concepts), 3.4))
    x, width = np.arange(len(concepts)), 0.8 / len(layers)
    for j, n in enumerate(layers):
        mean = [iou[n][c]["set_iou_mean"] for c in concepts]
        std = [iou[n][c]["set_iou_std"] for c in concepts]
        ax.bar(x + (j - (len(layers) - 1) / 2) * width, mean, width, yerr=std,
               label=n, capsize=2)  # fmt: skip
    ax.set_xticks(x, concepts, rotation=30, ha="right")
    ax.set_ylabel("held-out set IoU")
    ax.set_ylim(0, 1)
    ax.legend(title="layer", fontsize=8)
    fig.tight_layout()
    return _save(fig, workdir, "net2vec_iou.png")


def plot_tcav(tc: dict, layers, workdir: str) -> str:
    """TCAV scores per concept and layer; random mean as a tick, * significant."""
    plt = _pyplot()
    tested = list(tc[layers[0]])
    fig, axes = plt.subplots(1, len(layers), figsize=(0.8 + 2.6 * len(layers), 3.4),
                             sharey=True, squeeze=False)  # fmt: skip
    x = np.arange(len(tested))
    for ax, n in zip(axes[0], layers):
        r = [tc[n][c] for c in tested]
        ax.bar(x, [v["mean"] for v in r], yerr=[v["std"] for v in r], capsize=2,
               color=["tab:green" if v["significant"] else "tab:gray" for v in r])  # fmt: skip
        ax.scatter(x, [v["random_mean"] for v in r], marker="_", s=200, color="k",
                   zorder=3, label="random")  # fmt: skip
        for i, v in enumerate(r):
            if v["significant"]:
                ax.text(i, min(v["mean"] + v["std"] + 0.03, 1.02), "*", ha="center")
        ax.set_title(n)
        ax.set_ylim(0, 1.1)
        ax.set_xticks(x, [f"{c}\n({tc[n][c]['target']})" for c in tested],
                      rotation=60, ha="right", fontsize=7)  # fmt: skip
    axes[0, 0].set_ylabel("TCAV score")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _save(fig, workdir, "tcav_scores.png")


def markdown(results: dict) -> str:
    """The report: IoU matrix with the best layer per concept, TCAV table."""
    layers, concepts = results["layers"], results["concepts"]
    iou, best = results["net2vec"], results["best_layer"]
    lines = [
        f"### Net2Vec: set IoU on {results['num_test']} held-out images",
        "",
        "Mean ± std over runs; the best layer per concept in bold. A concept "
        "absent from the held-out images scores 1 by the smoothing convention "
        "when its probe predicts nothing.",
        "",
        "| concept | held-out images | " + " | ".join(layers) + " | best layer |",
        "|---|---|" + "---|" * (len(layers) + 1),
    ]
    for c in concepts:
        cells = []
        for n in layers:
            r = iou[n][c]
            cell = f"{r['set_iou_mean']:.3f} ± {r['set_iou_std']:.3f}"
            cells.append(f"**{cell}**" if n == best[c] else cell)
        n_img = iou[layers[0]][c]["test_images"]
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
        f"{results['tcav_num_tests']} tests; * = significant at "
        f"{results['tcav_significance']}; acc = held-out CAV accuracy.",
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
