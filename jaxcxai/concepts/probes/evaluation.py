"""Evaluating a fitted probe study: Net2Vec IoUs and TCAV significance.

`evaluate(study, workdir, net)` reads what `run.fit` wrote (the held-out
masks, probes, CAVs and cached activations) and writes
`concepts_report.md`, `concepts_results.json` and figures: per-concept set
IoU across layers, TCAV scores with significance marks, and predicted concept
masks over held-out images. Which layer segments which planted concept best,
and which concepts drive their scene's logit?
"""

from __future__ import annotations

import json
import math
import os
import textwrap

import numpy as np

from jaxcxai import features, plotting
from jaxcxai.concepts.probes import cavs as cav_lib
from jaxcxai.concepts.probes import kpis, net2vec, pipeline, study
from jaxcxai.concepts.probes.report import (
    _cav_accuracy,
    _save,
    aggregate_probe,
    best_layers,
    markdown,
    plot_iou,
    plot_tcav,
)
from jaxcxai.concepts.probes.study import ProbeStudy
from jaxcxai.metric_writers import write_json_atomic, write_text_atomic
from jaxcxai.training.backbone import TrainedBackbone

__all__ = [
    "REPORT",
    "RESULTS",
    "evaluate",
    "net2vec_metrics",
    "plot_masks",
    "tcav_metrics",
]

REPORT, RESULTS = "concepts_report.md", "concepts_results.json"


def _test_chunks(cache, layer: str, masks: np.ndarray):
    start = 0
    for part in cache.iter_chunks(layer):
        yield np.asarray(part, np.float32), masks[start : start + len(part)]
        start += len(part)


def net2vec_metrics(workdir: str, layers, concepts) -> dict:
    """Held-out KPIs per layer and concept: set IoU per run and aggregated."""
    probes = study.load_npz(os.path.join(workdir, study.NET2VEC))
    masks = study.load_npz(os.path.join(workdir, study.DATA))["test_masks"]
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
        kpi = kpis.evaluate_net2vec(
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


def tcav_metrics(st: ProbeStudy, workdir: str, net: TrainedBackbone, meta: dict,
                 progress=True) -> dict:  # fmt: skip
    """TCAV scores, t-tests and held-out CAV accuracy per layer and concept."""
    cavs = study.load_npz(os.path.join(workdir, study.TCAV))
    if not cavs:
        return {}
    concepts, layers = meta["concepts"], meta["layers"]
    kept = [int(k) for k in cavs["concepts"]]
    rows = [i for i, k in enumerate(kept) if concepts[k] in meta["targets"]]
    if not rows:
        return {}
    tested = [concepts[kept[i]] for i in rows]
    targets = [meta["targets"][c] for c in tested]  # (name, index)
    data = study.load_npz(os.path.join(workdir, study.DATA))
    size = meta["image_size"]
    images, labels = [], []
    for name, index in dict(targets).items():
        batch = study.class_images(st, name, size, data["test_image"])
        images.append(batch)
        labels.append(np.full(len(batch), index))
    class_acts = study.extract(net, np.concatenate(images), st, progress=progress)  # fmt: skip
    labels = np.concatenate(labels)
    present = data["test_masks"].reshape(data["test_masks"].shape[:2] + (-1,)).any(-1)
    cache = features.FeatureCache(os.path.join(workdir, "features", "test"))
    out = {}
    for name in layers:
        head = pipeline.layer_head_fn(net.model, net.variables, name, size)
        res = pipeline.tcav_layer(
            head,
            class_acts[name],
            labels,
            [t[1] for t in targets],
            cavs[f"{name}.direction"][rows],
            cavs[f"{name}.random_direction"],
            num_tests=len(tested) * len(layers),
            alpha=st.tcav.significance,
        )
        acts = np.asarray(
            cav_lib.flatten_acts(np.asarray(cache[name], np.float32), st.tcav.pool)
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


def plot_masks(workdir: str, meta: dict, best: dict, num: int) -> str:
    """Per concept: held-out images with its largest masks; predicted mask of
    the aggregated probe of the best layer (red) and the label outline (green)."""
    from matplotlib.patches import Patch

    data = study.load_npz(os.path.join(workdir, study.DATA))
    probes = study.load_npz(os.path.join(workdir, study.NET2VEC))
    cache = features.FeatureCache(os.path.join(workdir, "features", "test"))
    images, masks = data["test_image"], data["test_masks"]
    size = masks.shape[-2:]
    shown = [(k, c) for k, c in enumerate(meta["concepts"]) if best[c] is not None]
    absent = [c for c in meta["concepts"] if best[c] is None]
    fig, axes = plotting.figure(max(len(shown), 1), num, squeeze=False,
                                size=(1.6 * num + 0.6, 1.6 * len(shown) + 1.2))  # fmt: skip
    for row, (k, c) in enumerate(shown):
        area = masks[:, k].reshape(len(masks), -1).sum(1, dtype=np.int64)
        rows = [i for i in np.argsort(-area, kind="stable")[:num] if area[i] > 0]
        n = best[c]
        axes[row, 0].set_title(f"{c}: layer {n}", fontsize=8, loc="left")
        w, b = probes[f"{n}.w"][k : k + 1], probes[f"{n}.b"][k : k + 1]
        acts = np.asarray(cache[n], np.float32)[np.asarray(rows, np.int64)]
        acts = np.asarray(net2vec.apply_thresholds(acts, probes[f"{n}.thr"]))
        logits = net2vec.probe_logits(aggregate_probe(w, b), acts, size)
        pred = np.asarray(logits)[0, 0] > 0
        for j in range(num):
            ax = axes[row, j]
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
    fig.legend(handles=[Patch(color="red", alpha=0.55, label="predicted mask"),
                        Patch(fill=False, edgecolor="lime", label="true mask")],
               loc="outside lower center", ncol=2)  # fmt: skip
    note = f" ({', '.join(absent)}: no held-out image)" if absent else ""
    fig.suptitle(textwrap.fill("Net2Vec: the aggregated probe of each concept's best "
                               "layer on the held-out images with the largest masks"
                               + note, 60))  # fmt: skip
    return _save(fig, workdir, "concept_masks.png")


def evaluate(st: ProbeStudy, workdir: str, net: TrainedBackbone, progress=True) -> dict:
    """Evaluates the fitted probes; writes the report, results and figures.

    Returns:
      {"markdown", "figures" (PNG names in workdir), "results"}.
    """
    meta_path = os.path.join(workdir, study.META)
    if not os.path.exists(meta_path):
        raise FileNotFoundError(f"{meta_path} not found; fit the probes first")
    with open(meta_path) as f:
        meta = json.load(f)
    concepts, layers = meta["concepts"], meta["layers"]
    iou = net2vec_metrics(workdir, layers, concepts)
    best = best_layers(iou, concepts)
    tc = tcav_metrics(st, workdir, net, meta, progress)
    results = {
        "concepts": concepts, "layers": layers, "num_test": meta["num_test"],
        "net2vec": iou, "best_layer": best, "tcav": tc,
        "tcav_num_tests": len(next(iter(tc.values()), {})) * len(layers),
        "tcav_significance": st.tcav.significance,
        "tcav_linear_head_layers": [
            n for n in layers if pipeline.linear_head(net.model, n)
        ],
    }  # fmt: skip
    figures = [plot_iou(iou, concepts, layers, workdir)]
    if tc:
        figures.append(plot_tcav(tc, layers, workdir, st.tcav.significance))
    figures.append(plot_masks(workdir, meta, best, st.report.num_examples))
    md = markdown(results)
    write_json_atomic(os.path.join(workdir, RESULTS), results)
    text = (
        "# Concept probes\n\n"
        + md
        + "\n\n"
        + "\n".join(f"![{f}]({f})" for f in figures)
    )
    write_text_atomic(os.path.join(workdir, REPORT), text + "\n")
    return {"markdown": md, "figures": figures, "results": results}
