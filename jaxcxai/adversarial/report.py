"""Report of an adversarial-dissection study: verdicts on F1-F3 and tables.

Plain results in (`run.adversarial`'s dict), no config. The findings of
Mikriukov et al. 2024 (arXiv 2403.16782) are decided per (model, layer)
from the numbers, whatever they show (`findings`):

* F1, the attack changes the concept composition: at least one ICE concept
  of the adversarial activations has no source concept with cosine >= gamma
  (counted over the targets); also whether the adversarial concepts are
  closer to the target's than the clean source's are;
* F2, a subset of global linear components carries the attack: removing the
  first m components of the perturbation (m <= k) halves the success;
* F3, the components are target-specific: the same-target minus
  different-target similarity gap is positive with p < 0.05.
"""

from __future__ import annotations

__all__ = ["RECONSTRUCTIONS", "findings", "markdown"]

ALPHA = 0.05  # level of the specificity permutation test

RECONSTRUCTIONS = (
    ("pipeline", "the whole dissection follows the spec's reconstruction (xai.md "
     "2.2) of arXiv 2403.16782, whose models, data, layers and three of four "
     "attacks are not confirmed: attacks BIM, PGD, MI-FGSM and C&W-l2 in pixel "
     "space [0, 1], alpha = eps x `attack.alpha`"),
    ("latent perturbation", "Delta = A_l(x_adv) - A_l(x) of the successful "
     "examples at the largest budget and of C&W, pooled over attacks; its "
     "spatial mean (GAP) is the vector form decomposed"),
    ("decomposition", "uncentred PCA of the stacked GAP perturbations (the mean "
     "direction is part of the attack), k components; removal and add-only "
     "curves project every pixel's perturbation on the first m components and "
     "patch the layer (`latent.patched_logits`)"),
    ("run directions", "F3 compares one direction per (attack, source, target) "
     "run with >= `dissect.min_samples` successful examples: its mean "
     "perturbation direction (`dissect.specific` = 0) or its leading PCA "
     "components, matched by the Hungarian method on |cos|; permutation test "
     "over the runs' target labels"),
    ("concept sets", "ICE/NMF (HALS, NNDSVD init) on equal-size sets of "
     "`dissect.concept_images` images (subsampled or resampled with "
     "replacement): the clean sources attacked successfully, their adversarial "
     "examples, clean images of the target; layers with negative activations "
     "(MobileNet block outputs) get no concepts"),
    ("ImageNet photos", "no ImageNet images are available offline: the photos "
     "bundled with scikit-image / scikit-learn (whole, mirrored, centre crop) "
     "stand in, a photo's class is the network's clean top-1, the targets are "
     "the classes of the target photos and their views are the clean target "
     "set"),
    ("supervised probes", "SynthAerial concept CAVs on spatially averaged "
     "activations (1D-CAVs, averaged over the random sets) and Net2Vec probes "
     "fitted on clean scenes of another seed; the adversarial images keep the "
     "clean scene's masks"),
    ("planted check", "a harbor scene is defined by boats: the mean GAP "
     "perturbation towards harbor should have a larger cosine with the boat "
     "CAV than the perturbations towards the other targets"),
)  # fmt: skip


def _f1(comp: list[dict]) -> dict:
    if not comp:
        return {"measured": False}
    new = sum(c["new_vs_src"] for c in comp)
    closer = sum(c["mean_cos_adv_tgt"] > c["mean_cos_src_tgt"] for c in comp)
    return {"measured": True, "targets": len(comp), "new_vs_src": new,
            "concepts": sum(c["k"] for c in comp), "closer_to_target": closer,
            "supported": new > 0}  # fmt: skip


def _f2(lr: dict) -> dict:
    s = lr["ablation"]["success"]
    half = next((m for m, v in enumerate(s) if v <= 0.5 * s[0]), None)
    return {"k": len(lr["evr"]), "evr_1": lr["evr"][0], "evr_k": sum(lr["evr"]),
            "success_0": s[0], "success_k": s[-1], "m_half": half,
            "add_only_k": lr["add_only"]["success"][-1],
            "supported": half is not None and s[0] > 0}  # fmt: skip


def _f3(sp: dict) -> dict:
    if "gap" not in sp:
        return {"measured": False, "why": sp.get("skipped", "")}
    return {"measured": True, "runs": len(sp["units"]), "gap": sp["gap"],
            "p_value": sp["p_value"],
            "supported": sp["gap"] > 0 and sp["p_value"] < ALPHA}  # fmt: skip


def findings(results: dict) -> dict:
    """{model: {layer: {"F1", "F2", "F3"}}} verdicts with their numbers."""
    out = {}
    for model, r in results["per_model"].items():
        layers = r["dissection"].get("layers", {})
        out[model] = {layer: {"F1": _f1(lr["composition"]), "F2": _f2(lr),
                              "F3": _f3(lr["specificity"])}
                      for layer, lr in layers.items()}  # fmt: skip
    return out


def _yn(x) -> str:
    return "yes" if x else "no"


def _asr_table(results: dict) -> list[str]:
    lines = ["| model | attack | budget | ASR | pairs | mean l_inf (x255) | "
             "mean l2 | ASR per target |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results["asr"]:
        per = ", ".join(f"{t} {v:.2f}" for t, v in r["per_target"].items())
        lines.append(f"| {r['model']} | {r['attack']} | {r['eps']} | {r['asr']:.3f} | "
                     f"{r['n']} | {r['linf'] * 255:.2f} | {r['l2']:.3f} | {per} |")  # fmt: skip
    return lines


def _verdict_lines(model: str, found: dict) -> list[str]:
    lines = []
    for layer, f in found.items():
        f1, f2, f3 = f["F1"], f["F2"], f["F3"]
        t1 = (f"{_yn(f1['supported'])}: {f1['new_vs_src']} of {f1['concepts']} "
              f"adversarial concepts are new w.r.t. the source (over {f1['targets']} "
              f"targets); closer to the target's concepts than the source's for "
              f"{f1['closer_to_target']} of {f1['targets']} targets"
              if f1["measured"] else "not measured (signed activations or no examples)")  # fmt: skip
        half = "never" if f2["m_half"] is None else f"at m = {f2['m_half']}"
        t2 = (f"{_yn(f2['supported'])}: {f2['k']} components explain "
              f"{f2['evr_k']:.2f} of the perturbation energy (first {f2['evr_1']:.2f}); "
              f"removing them drops success {f2['success_0']:.2f} -> "
              f"{f2['success_k']:.2f} (halved {half}); adding only them to the "
              f"clean activation gives {f2['add_only_k']:.2f}")  # fmt: skip
        t3 = (f"{_yn(f3['supported'])}: gap {f3['gap']:+.3f} over {f3['runs']} runs, "
              f"p = {f3['p_value']:.3g}" if f3["measured"] else f"not measured: {f3['why']}")  # fmt: skip
        lines += [f"- **{model} / {layer}**: F1 {t1}. F2 {t2}. F3 {t3}."]
    return lines


def _composition_table(per: dict) -> list[str]:
    lines = ["| layer | target | examples | k | cos(adv, src) | cos(adv, tgt) | "
             "cos(src, tgt) | new vs src | new vs tgt | new vs both | weight shift "
             "toward target |", "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    n = len(lines)
    for layer, lr in per["dissection"].get("layers", {}).items():
        for c in lr["composition"]:
            lines.append(
                f"| {layer} | {c['target']} | {c['images']} | {c['k']} | "
                f"{c['mean_cos_adv_src']:.3f} | {c['mean_cos_adv_tgt']:.3f} | "
                f"{c['mean_cos_src_tgt']:.3f} | {c['new_vs_src']} | {c['new_vs_tgt']} | "
                f"{c['new']} | {c['shift_toward_target']:+.3f} |"
            )
    return lines if len(lines) > n else ["No concept composition (no non-negative layer "
                                         "with successful examples)."]  # fmt: skip


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _probe_lines(p: dict) -> list[str]:
    lines = ["Supervised probes of SynthAerial concepts (CAVs on mean-pooled "
             "activations, TCAV score of each target class; Net2Vec set IoU and "
             "predicted area on the source images, clean vs adversarial).", "",
             "| layer | target | concept | TCAV clean | TCAV adversarial |",
             "|---|---|---|---|---|"]  # fmt: skip
    for layer, lp in p["layers"].items():
        lines += [f"| {layer} | {t['target']} | {t['concept']} | {t['clean']:.2f} | "
                  f"{t['adv']:.2f} |" for t in lp["tcav"]]  # fmt: skip
    lines += ["", "| layer | concept | IoU clean | IoU adversarial | area clean | "
              "area adversarial |", "|---|---|---|---|---|---|"]  # fmt: skip
    for layer, lp in p["layers"].items():
        lines += [f"| {layer} | {n['concept']} | {_fmt(n['iou_clean'])} | "
                  f"{_fmt(n['iou_adv'])} | {n['area_clean']:.3f} | {n['area_adv']:.3f} |"
                  for n in lp["net2vec"]]  # fmt: skip
    lines += ["", f"**Planted check** ({p['concept']} CAV vs the mean perturbation "
              f"towards {p['target']}):", ""]  # fmt: skip
    for layer, lp in p["layers"].items():
        pl = lp["planted"]
        if "skipped" in pl:
            lines.append(f"- {layer}: not measured, {pl['skipped']}.")
            continue
        cos = ", ".join(f"{t} {c:+.3f}" for t, c in pl["cosine"].items())
        lines.append(f"- {layer}: cosine per target {cos}; the perturbation towards "
                     f"{p['target']} is the most aligned with the {p['concept']} "
                     f"CAV: {_yn(pl['toward'])}.")  # fmt: skip
    return lines


def markdown(results: dict, with_reconstructions: bool = True) -> str:
    """The report section: ASR, F1-F3 per model, supervised probes."""
    r, a = results, results["attack"]
    lines = [
        f"### Adversarial dissection: {len(r['models'])} models x "
        f"{len(r['attacks'])} attacks",
        "",
        f"Targeted white-box attacks in pixel space [0, 1]: {', '.join(r['attacks'])}; "
        f"l_inf budgets {', '.join(r['eps'])} with {a['steps']} steps of eps x "
        f"{a['alpha']:g} (C&W-l2: c = {a['cw_c']:g}, {a['cw_binary_steps']} x "
        f"{a['cw_steps']} Adam steps, unbounded). ASR = successful (image, target) "
        "pairs over pairs whose source class is not the target. The successful "
        f"examples at {r['dissect_eps']} (and C&W) are dissected.",
        "",
        *_asr_table(r),
        "",
        "### Findings per model and layer",
        "",
    ]  # fmt: skip
    for model, per in r["per_model"].items():
        lines += _verdict_lines(model, r["findings"][model])
        if per["dissection"].get("skipped"):
            lines.append(
                f"- **{model}**: no dissection, {per['dissection']['skipped']}."
            )
    for model, per in r["per_model"].items():
        info = per["info"]
        # A photo's class is the network's own clean top-1: no accuracy.
        clean = ("photo classes (clean top-1) " + ", ".join(
            f"{p}: {c}" for p, c in info["photo_classes"].items())
            if "photo_classes" in info else f"clean accuracy {per['clean_accuracy']:.2f}")  # fmt: skip
        lines += ["", f"### {model}", "",
                  f"{info['model']} at {info['image_size']} px on {info['data']} "
                  f"({info['classes']}); {clean} on "
                  f"{per['num_images']} source images of {', '.join(per['sources'])}; "
                  f"targets {', '.join(per['targets'])}; layers {', '.join(per['layers'])}; "
                  f"{per['dissection']['num_examples']} successful examples dissected.",
                  "", "Concept composition (F1, ICE/NMF concepts, Hungarian-matched "
                  "mean cosines):", "", *_composition_table(per)]  # fmt: skip
        if per.get("probes"):
            lines += ["", *_probe_lines(per["probes"])]
    if with_reconstructions:
        lines += ["", "### Reconstructions (not verified against the paper)", ""]
        lines += [f"- {part}: {why}." for part, why in RECONSTRUCTIONS]
    return "\n".join(lines)
