"""The gating study's figures (PNG), after arXiv:2603.29915's Figures 2-6.

Every function takes the results of `run.run_study` (and its arrays), draws
one figure with labelled axes, legend and title, writes it into the
workdir atomically (`jaxcxai.plotting.save`) and returns its file name, or
None when the experiment did not run.
"""

from __future__ import annotations

import os

import numpy as np

from jaxcxai import plotting
from jaxcxai.uncertainty.tables import STRATUM_NAMES

__all__ = [
    "cost_curves",
    "faithfulness_bars",
    "focus_mass",
    "reference_extras",
    "image_ssim",
    "precision_recall",
    "strata_violins",
    "uc1_routing",
    "write_all",
    "xec_heatmap",
]


def _label(r: dict) -> str:
    return f"{r['name']} ({r['role'].replace('_', ' ')})"


def xec_heatmap(results: dict, workdir: str) -> str | None:
    """Figure 2: XEC per (model + explainer) x perturbation, one panel per set."""
    ds = [r for r in results["datasets"].values() if r.get("figure2")]
    if not ds:
        return None
    fig, axes = plotting.figure(
        1, len(ds), size=(4.2 * len(ds) + 1, 4.5), squeeze=False
    )
    for ax, r in zip(axes[0], ds):
        cells = r["figure2"]
        rows = list(dict.fromkeys(f"{c['model']} + {c['explainer']}" for c in cells))
        cols = list(dict.fromkeys(c["perturbation"] for c in cells))
        v = np.full((len(rows), len(cols)), np.nan)
        for c in cells:
            v[
                rows.index(f"{c['model']} + {c['explainer']}"),
                cols.index(c["perturbation"]),
            ] = c["xec"]
        plotting.heatmap(ax, v, rows, cols, cbar_label="XEC (Spearman of XD, EG)",
                         cmap="RdBu", vmin=-1, vmax=1, annotate=True)  # fmt: skip
        ax.set_xlabel("perturbation")
        ax.set_ylabel("model + explainer")
        plotting.title(ax, f"XEC on {_label(r)}", 45)
    fig.suptitle("E2: XAI-UQ correlation (XEC < -0.6 is strong; n/a: constant sweep)")
    return plotting.save(fig, os.path.join(workdir, "xec_heatmap.png"))


def strata_violins(results: dict, arrays: dict, workdir: str) -> str | None:
    """Figure 3: seed-averaged tau of the picked rows per U_epi stratum."""
    ds = [r for r in results["datasets"].values() if r.get("figure3")]
    if not ds:
        return None
    fig, axes = plotting.figure(1, len(ds), size=(4.5 * len(ds), 4.0), squeeze=False)
    colors = plotting.colors(3)
    for ax, r in zip(axes[0], ds):
        tau = arrays[f"{r['role']}.e3.tau"]  # (S, n)
        picked = arrays[f"{r['role']}.e3.picked"]  # (3, per)
        sigmas = [row["sigma"] for row in r["figure3"]]
        for i, _ in enumerate(sigmas):
            for j in range(picked.shape[0]):
                pos = i * 4 + j
                parts = ax.violinplot([tau[i, picked[j]]], [pos], showmedians=True)
                for body in parts["bodies"]:
                    body.set_facecolor(colors[j])
                    body.set_alpha(0.6)
        ax.set_xticks([i * 4 + 1 for i in range(len(sigmas))],
                      [f"sigma = {s:g}" for s in sigmas])  # fmt: skip
        ax.set_xlabel("Gaussian noise level")
        ax.set_ylabel("Kendall tau of |phi| ranks (TreeSHAP)")
        for j, name in enumerate(STRATUM_NAMES[: picked.shape[0]]):
            ax.plot([], [], color=colors[j], lw=6, alpha=0.6, label=f"{name} U_epi")
        ax.legend(loc="lower left")
        plotting.title(ax, f"Stability by U_epi stratum, {_label(r)}", 45)
    fig.suptitle("E3: stratified stability (RF + TreeSHAP)")
    return plotting.save(fig, os.path.join(workdir, "e3_strata.png"))


def precision_recall(results: dict, workdir: str) -> str | None:
    """Table 3 as curves: precision and recall of 'stable' vs nu."""
    ds = [r for r in results["datasets"].values() if r.get("curves")]
    if not ds:
        return None
    fig, ax = plotting.figure(size=(6.5, 4.2))
    colors = plotting.colors(len(ds))
    for c, r in zip(colors, ds):
        cfg = next(iter(r["curves"]))
        cur = r["curves"][cfg]
        ax.plot(cur["nu"], cur["precision"], "-o", ms=3, color=c,
                label=f"precision, {r['name']}")  # fmt: skip
        ax.plot(cur["nu"], cur["recall"], "--", color=c, label=f"recall, {r['name']}")
    ax.set_xlabel("deferral rate nu (share of rows declined)")
    ax.set_ylabel("precision / recall of 'stable' (tau >= 0.7)")
    plotting.legend_outside(ax)
    plotting.title(ax, f"E4: recalling stable explanations ({cfg})")
    return plotting.save(fig, os.path.join(workdir, "e4_precision_recall.png"))


def cost_curves(results: dict, workdir: str) -> str | None:
    """Table 4 as curves: accepted-sample stability vs relative cost q."""
    ds = [r for r in results["datasets"].values() if r.get("curves")]
    if not ds:
        return None
    fig, ax = plotting.figure(size=(6.5, 4.2))
    colors = plotting.colors(len(ds))
    styles = ("-o", "--s", ":^")
    for c, r in zip(colors, ds):
        for s, (cfg, cur) in zip(styles, r["curves"].items()):
            ax.plot(cur["q"], cur["tau_mean"], s, ms=3, color=c,
                    label=f"{cfg}, {r['name']}")  # fmt: skip
    ax.set_xlabel("relative cost q = m/d + (1 - nu)")
    ax.set_ylabel("mean Kendall tau of accepted rows")
    plotting.legend_outside(ax)
    plotting.title(ax, "E5: stability of the accepted explanations vs cost")
    return plotting.save(fig, os.path.join(workdir, "e5_cost.png"))


def faithfulness_bars(results: dict, workdir: str) -> str | None:
    """Figure 4: log-odds removal shift of the lowest/highest/random-U groups."""
    rows = [
        row for r in results["datasets"].values() for row in r.get("faithfulness", [])
    ]
    if not rows:
        return None
    keys = list(dict.fromkeys((row["dataset"], row["model"]) for row in rows))
    groups = ("low", "high", "random")
    fig, ax = plotting.figure(size=(max(6.0, 1.3 * len(keys) + 2), 4.2))
    colors = plotting.colors(3)
    for g, (group, c) in enumerate(zip(groups, colors)):
        m = [next(r["shift_mean"] for r in rows if (r["dataset"], r["model"]) == k
                  and r["group"] == group) for k in keys]  # fmt: skip
        s = [next(r["shift_std"] for r in rows if (r["dataset"], r["model"]) == k
                  and r["group"] == group) for k in keys]  # fmt: skip
        x = np.arange(len(keys)) + (g - 1) * 0.27
        ax.bar(x, m, 0.27, yerr=s, color=c, capsize=2, label=f"{group} U_epi")
    ax.set_xticks(range(len(keys)), [f"{d}\n{m}" for d, m in keys], fontsize=7)
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_xlabel("dataset, model + explainer")
    ax.set_ylabel("log-odds shift MSE (mean over k = 1..5)")
    plotting.legend_outside(ax)
    plotting.title(
        ax, "Faithfulness: removal shift by U_epi group (higher: more faithful)"
    )
    return plotting.save(fig, os.path.join(workdir, "faithfulness.png"))


def focus_mass(results: dict, workdir: str) -> str | None:
    """Figure 8 (E7): SignalMass vs noise ratio by U group, one panel each."""
    rows = [row for r in results["datasets"].values() for row in r.get("focus", [])]
    if not rows:
        return None
    keys = list(dict.fromkeys((row["dataset"], row["model"]) for row in rows))
    fig, axes = plotting.figure(1, len(keys), size=(4.2 * len(keys) + 1.5, 4.0))
    axes = np.atleast_1d(axes)
    colors = plotting.colors(3)
    for ax, (ds, cfg) in zip(axes, keys):
        for group, c in zip(("low", "high", "random"), colors):
            sel = sorted((row["ratio"], row["signal_mass"], row["signal_mass_std"])
                         for row in rows if (row["dataset"], row["model"]) == (ds, cfg)
                         and row["group"] == group)  # fmt: skip
            r, m, sd = map(np.asarray, zip(*sel))
            ax.errorbar(r, m, yerr=sd, fmt="-o", ms=3, color=c, capsize=2,
                        label=f"{group} U_epi")  # fmt: skip
        ax.set_xlabel("noise columns per signal column r")
        ax.set_ylabel("SignalMass (share of mean |phi| on signal)")
        plotting.title(ax, f"{ds}, {cfg}")
    plotting.legend_outside(axes[-1])
    fig.suptitle("E7: focus on the signal features by U_epi group")
    return plotting.save(fig, os.path.join(workdir, "focus_signal_mass.png"))


def reference_extras(results: dict, workdir: str) -> str | None:
    """The reference code's scripts 8, 10, 11: F1 vs coverage (Kendall
    labels), global approximation and contamination recovery."""
    ds = [r for r in results["datasets"].values() if r.get("extras")]
    if not ds:
        return None
    fig, axes = plotting.figure(1, 3, size=(15.0, 4.2))
    colors = plotting.colors(len(ds))
    for c, r in zip(colors, ds):
        ex, name = r["extras"], r["name"]
        cal = ex["calibration"]["kendall"]
        axes[0].plot(cal["coverage"], cal["f1"], "-o", ms=3, color=c, label=name)
        a = ex["approximation"]
        axes[1].plot(a["fracs"], a["rho_low"], "-o", ms=3, color=c,
                     label=f"lowest U, {name}")  # fmt: skip
        axes[1].plot(
            a["fracs"], a["rho_high"], ":", color=c, label=f"highest U, {name}"
        )
        k = ex["contamination"]
        axes[2].plot(k["rates"], k["rho_naive"], ":", color=c, label=f"naive, {name}")
        axes[2].plot(
            k["rates"], k["rho_random"], "--", color=c, label=f"random, {name}"
        )
        axes[2].plot(k["rates"], k["rho_filtered"], "-o", ms=3, color=c,
                     label=f"filtered, {name}")  # fmt: skip
    axes[0].set_xlabel("coverage c (accept U <= Q_c(U))")
    axes[0].set_ylabel("F1 of 'stable' (Kendall labels)")
    plotting.title(axes[0], "Script 8: threshold calibration")
    axes[0].legend(loc="lower right", fontsize=7)
    axes[1].set_xlabel("fraction of rows")
    axes[1].set_ylabel("Spearman with the global importance")
    plotting.title(axes[1], "Script 10: global approximation")
    axes[1].legend(loc="lower right", fontsize=7)
    axes[2].set_xlabel("contaminants per base row")
    axes[2].set_ylabel("Spearman with the base batch's importance")
    plotting.title(axes[2], "Script 11: contamination recovery")
    plotting.legend_outside(axes[2])
    fig.suptitle("The reference code's extras (not claims of the paper)")
    return plotting.save(fig, os.path.join(workdir, "reference_extras.png"))


def uc1_routing(results: dict, workdir: str) -> str | None:
    """UC1 (reconstruction): stability of the mixed set vs routed fraction."""
    ds = [r for r in results["datasets"].values() if r.get("uc1")]
    if not ds:
        return None
    fig, axes = plotting.figure(1, 2, size=(10.0, 4.0))
    colors = plotting.colors(len(ds))
    for j, (ax, what) in enumerate(zip(axes, ("10th percentile", "mean"))):
        for c, r in zip(colors, ds):
            u = r["uc1"]
            ax.plot(u["fraction"], np.asarray(u["gated"])[:, j], "-o", ms=3, color=c,
                    label=f"U-gated, {r['name']}")  # fmt: skip
            ax.plot(u["fraction"], np.asarray(u["random"])[:, j], ":", color=c,
                    label=f"random, {r['name']}")  # fmt: skip
        ax.set_xlabel("share routed to SmoothIG (expensive)")
        ax.set_ylabel(f"{what} Kendall tau of the mixed set")
        plotting.title(ax, f"UC1 routing IG -> SmoothIG: {what} stability")
    plotting.legend_outside(axes[1])
    fig.suptitle("UC1 (a reconstruction; the paper has no UC1 experiment)")
    return plotting.save(fig, os.path.join(workdir, "uc1_routing.png"))


def image_ssim(results: dict, workdir: str) -> str | None:
    """Figures 5-6: SSIM(clean, noisy map) vs sigma by U_epi stratum, and U."""
    img = results.get("image")
    if not img:
        return None
    fig, axes = plotting.figure(1, 3, size=(13.0, 4.0))
    s, colors = img["sigmas"], plotting.colors(3)
    for ax, method in zip(axes[:2], ("ig", "smoothgrad")):
        by = np.asarray(img["ssim_by_stratum"][method])
        for j, name in enumerate(STRATUM_NAMES):
            ax.plot(s, by[:, j], "-o", ms=3, color=colors[j], label=f"{name} U_epi")
        ax.plot(s, img["ssim_mean"][method], "k--", label="all")
        ax.set_xlabel("pixel noise sigma (images in [-1, 1])")
        ax.set_ylabel("SSIM of clean vs noisy map")
        ax.legend(loc="lower left")
        plotting.title(ax, f"{method}: XEC = {img['xec'][method]:.2f}")
    axes[2].plot(s, img["u_mean"], "-o", ms=3, label="mean U_epi")
    axes[2].set_xlabel("pixel noise sigma")
    axes[2].set_ylabel("MC-dropout softmax variance")
    axes[2].legend(loc="upper left")
    plotting.title(axes[2], "Mean U_epi of the noisy images")
    fig.suptitle(f"Image experiment on {img['source']} ({img['num_images']} images)")
    return plotting.save(fig, os.path.join(workdir, "image_ssim.png"))


def write_all(results: dict, arrays: dict, workdir: str) -> list[str]:
    """Every figure the results allow; returns the written file names."""
    out = [
        xec_heatmap(results, workdir),
        strata_violins(results, arrays, workdir),
        precision_recall(results, workdir),
        cost_curves(results, workdir),
        faithfulness_bars(results, workdir),
        focus_mass(results, workdir),
        reference_extras(results, workdir),
        uc1_routing(results, workdir),
        image_ssim(results, workdir),
    ]
    return [f for f in out if f]
