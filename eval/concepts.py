"""Evaluates the probes of `train.probes`: Net2Vec IoUs and TCAV significance.

    python -m eval.concepts --config configs/probes.py[:tiny] --workdir DIR \\
        [--config.backbone=workdirs/small_cnn]

Reads DIR (`probes.json`, `net2vec.npz`, `tcav.npz`, `data.npz`, the held-out
feature cache) and writes `DIR/concepts_report.md`, `DIR/concepts_results.json`
and figures: per-concept set IoU across layers, TCAV scores with significance
marks, and predicted concept masks over held-out images. Which layer segments
which planted concept best, and which concepts drive their scene's logit?
"""

from __future__ import annotations

import json
import logging
import math
import os

import jax
import numpy as np

from configs import cli
from jaxcxai import features, hostmem
from jaxcxai.concepts import bulk, net2vec, probe_pipeline, tcav
from jaxcxai.metric_writers import write_json_atomic
from train import probes as train_probes

REPORT, RESULTS = "concepts_report.md", "concepts_results.json"


def aggregate_probe(w: np.ndarray, b: np.ndarray) -> net2vec.Probe:
    """(K, R) runs -> one probe per concept (MEAN_NORMALIZED_DIST), (K, 1, ...)."""
    emb = net2vec.probe_to_embedding(net2vec.Probe(w, b))
    probe = net2vec.embedding_to_probe(net2vec.mean_normalized_embedding(emb, 1))
    return jax.tree.map(lambda x: np.asarray(x)[:, None], probe)


def _test_chunks(cache, layer: str, masks: np.ndarray):
    start = 0
    for part in cache.iter_chunks(layer):
        yield np.asarray(part, np.float32), masks[start : start + len(part)]
        start += len(part)


def net2vec_metrics(workdir: str, layers, concepts) -> dict:
    """Held-out KPIs per layer and concept: set IoU per run and aggregated."""
    probes = train_probes.load_npz(os.path.join(workdir, train_probes.NET2VEC))
    masks = train_probes.load_npz(os.path.join(workdir, train_probes.DATA))[
        "test_masks"
    ]
    cache = features.FeatureCache(os.path.join(workdir, "features", "test"))
    count = masks.reshape(masks.shape[:2] + (-1,)).any(-1).sum(0)
    out = {}
    for name in layers:
        w, b, thr = (probes[f"{name}.{k}"] for k in ("w", "b", "thr"))
        # The R runs and their aggregate as R + 1 probes: one evaluation pass.
        agg = aggregate_probe(w, b)
        both = net2vec.Probe(
            np.concatenate([w, agg.w], 1), np.concatenate([b, agg.b], 1)
        )
        kpi = bulk.evaluate_net2vec(
            both, _test_chunks(cache, name, masks), thresholds=thr
        )
        iou = np.asarray(kpi["set_iou"], np.float64)
        r = w.shape[1]
        out[name] = {
            c: {
                "test_images": int(count[k]),
                "set_iou_mean": float(iou[k, :r].mean()),
                "set_iou_std": float(iou[k, :r].std()),
                "set_iou_runs": iou[k, :r].tolist(),
                "aggregated_iou": float(iou[k, r]),
                "mean_sample_iou": float(np.mean(kpi["mean_sample_iou"][k, :r])),
                "ece": float(np.mean(kpi["ece"][k, :r])),
            }
            for k, c in enumerate(concepts)
        }
    return out


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


def tcav_metrics(config, workdir: str, net: dict, meta: dict, progress=True) -> dict:
    """TCAV scores, t-tests and held-out CAV accuracy per layer and concept."""
    cavs = train_probes.load_npz(os.path.join(workdir, train_probes.TCAV))
    if not cavs:
        return {}
    concepts, layers = meta["concepts"], meta["layers"]
    kept = [int(k) for k in cavs["concepts"]]
    rows = [i for i, k in enumerate(kept) if concepts[k] in meta["targets"]]
    if not rows:
        return {}
    tested = [concepts[kept[i]] for i in rows]
    targets = [meta["targets"][c] for c in tested]  # (name, index)
    data = train_probes.load_npz(os.path.join(workdir, train_probes.DATA))
    size = meta["image_size"]
    images, labels = [], []
    for name, index in dict(targets).items():
        batch = train_probes.class_images(config, name, size, data["test_image"])
        images.append(batch)
        labels.append(np.full(len(batch), index))
    class_acts = train_probes.extract(net["apply_fn"], np.concatenate(images), config,
                                      progress=progress)  # fmt: skip
    labels = np.concatenate(labels)
    present = data["test_masks"].reshape(data["test_masks"].shape[:2] + (-1,)).any(-1)
    cache = features.FeatureCache(os.path.join(workdir, "features", "test"))
    out = {}
    for name in layers:
        head = probe_pipeline.layer_head_fn(net["model"], net["variables"], name, size)
        res = probe_pipeline.tcav_layer(
            head,
            class_acts[name],
            labels,
            [t[1] for t in targets],
            cavs[f"{name}.direction"][rows],
            cavs[f"{name}.random_direction"],
            num_tests=len(tested) * len(layers),
            alpha=config.tcav.significance,
        )
        acts = np.asarray(
            tcav.flatten_acts(np.asarray(cache[name], np.float32), config.tcav.pool)
        )
        out[name] = {}
        for j, (c, i) in enumerate(zip(tested, rows)):
            acc = _cav_accuracy(acts, present[:, concepts.index(c)],
                                cavs[f"{name}.direction"][i], cavs[f"{name}.norm"][i],
                                cavs[f"{name}.bias"][i])  # fmt: skip
            p, pc = float(res["p"][j]), float(res["p_corrected"][j])
            out[name][c] = {
                "target": targets[j][0],
                "scores": res["scores"][j].tolist(),
                "random_scores": res["random_scores"][j].tolist(),
                "mean": float(res["mean"][j]),
                "std": float(res["std"][j]),
                "random_mean": float(res["random_mean"][j]),
                "t": None if math.isnan(res["t"][j]) else float(res["t"][j]),
                # Both samples constant: the t-test is undefined (SciPy's nan).
                "p": None if math.isnan(p) else p,
                "p_corrected": None if math.isnan(pc) else pc,
                "significant": bool(res["significant"][j]),
                "cav_accuracy": None if np.isnan(acc).all() else float(np.mean(acc)),
            }
    return out


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


def plot_masks(workdir: str, meta: dict, best: dict, num: int) -> str:
    """Per concept: held-out images with its largest masks; predicted mask of
    the aggregated probe of the best layer (red) and the label outline (green)."""
    plt = _pyplot()
    data = train_probes.load_npz(os.path.join(workdir, train_probes.DATA))
    probes = train_probes.load_npz(os.path.join(workdir, train_probes.NET2VEC))
    cache = features.FeatureCache(os.path.join(workdir, "features", "test"))
    images, masks = data["test_image"], data["test_masks"]
    concepts, size = meta["concepts"], masks.shape[-2:]
    fig, axes = plt.subplots(len(concepts), num, figsize=(1.7 * num, 1.7 * len(concepts)),
                             squeeze=False)  # fmt: skip
    for k, c in enumerate(concepts):
        area = masks[:, k].reshape(len(masks), -1).sum(1, dtype=np.int64)
        rows = [i for i in np.argsort(-area, kind="stable")[:num] if area[i] > 0]
        n = best[c]
        axes[k, 0].set_title(f"{c} ({n or 'absent'})", fontsize=8, loc="left")
        if n is not None:
            w, b = probes[f"{n}.w"][k : k + 1], probes[f"{n}.b"][k : k + 1]
            acts = np.asarray(cache[n], np.float32)[np.asarray(rows, np.int64)]
            acts = np.asarray(net2vec.apply_thresholds(acts, probes[f"{n}.thr"]))
            logits = net2vec.probe_logits(aggregate_probe(w, b), acts, size)
            pred = np.asarray(logits)[0, 0] > 0
        for j in range(num):
            ax = axes[k, j]
            ax.axis("off")
            if j >= len(rows):
                continue
            ax.imshow(images[rows[j]])
            ax.imshow(np.ma.masked_where(~pred[j], pred[j]), cmap="autumn_r", alpha=0.55,
                      vmin=0, vmax=1)  # fmt: skip
            if masks[rows[j], k].any():
                ax.contour(
                    masks[rows[j], k], levels=[0.5], colors="lime", linewidths=0.7
                )
    fig.tight_layout()
    return _save(fig, workdir, "concept_masks.png")


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


def evaluate(config, workdir: str, backbone: str | None = None, progress=True) -> dict:
    """Evaluates the fitted probes; writes the report, results and figures.

    Returns:
      {"markdown", "figures" (PNG names in workdir), "results"}.
    """
    with open(os.path.join(workdir, train_probes.META)) as f:
        meta = json.load(f)
    net = train_probes.load_backbone(backbone or config.backbone)
    concepts, layers = meta["concepts"], meta["layers"]
    iou = net2vec_metrics(workdir, layers, concepts)
    best = best_layers(iou, concepts)
    tc = tcav_metrics(config, workdir, net, meta, progress)
    results = {
        "concepts": concepts, "layers": layers, "num_test": meta["num_test"],
        "net2vec": iou, "best_layer": best, "tcav": tc,
        "tcav_num_tests": len(next(iter(tc.values()), {})) * len(layers),
        "tcav_significance": config.tcav.significance,
        "tcav_linear_head_layers": [
            n for n in layers if probe_pipeline.linear_head(net["model"], n)
        ],
    }  # fmt: skip
    figures = [plot_iou(iou, concepts, layers, workdir)]
    if tc:
        figures.append(plot_tcav(tc, layers, workdir))
    figures.append(plot_masks(workdir, meta, best, config.report.num_examples))
    md = markdown(results)
    write_json_atomic(os.path.join(workdir, RESULTS), results)
    text = (
        "# Concept probes\n\n"
        + md
        + "\n\n"
        + "\n".join(f"![{f}]({f})" for f in figures)
    )
    tmp = os.path.join(workdir, REPORT + ".tmp")
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, os.path.join(workdir, REPORT))
    return {"markdown": md, "figures": figures, "results": results}


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hostmem.keep_freed_memory()
    args = cli.parse_args(argv, description=__doc__.splitlines()[0])
    out = evaluate(args.config, args.workdir)
    print(out["markdown"])


if __name__ == "__main__":
    main()
