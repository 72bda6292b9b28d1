"""Figures of an adversarial-dissection study (house style of `jaxcxai.plotting`).

* `adversarial_asr.png`: attack success rate per attack and budget, a panel
  per model;
* `adversarial_examples.png`: clean image, perturbation (magnified to the
  full colour range) and adversarial image, one successful example per
  (model, target) at the largest budget;
* `adversarial_variance.png`: cumulative explained variance of the global
  perturbation components per (model, layer) (F2);
* `adversarial_ablation.png`: attack success as components are removed
  from the perturbation (solid) or only they are added to the clean
  activation (dashed), per model (F2);
* `adversarial_specificity.png`: the run similarity matrix per (model,
  layer), runs grouped by target, with the gap and p-value (F3).
"""

from __future__ import annotations

import os

import numpy as np

from jaxcxai import plotting

__all__ = ["figures", "plot_ablation", "plot_asr", "plot_examples",
           "plot_specificity", "plot_variance"]  # fmt: skip

MAX_EXAMPLES = 8  # rows of the example grid


def plot_asr(results: dict, path: str) -> str:
    """Grouped bars: ASR per attack (groups) and budget (bars), per model."""
    models = results["models"]
    fig, axes = plotting.figure(1, len(models), squeeze=False,
                                size=(4.2 * len(models) + 1.2, 3.6))  # fmt: skip
    from matplotlib.patches import Patch

    budgets = list(results["eps"]) + ["l2"] * any(
        r["eps"] == "l2" for r in results["asr"]
    )
    colors = plotting.colors(len(budgets))
    names_of = {
        e: "C&W (l2, unbounded)" if e == "l2" else f"l_inf eps {e}" for e in budgets
    }
    for ax, model in zip(axes[0], models, strict=True):
        rows = [r for r in results["asr"] if r["model"] == model]
        names = list(dict.fromkeys(r["attack"] for r in rows))
        width = 0.8 / len(budgets)
        for b, eps in enumerate(budgets):
            vals = {r["attack"]: r["asr"] for r in rows if r["eps"] == eps}
            xs = [i + (b - (len(budgets) - 1) / 2) * width for i, n in enumerate(names)
                  if n in vals]  # fmt: skip
            ax.bar(xs, [vals[n] for n in names if n in vals], width, color=colors[b])
        ax.set_xticks(range(len(names)), names)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("attack")
        ax.set_ylabel("attack success rate (targeted)")
        ax.grid(axis="y", alpha=0.3)
        plotting.title(
            ax, f"{model}: {rows[0]['n'] if rows else 0} (image, target) pairs"
        )
    handles = [
        Patch(color=c, label=names_of[e]) for e, c in zip(budgets, colors, strict=True)
    ]
    plotting.legend_outside(axes[0, -1], title="budget", handles=handles)
    fig.suptitle("Targeted attack success rate per attack and budget")
    return plotting.save(fig, path)


def plot_examples(samples: list[dict], path: str) -> str:
    """Rows of clean | perturbation (magnified) | adversarial."""
    samples = samples[:MAX_EXAMPLES]
    fig, axes = plotting.figure(len(samples), 3, squeeze=False,
                                size=(6.4, 2.1 * len(samples) + 0.8))  # fmt: skip
    for i, s in enumerate(samples):
        delta = np.asarray(s["adv"], np.float64) - np.asarray(s["clean"], np.float64)
        scale = np.abs(delta).max() or 1.0
        shown = [s["clean"], 0.5 + 0.5 * delta / scale, s["adv"]]
        for j, img in enumerate(shown):
            ax = axes[i, j]
            img = np.clip(np.asarray(img), 0, 1)
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img,
                      cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=1,
                      interpolation="nearest")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(f"{s['model']}\n{s['source']}", fontsize=7)
        axes[i, 1].set_xlabel(f"{s['attack']}, x{0.5 / scale:.0f} (max |d| "
                              f"{scale * 255:.1f}/255)", fontsize=7)  # fmt: skip
        axes[i, 2].set_xlabel(f"-> {s['target']}", fontsize=7)
    for j, name in enumerate(("clean", "perturbation (magnified)", "adversarial")):
        axes[0, j].set_title(name)
    fig.suptitle("Successful targeted examples at the largest budget\n(perturbation "
                 "magnified to the colour range, grey = 0)")  # fmt: skip
    return plotting.save(fig, path)


def _layers(results: dict):
    for model, r in results["per_model"].items():
        for layer, lr in r.get("dissection", {}).get("layers", {}).items():
            yield model, layer, lr


def plot_variance(results: dict, path: str) -> str:
    """Cumulative explained variance ratio vs number of components."""
    fig, ax = plotting.figure(size=(6.8, 3.8))
    entries = list(_layers(results))
    for (model, layer, lr), color in zip(entries, plotting.colors(len(entries)),
                                         strict=True):  # fmt: skip
        evr = np.cumsum(lr["evr"])
        ax.plot(np.arange(1, len(evr) + 1), evr, "o-", color=color,
                label=f"{model} / {layer}")  # fmt: skip
    ax.set_xlabel("components (by explained variance)")
    ax.set_ylabel("cumulative explained variance ratio")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    if entries:
        plotting.legend_outside(ax, title="model / layer")
    plotting.title(ax, f"Global decomposition ({results['dissect']['method']}) of the "
                       "GAP latent perturbations of successful examples")  # fmt: skip
    return plotting.save(fig, path)


def plot_ablation(results: dict, path: str) -> str:
    """Success vs components removed (solid) / added only (dashed)."""
    models = list(results["per_model"])
    fig, axes = plotting.figure(1, len(models), squeeze=False,
                                size=(4.2 * len(models) + 1.6, 3.6))  # fmt: skip
    for ax, model in zip(axes[0], models, strict=True):
        layers = results["per_model"][model].get("dissection", {}).get("layers", {})
        for (layer, lr), color in zip(layers.items(), plotting.colors(len(layers)),
                                      strict=True):  # fmt: skip
            a, b = lr["ablation"], lr["add_only"]
            ax.plot(a["removed"], a["success"], "o-", color=color,
                    label=f"{layer}: removed")  # fmt: skip
            ax.plot(b["added"], b["success"], "s--", color=color,
                    label=f"{layer}: only added")  # fmt: skip
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("components m (first m by the removal order)")
        ax.set_ylabel("attack success (argmax = target)")
        ax.grid(alpha=0.3)
        plotting.title(ax, model)
        if layers:
            plotting.legend_outside(ax, where="below", ncol=2)
    fig.suptitle("Attack success with the first m perturbation components removed at "
                 "the layer (solid)\nor only they added to the clean activation (dashed)")  # fmt: skip
    return plotting.save(fig, path)


def plot_specificity(results: dict, path: str) -> str:
    """|cos| run-similarity heatmaps, runs sorted by target."""
    entries = [(m, layer, lr["specificity"]) for m, layer, lr in _layers(results)
               if "matrix" in lr["specificity"]]  # fmt: skip
    n = max(len(entries), 1)
    fig, axes = plotting.figure(1, n, squeeze=False, size=(4.6 * n + 0.8, 4.6))
    for ax, (model, layer, sp) in zip(axes[0], entries, strict=False):
        targets = [u["target"] for u in sp["units"]]
        labels = [f"{u['attack']}/{u['source']}->{u['target']}" for u in sp["units"]]
        small = len(labels) <= 15
        plotting.heatmap(ax, np.asarray(sp["matrix"]), labels if small else [""] * len(labels),
                         labels if small else [""] * len(labels),
                         cbar_label="|cos| of matched run directions", vmin=0.0, vmax=1.0)  # fmt: skip
        if not small:  # one tick per target block
            starts = [i for i, t in enumerate(targets) if i == 0 or targets[i - 1] != t]
            mids = [s + (targets.count(targets[s]) - 1) / 2 for s in starts]
            ax.set_xticks(mids, [targets[s] for s in starts], rotation=45, ha="right")
            ax.set_yticks(mids, [targets[s] for s in starts])
        ax.set_xlabel("run (attack / source -> target)")
        ax.set_ylabel("run")
        plotting.title(ax, f"{model} / {layer}: gap {sp['gap']:+.3f}, p = "
                           f"{sp['p_value']:.3g}", width=45)  # fmt: skip
    if not entries:
        axes[0, 0].axis("off")
        axes[0, 0].text(0.5, 0.5, "no layer had enough runs for the specificity test",
                        ha="center", va="center")  # fmt: skip
    fig.suptitle("Target specificity (F3): similarity of the runs' perturbation "
                 "directions, grouped by target")  # fmt: skip
    return plotting.save(fig, path)


def figures(results: dict, samples: list[dict], workdir: str) -> list[str]:
    """Writes every figure into `workdir`; returns their file names."""
    p = lambda name: os.path.join(workdir, name)  # noqa: E731
    out = [plot_asr(results, p("adversarial_asr.png"))]
    if samples:
        out.append(plot_examples(samples, p("adversarial_examples.png")))
    out.append(plot_variance(results, p("adversarial_variance.png")))
    out.append(plot_ablation(results, p("adversarial_ablation.png")))
    out.append(plot_specificity(results, p("adversarial_specificity.png")))
    return out
