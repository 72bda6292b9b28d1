"""The markdown report of an explanation study (from `results.json` alone).

Two tables: image methods (localisation, faithfulness, randomisation and
seed stability, mean ± std over items) and tabular methods (log-odds
removal shift, seed stability, randomisation). Every cell says n/a where a
score was not run or is undefined.
"""

from __future__ import annotations

__all__ = ["fmt", "markdown"]


def fmt(s: dict | None, digits: int = 3) -> str:
    """ "mean ± std" of a `scores.summary`, "n/a" when absent or empty."""
    if not s or s.get("mean") is None:
        return "n/a"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def _image(img: dict) -> list[str]:
    layers = img["randomization_layers"]
    last = layers[-1] if layers else None
    counts = ", ".join(f"{c} {n}" for c, n in img["items_per_concept"].items())
    lines = [
        f"### Images: {img['num_items']} held-out SynthAerial items at "
        f"{img['image_size']} px",
        "",
        "Each item is a held-out scene (seed "
        f"{img['data_seed']}) with an object concept it contains ({counts}); "
        "every method explains the backbone's presence logit `has_<concept>` "
        "and is scored against that concept's class mask. Relevance mass: "
        "share of the positive relevance inside the mask (a map without "
        "information scores the mask's area share, here "
        f"{fmt(img['mask_fraction'])}); pointing game: share of items whose "
        f"map maximum lies within {img['pointing_tolerance']:g} px of the mask; "
        "deletion / insertion AUC: area under the presence probability "
        f"(sigmoid of the logit) as pixels are deleted to black / inserted into "
        f"a copy blurred with sigma {img['insertion_blur']:g} px, most relevant "
        f"first, in {img['deletion_steps']} steps (lower deletion and higher "
        "insertion = more faithful), and their difference to the random "
        "control's AUC on the same item (Δ); randomisation: Spearman rho of "
        "|phi| ranks "
        "and SSIM between the maps of the trained model and of the model with "
        f"all of {', '.join(layers) or 'n/a'} re-drawn (cascading from the "
        "output; lower = the method depends on the weights, as it should); "
        "seed: Kendall tau-b of |phi| ranks between two keys (sampled methods "
        "only). Cells: mean ± std over items; `random` is a uniform random map "
        "(the control).",
        "",
        "| method | relevance mass | pointing game | deletion AUC | Δ deletion "
        "| insertion AUC | Δ insertion | rand. Spearman | rand. SSIM "
        "| seed Kendall | time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in img["methods"].items():
        rnd = (r.get("randomization") or {}).get(last) or {}
        label = f"{name} (control)" if name == img["control"] else name
        lines.append(
            f"| {label} | {fmt(r['relevance_mass'])} | {fmt(r['pointing_game'], 2)} "
            f"| {fmt(r['deletion_auc'])} | {fmt(r['deletion_auc_vs_control'])} "
            f"| {fmt(r['insertion_auc'])} | {fmt(r['insertion_auc_vs_control'])} "
            f"| {fmt(rnd.get('spearman'), 2)} | {fmt(rnd.get('ssim'), 2)} "
            f"| {fmt(r.get('seed_kendall'), 2)} | {r['total_seconds']:.1f} |"
        )
    nan = {n: r["relevance_mass"]["nan"] for n, r in img["methods"].items()
           if r["relevance_mass"]["nan"]}  # fmt: skip
    if nan:
        left = ", ".join(f"{n} {k}" for n, k in nan.items())
        lines += ["", "Items left out of relevance mass (a map without positive "
                  f"relevance): {left}."]  # fmt: skip
    probs = ", ".join(f"{c} {'n/a' if p is None else f'{p:.2f}'}"
                      for c, p in img["presence_probability"].items())  # fmt: skip
    lines += ["", f"Mean presence probability of the explained logit per concept: "
              f"{probs}."]  # fmt: skip
    return lines


def _tabular(tab: dict) -> list[str]:
    ks = tab["removal_ks"]
    acc = ", ".join(f"{m} {a:.3f}" for m, a in tab["accuracy"].items())
    layers = tab["randomization_layers"]
    lines = [
        f"### Tabular: scikit-learn `{tab['dataset']}`, {tab['num_explain']} held-out "
        f"rows x {tab['num_features']} features",
        "",
        f"Models trained on {tab['num_train']} z-scored rows (held-out accuracy: "
        f"{acc}); every method explains the predicted class. Removal shift: "
        "mean over classes of the squared log-odds change when the top-k "
        "features by |phi| are set to the training median (higher = more "
        f"faithful), averaged over k = {', '.join(map(str, ks))}; seed: Kendall "
        "tau-b of |phi| ranks between two keys; rand.: Spearman rho of |phi| "
        f"ranks after re-drawing {', '.join(layers)} of the MLP (lower = "
        "sensitive to the weights). Cells: mean ± std over rows.",
        "",
        "| model | method | removal shift | seed Kendall | rand. Spearman | time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for m, r in tab["models"].items():
        for n, v in r["methods"].items():
            rnd = (v.get("randomization_spearman") or {}).get(layers[-1])
            secs = "n/a" if "seconds" not in v else f"{v['seconds']:.1f}"
            lines.append(
                f"| {m} | {n}{' (control)' if n == 'random' else ''} "
                f"| {fmt(v['removal_shift_mean'], 2)} "
                f"| {fmt(v.get('seed_kendall'), 2)} "
                f"| {fmt(rnd, 2)} | {secs} |"
            )
    if "forest" in tab["models"]:
        lines += ["", "The forest's probabilities are often exactly 0; their "
                  "log-odds then sit at the clip log(1e-12) = -27.6, so its "
                  "shifts are on another scale than the MLP's: compare methods "
                  "within a model only."]  # fmt: skip
    if tab["skipped"]:
        lines += ["", "Not run: " + "; ".join(tab["skipped"]) + "."]
    return lines


def markdown(results: dict) -> str:
    """The report's body: the image table, then the tabular table."""
    return "\n".join(_image(results["image"]) + [""] + _tabular(results["tabular"]))
