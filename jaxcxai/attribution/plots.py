"""Figures of an explanation study (`run.explain`), built with `jaxcxai.plotting`.

- `attribution_grid.png`: items (rows) x [image with the concept's mask
  outline, one map per method]; each map divided by its largest |value|,
  one diverging colour scale for all.
- `metric_bars.png`: one panel per score, a bar per method (mean ± std
  over items), the random control in grey.
- `randomization.png`: similarity to the original maps as layers are
  randomised top-down (cascading), per method.
- `faithfulness_curves.png`: mean deletion and insertion curves.
- `relevance_by_concept.png`: relevance mass per method and concept, with
  the concepts' mask fractions (chance level).
- `tabular.png`: removal shift against k per (model, method), and the
  agreement of the MLP's methods.
Every number shown comes from `results.json`.
"""

from __future__ import annotations

import os

import numpy as np

from jaxcxai import plotting
from jaxcxai.attribution.methods import CONTROL

__all__ = ["image_figures", "tabular_figures"]

PANELS = (  # (results key, y label, better, range of the score)
    ("relevance_mass", "relevance mass\n(share of R+ in mask)", "higher", (0, 1)),
    ("pointing_game", "pointing game\n(share of hits)", "higher", (0, 1)),
    ("deletion_auc_vs_control", "deletion AUC minus the\ncontrol's (same item)",
     "lower", (-1, 1)),
    ("insertion_auc_vs_control", "insertion AUC minus the\ncontrol's (same item)",
     "higher", (-1, 1)),
    ("randomization_spearman", "Spearman rho to original\n(all layers randomised)",
     "lower", (-1, 1)),
    ("randomization_ssim", "SSIM to original\n(all layers randomised)", "lower",
     (-1, 1)),
    ("seed_kendall", "Kendall tau-b between\ntwo keys", "higher", (-1, 1)),
)  # fmt: skip


def _value(r: dict, key: str, layers) -> dict | None:
    if key.startswith("randomization_"):
        rnd = r.get("randomization")
        return rnd[layers[-1]][key.partition("_")[2]] if rnd else None
    return r.get(key)


def plot_grid(image: dict, arrays: dict, num: int, workdir: str) -> str:
    names = list(image["methods"])
    concepts = image["concepts"]
    # One item per concept first (the first of each), then the next ones.
    concept = arrays["concept"]
    order = np.lexsort((concept, _rank_within(concept)))
    rows = order[: max(1, min(num, len(order)))]
    cols = len(names) + 1
    fig, axes = plotting.figure(len(rows), cols, squeeze=False,
                                size=(1.25 * cols + 1.0,
                                      1.35 * len(rows) + 1.1))  # fmt: skip
    im = None
    for r, i in enumerate(rows):
        c = concepts[arrays["concept"][i]]
        ax = axes[r, 0]
        ax.imshow(arrays["image"][i])
        ax.contour(arrays["mask"][i], levels=[0.5], colors="lime", linewidths=0.8)
        ax.set_ylabel(f"has_{c}\np={arrays['presence'][i]:.2f}", fontsize=7)
        for j, name in enumerate(names, 1):
            im = axes[r, j].imshow(_shown(arrays[name][i]), cmap="RdBu_r", vmin=-1,
                                   vmax=1)  # fmt: skip
            axes[r, j].contour(arrays["mask"][i], levels=[0.5], colors="lime",
                               linewidths=0.5)  # fmt: skip
            if r == 0:
                axes[r, j].set_title(name.replace("_", " "), fontsize=7)
        if r == 0:
            axes[r, 0].set_title("image", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    cbar = fig.colorbar(im, ax=axes, fraction=0.02, pad=0.01)
    cbar.set_label("signed maps: attribution / max |attribution|; "
                   "non-negative maps: min-max normalised")  # fmt: skip
    fig.suptitle("Attribution maps of the has_<concept> logit (p = its sigmoid) on "
                 "held-out scenes; green: the concept's mask")  # fmt: skip
    return plotting.save(fig, os.path.join(workdir, "attribution_grid.png"))


def _shown(m: np.ndarray) -> np.ndarray:
    """A map on the grid's scale: signed maps divided by their largest |value|
    (0 stays white), non-negative ones min-max normalised (RISE's maps carry a
    large offset, the mean score, that would hide their structure)."""
    m = np.asarray(m, np.float64)
    if m.min() >= 0:
        span = m.max() - m.min()
        return (m - m.min()) / span if span > 0 else np.zeros_like(m)
    return m / np.abs(m).max()


def _rank_within(concept: np.ndarray) -> np.ndarray:
    """Position of each item among the items of its concept (0, 1, ...)."""
    return np.array([np.sum(concept[:i] == k) for i, k in enumerate(concept)])


def plot_bars(image: dict, workdir: str) -> str:
    names = list(image["methods"])
    layers = image["randomization_layers"]
    colors = ["0.6" if n == image["control"] else "tab:blue" for n in names]
    fig, axes = plotting.figure(2, 4, size=(13.0, 6.6), squeeze=False)
    x = np.arange(len(names))
    for ax, (key, label, better, (lo, hi)) in zip(axes.ravel(), PANELS):
        vals = [_value(image["methods"][n], key, layers) for n in names]
        mean = np.array([v["mean"] if v and v["mean"] is not None else np.nan
                         for v in vals])  # fmt: skip
        std = np.array([v["std"] if v and v["std"] is not None else 0.0 for v in vals])
        # Error bars clipped to the score's range (a share cannot go below 0).
        err = np.nan_to_num([np.minimum(std, mean - lo), np.minimum(std, hi - mean)])
        ax.bar(x, mean, yerr=err, color=colors, capsize=2)
        if key == "relevance_mass":
            ax.axhline(image["mask_fraction"]["mean"], color="k", ls=":", lw=1,
                       label="mask fraction")  # fmt: skip
            ax.legend(fontsize=7)
        ax.set_xticks(x, [n.replace("_", " ") for n in names], rotation=60,
                      ha="right", fontsize=7)  # fmt: skip
        ax.set_ylabel(label)
        missing = not np.isfinite(mean).all()
        ax.set_title(f"{better} is better" + ("; no bar: not run" if missing else ""),
                     fontsize=8)  # fmt: skip
    axes[1, 3].axis("off")
    axes[1, 3].text(0.0, 0.5, f"{image['num_items']} items; bars: mean ± std over "
                    "items\n(clipped to the score's range);\ngrey: random map "
                    "(control)", fontsize=8)  # fmt: skip
    fig.suptitle("Image attribution scores per method (SynthAerial, has_<concept> "
                 "logit, concept mask as ground truth)")  # fmt: skip
    return plotting.save(fig, os.path.join(workdir, "metric_bars.png"))


def plot_randomization(image: dict, workdir: str) -> str | None:
    layers = image["randomization_layers"]
    shown = [n for n, r in image["methods"].items() if r.get("randomization")]
    if not shown:
        return None
    fig, axes = plotting.figure(1, 2, size=(10.0, 3.8), squeeze=False)
    steps = np.arange(len(layers) + 1)
    for ax, which in zip(axes[0], ("spearman", "ssim")):
        for n, color in zip(shown, plotting.colors(len(shown))):
            r = image["methods"][n]["randomization"]
            mean = [1.0] + [r[layer][which]["mean"] for layer in layers]
            std = [0.0] + [r[layer][which]["std"] for layer in layers]
            ax.errorbar(steps, mean, yerr=std, label=n.replace("_", " "), color=color,
                        capsize=2, marker="o", ms=3)  # fmt: skip
        ax.set_xticks(steps, ["none"] + [f"+{layer}" for layer in layers])
        ax.set_xlabel("layers randomised (cascading, from the output)")
        ax.set_ylabel("Spearman rho of |phi| ranks" if which == "spearman"
                      else "SSIM of the maps")  # fmt: skip
        ax.axhline(0.0, color="0.6", lw=0.8, ls=":")
    plotting.legend_outside(axes[0, 1], title="method")
    fig.suptitle("Model-parameter randomisation: similarity to the trained model's "
                 "maps (mean ± std over items)")  # fmt: skip
    return plotting.save(fig, os.path.join(workdir, "randomization.png"))


def plot_curves(image: dict, arrays: dict, workdir: str) -> str:
    names = list(image["methods"])
    fig, axes = plotting.figure(1, 2, size=(10.0, 3.8), squeeze=False)
    for ax, kind in zip(axes[0], ("deletion", "insertion")):
        for n, color in zip(names, plotting.colors(len(names))):
            c = arrays[f"{n}.{kind}_curve"].mean(0)
            ax.plot(np.linspace(0, 1, len(c)), c, color=color,
                    label=n.replace("_", " "),
                    ls=":" if n == image["control"] else "-")  # fmt: skip
        ax.set_xlabel(
            f"fraction of pixels {'deleted' if kind == 'deletion' else 'inserted'}"
        )
        ax.set_ylabel("presence probability (mean over items)")
        ax.set_ylim(0, 1)
        ax.set_title(
            f"{kind}: {'lower' if kind == 'deletion' else 'higher'} area is better"
        )
    plotting.legend_outside(axes[0, 1], title="method")
    fig.suptitle("Deletion (to black) and insertion (into a blurred copy) curves")
    return plotting.save(fig, os.path.join(workdir, "faithfulness_curves.png"))


def plot_concepts(image: dict, workdir: str) -> str:
    names, concepts = list(image["methods"]), image["concepts"]
    rows = [[image["methods"][n]["relevance_mass_by_concept"][c] for c in concepts]
            for n in names]  # fmt: skip
    rows.append([image["mask_fraction_by_concept"][c] for c in concepts])
    values = np.array([[np.nan if v is None else v for v in r] for r in rows])
    counts = image["items_per_concept"]
    fig, ax = plotting.figure(size=(2.0 + 0.8 * len(concepts), 1.2 + 0.42 * len(rows)))
    plotting.heatmap(ax, values, [n.replace("_", " ") for n in names]
                     + ["mask fraction (chance)"],
                     [f"{c} (n={counts[c]})" for c in concepts],
                     cbar_label="relevance mass (share of R+ in mask)", vmin=0,
                     fmt=".2f")  # fmt: skip
    plotting.title(ax, "Relevance mass per concept, mean over its items (n); last "
                   "row: the mask's area share, what a map without information "
                   "scores", 80)  # fmt: skip
    return plotting.save(fig, os.path.join(workdir, "relevance_by_concept.png"))


def image_figures(image: dict, arrays: dict, num: int, workdir: str) -> list[str]:
    """Writes the image figures; returns their names."""
    out = [
        plot_grid(image, arrays, num, workdir),
        plot_bars(image, workdir),
        plot_concepts(image, workdir),
        plot_randomization(image, workdir),
        plot_curves(image, arrays, workdir),
    ]
    return [f for f in out if f]


def tabular_figures(table: dict, workdir: str) -> list[str]:
    """Writes `tabular.png`: removal shift per model, MLP method agreement."""
    ks = table["removal_ks"]
    fig, axes = plotting.figure(1, 3, size=(15.0, 4.4), squeeze=False)
    for ax, (m, r) in zip(axes[0], table["models"].items()):
        names = list(r["methods"])
        for j, (n, color) in enumerate(zip(names, plotting.colors(len(names)))):
            rs = r["methods"][n]["removal_shift"]
            mean = np.array([rs[str(k)]["mean"] for k in ks])
            std = np.array([rs[str(k)]["std"] for k in ks])
            # Dodged sideways so the bars stay apart; clipped at 0 (a shift
            # is a mean of squares).
            ax.errorbar(np.asarray(ks) + 0.06 * (j - (len(names) - 1) / 2), mean,
                        yerr=[np.minimum(std, mean), std], capsize=2, marker="o",
                        ms=3, color=color, label=n.replace("_", " "),
                        ls=":" if n == CONTROL else "-")  # fmt: skip
        ax.set_xticks(ks)
        ax.set_xlabel("k (top features by |phi| set to the training median)")
        ax.set_ylabel("log-odds removal shift (MSE over classes)")
        plotting.legend_outside(ax, where="below")
        acc = table["accuracy"][m]
        plotting.title(ax, f"{m} (held-out accuracy {acc:.2f}): removal shift, "
                       "mean ± std over rows; higher = more faithful", 45)  # fmt: skip
    agree = table["models"]["mlp"]["agreement"]
    names = list(agree)
    plotting.heatmap(axes[0, 2], [[agree[a][b] for b in names] for a in names], names,
                     names, cbar_label="mean Spearman rho of |phi| ranks", vmin=-1,
                     vmax=1, cmap="RdBu_r")  # fmt: skip
    plotting.title(axes[0, 2], "MLP: agreement between methods", 45)
    fig.suptitle(f"Tabular: scikit-learn {table['dataset']}, {table['num_explain']} "
                 "held-out rows")  # fmt: skip
    return [plotting.save(fig, os.path.join(workdir, "tabular.png"))]
