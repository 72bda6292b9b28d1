"""Figures of a stability study (house style of `jaxcxai.plotting`).

* `retrieval_vs_layer.png`: S, consistency and separation along the layers,
  one line per CAV view (1D/2D/3D), at the largest sample count (mean and
  std over the concepts);
* `consistency_vs_samples.png`: consistency against the sample count, one
  panel per abstraction level, colour = view, line style = layer;
* `attribution_sign_flips.png`: the attribution sign-flip rate per layer
  for 1D and 3D CAVs, without and with SmoothGrad.
"""

from __future__ import annotations

import os

import numpy as np

from jaxcxai import plotting

__all__ = ["figures", "plot_attribution", "plot_layers", "plot_samples"]

_STYLES = ("-", "--", ":", "-.")
_LEVELS = {"object": "object concepts", "subconcept": "sub-concepts",
           "scene": "scene classes"}  # fmt: skip
_METRICS = (("stability", "S = separation x consistency"),
            ("consistency", "consistency K (mean pairwise cosine)"),
            ("separation", "held-out separation"))  # fmt: skip


def _mean_std(rows, field):
    v = [r[field] for r in rows]
    return (np.mean(v), np.std(v)) if v else (np.nan, np.nan)


def plot_layers(results: dict, path: str) -> str:
    """S / consistency / separation vs layer, a line per view."""
    n, layers = max(results["samples"]), results["layers"]
    fig, axes = plotting.figure(1, 3, size=(12.0, 3.8))
    colors = plotting.colors(len(results["dims"]))
    for ax, (field, label) in zip(axes, _METRICS):
        for dim, col in zip(results["dims"], colors):
            stats = [_mean_std([r for r in results["retrieval"] if r["layer"] == lay
                                and r["dim"] == dim and r["samples"] == n], field)
                     for lay in layers]  # fmt: skip
            mean, std = np.asarray(stats).T
            ax.errorbar(range(len(layers)), mean, yerr=std, marker="o", capsize=3,
                        color=col, label=f"{dim.upper()} CAV")  # fmt: skip
        ax.set_xticks(range(len(layers)), layers)
        ax.set_xlabel("layer (shallow → deep)")
        ax.set_ylabel(label)
        ax.set_ylim(-0.05 if field == "stability" else 0.0, 1.05)
    plotting.legend_outside(axes[-1])
    k = len({r["concept"] for r in results["retrieval"] if r["samples"] == n})
    fig.suptitle(f"Retrieval stability along the layers at n = {n} scenes per side "
                 f"(mean ± std over {k} concepts, R = {results['runs']} runs)")  # fmt: skip
    return plotting.save(fig, path)


def plot_samples(results: dict, path: str) -> str:
    """Consistency vs sample count: a panel per level, colour = view."""
    level = {c["name"]: c["level"] for c in results["concepts"]}
    levels = [lev for lev in _LEVELS if lev in level.values()]
    fig, axes = plotting.figure(1, len(levels), squeeze=False,
                                size=(3.8 * len(levels) + 2.0, 3.6), sharey=True)  # fmt: skip
    colors = plotting.colors(len(results["dims"]))
    for ax, lev in zip(axes[0], levels):
        for dim, col in zip(results["dims"], colors):
            for i, layer in enumerate(results["layers"]):
                ns, ks = [], []
                for n in results["samples"]:
                    got = [r["consistency"] for r in results["retrieval"]
                           if level[r["concept"]] == lev and r["layer"] == layer
                           and r["dim"] == dim and r["samples"] == n]  # fmt: skip
                    if got:
                        ns.append(n)
                        ks.append(np.mean(got))
                ax.plot(ns, ks, marker="o", color=col, ls=_STYLES[i % len(_STYLES)],
                        label=f"{dim.upper()} {layer}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xticks(results["samples"], [str(n) for n in results["samples"]])
        ax.set_xlabel("n (concept and non-concept scenes per run)")
        ax.set_title(_LEVELS[lev])
        ax.set_ylim(0.0, 1.05)
    axes[0, 0].set_ylabel("consistency K (mean over concepts)")
    plotting.legend_outside(axes[0, -1], title="view, layer")
    fig.suptitle("CAV consistency against the number of training scenes "
                 f"(R = {results['runs']} runs per cell)")  # fmt: skip
    return plotting.save(fig, path)


def plot_attribution(results: dict, path: str) -> str:
    """Attribution sign-flip rate per layer: 1D/3D, plain vs SmoothGrad."""
    a, s = results["attribution"], results["attribution_settings"]
    layers = [lay for lay in results["layers"] if lay in a]
    bars = [(dim, mode) for dim in ("1d", "3d") for mode in ("plain", "smooth")
            if any(dim in a[lay] for lay in layers)]  # fmt: skip
    fig, ax = plotting.figure(1, 1, size=(7.5, 3.8))
    width = 0.8 / max(len(bars), 1)
    colors = plotting.colors(len(bars))
    for j, ((dim, mode), col) in enumerate(zip(bars, colors)):
        vals = [a[lay][dim][mode]["sign_flip_rate"] if dim in a[lay] else np.nan
                for lay in layers]  # fmt: skip
        name = (
            "plain gradient" if mode == "plain" else f"SmoothGrad ({s['copies']} + 1)"
        )
        got = ax.bar(np.arange(len(layers)) + (j - (len(bars) - 1) / 2) * width,
                     vals, width, color=col, label=f"{dim.upper()} CAV, {name}")  # fmt: skip
        ax.bar_label(got, fmt="%.2g", fontsize=7)
    ax.set_xticks(range(len(layers)), layers)
    ax.set_xlabel("layer (shallow → deep)")
    ax.set_ylabel("sign-flip rate between repeats")
    plotting.legend_outside(ax)
    worst = max(v["sign_flip_rate"] for v in a["batch"].values())
    plotting.title(ax, f"Concept attribution sign flips over {s['repeats']} noise "
                   f"repeats ({s['num_images']} scenes); single vs batched "
                   f"gradients: sign-flip rate {worst:.3g} ({results['backend']})",
                   width=80)  # fmt: skip
    return plotting.save(fig, path)


def figures(results: dict, workdir: str) -> list[str]:
    """Writes every figure into `workdir`; returns their file names."""
    out = [plot_layers(results, os.path.join(workdir, "retrieval_vs_layer.png")),
           plot_samples(results, os.path.join(workdir, "consistency_vs_samples.png"))]  # fmt: skip
    if any(lay in results["attribution"] for lay in results["layers"]):
        out.append(plot_attribution(
            results, os.path.join(workdir, "attribution_sign_flips.png")))  # fmt: skip
    return out
