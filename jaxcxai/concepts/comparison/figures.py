"""Figures of a comparison study (house style of `jaxcxai.plotting`).

* `similarity_<A>_vs_<B>.png` per network pair (A = B included): the
  layer x layer heatmaps side by side, Net2Vec mask IoU, CAV projection
  Pearson and, beside them, linear CKA of the raw activations; each with
  the relative-depth diagonal (dashed) and every row's best match (box).
* `best_matches.png`: per similarity, every cross-network best match as
  (relative depth of the layer, relative depth of its best match), against
  the diagonal of equal relative depth.
* `probe_iou.png`: the Net2Vec probes' held-out IoU along each network's depth.
"""

from __future__ import annotations

import os

import numpy as np

from jaxcxai import plotting
from jaxcxai.concepts.comparison.report import LABELS

__all__ = ["figures", "plot_best_matches", "plot_pair", "plot_probe_iou"]

_SCALE = {"iou": ("viridis", 0.0, 1.0, "IoU, mean over concepts"),
          "pearson": ("RdBu_r", -1.0, 1.0, "Pearson r, mean over concepts"),
          "cka": ("viridis", 0.0, 1.0, "linear CKA")}  # fmt: skip


def plot_pair(results: dict, pair: dict, path: str) -> str:
    """One PNG: a heatmap per similarity kind of network pair `pair`."""
    kinds = [k for k in LABELS if k in pair]
    la = results["networks"][pair["a"]]["layers"]
    lb = results["networks"][pair["b"]]["layers"]
    w = 1.8 + 0.55 * len(lb)
    fig, axes = plotting.figure(1, len(kinds), squeeze=False,
                                size=(w * len(kinds), 2.6 + 0.45 * len(la)))  # fmt: skip
    handles = []
    for ax, kind in zip(axes[0], kinds):
        cmap, lo, hi, label = _SCALE[kind]
        m = pair[kind]["matches"]["a_to_b"]
        plotting.heatmap(ax, pair[kind]["matrix"], la, lb, cbar_label=label,
                         cmap=cmap, vmin=lo, vmax=hi)  # fmt: skip
        diag = ax.plot([0, len(lb) - 1], [0, len(la) - 1], ls="--", color="black",
                       lw=1.5, label="equal relative depth")  # fmt: skip
        rows = [i for i, t in enumerate(m["tied"]) if not t]
        box = ax.scatter([m["best"][i] for i in rows], rows, marker="s", s=260,
                         facecolors="none", edgecolors="red", linewidths=1.8,
                         label="best match of the row (untied)")  # fmt: skip
        handles = [diag[0], box]
        ax.set_xlabel(f"{pair['b']} layer (shallow → deep)")
        ax.set_ylabel(f"{pair['a']} layer (shallow → deep)")
        plotting.title(ax, f"{LABELS[kind]}; mean best-match distance "
                       f"{_num(m['mean_distance'])} (random "
                       f"{_num(m['random_distance'])})", width=40)  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncol=2)
    fig.suptitle(f"{pair['a']} (rows) vs {pair['b']} (columns): layer similarity on "
                 f"{results['num_test']} held-out SynthAerial scenes")  # fmt: skip
    return plotting.save(fig, path)


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def plot_best_matches(results: dict, path: str) -> str:
    """Cross-network best matches against equal relative depth, per kind."""
    kinds = [k for k in LABELS if any(k in p for p in results["pairs"])]
    cross = [p for p in results["pairs"] if not p["self"]]
    ways = [(p, w) for p in cross for w in ("a_to_b", "b_to_a")]
    colors = plotting.colors(max(len(ways), 1))
    fig, axes = plotting.figure(1, len(kinds), squeeze=False,
                                size=(3.4 * len(kinds) + 2.6, 3.8))  # fmt: skip
    nets = results["networks"]
    for ax, kind in zip(axes[0], kinds):
        ax.plot(
            [0, 1], [0, 1], ls="--", color="black", lw=1, label="equal relative depth"
        )
        for (p, way), color in zip(ways, colors):
            if kind not in p:
                continue
            a, b = (p["a"], p["b"]) if way == "a_to_b" else (p["b"], p["a"])
            m = p[kind]["matches"][way]
            da, db = np.asarray(nets[a]["depth"]), np.asarray(nets[b]["depth"])
            rows = [i for i, t in enumerate(m["tied"]) if not t]
            shift = 0.012 * (ways.index((p, way)) - (len(ways) - 1) / 2)
            ax.plot(da[rows], db[np.asarray(m["best"], int)[rows]] + shift, "o-",
                    ms=5, color=color, alpha=0.8, label=f"{a} → {b}")  # fmt: skip
        r = results["checks"]["relative_depth"][kind]
        text = (f"mean distance {r['mean_distance']:.2f} vs random "
                f"{r['random_distance']:.2f}, p = {r['p_value']:.2g}"
                if r["passed"] is not None else "no cross-network pair")  # fmt: skip
        plotting.title(ax, f"{LABELS[kind]}: {text}", width=45)
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("relative depth of the layer in A")
        ax.set_ylabel("relative depth of its best match in B")
        ax.grid(alpha=0.3)
    plotting.legend_outside(axes[0, -1], title="A → B")
    fig.suptitle("Best-matching layers across networks: a point per layer with a "
                 "unique best match (pairs offset slightly so that overlaps show)")  # fmt: skip
    return plotting.save(fig, path)


def plot_probe_iou(results: dict, path: str) -> str:
    """Held-out Net2Vec IoU (mean over present concepts) along depth."""
    present = np.asarray(results["test_images_per_concept"]) > 0
    fig, ax = plotting.figure(size=(6.4, 3.6))
    nets = results["networks"]
    for (name, n), color in zip(nets.items(), plotting.colors(len(nets))):
        iou = np.asarray(n["probe_iou"])[:, present]
        y = iou.mean(1) if present.any() else np.zeros(len(n["depth"]))
        ax.plot(n["depth"], y, "o-", color=color, label=name)
    ax.set_xlabel("relative depth of the layer, index / (L - 1)")
    ax.set_ylabel("held-out set IoU")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    plotting.legend_outside(ax, title="network")
    plotting.title(ax, "Net2Vec probes: held-out set IoU with the true concept "
                   "masks, mean over the concepts present", width=70)  # fmt: skip
    return plotting.save(fig, path)


def figures(results: dict, workdir: str) -> list[str]:
    """Writes every figure into `workdir`; returns their file names."""
    out = [plot_pair(results, p, os.path.join(workdir, f"similarity_{p['a']}_vs_"
                                              f"{p['b']}.png"))
           for p in results["pairs"]]  # fmt: skip
    if any(not p["self"] for p in results["pairs"]):
        out.append(
            plot_best_matches(results, os.path.join(workdir, "best_matches.png"))
        )
    out.append(plot_probe_iou(results, os.path.join(workdir, "probe_iou.png")))
    return out
