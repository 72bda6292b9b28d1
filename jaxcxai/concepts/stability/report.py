"""Report of a stability study: planted checks and markdown tables.

Plain results in (`run.stability`'s dict), no config. The planted checks
are the expectations a correct reimplementation must reproduce on any
backbone (Mikriukov et al. 2023, arXiv 2304.14864; spec 8.2 item 8), each
decided from the retrieval rows as paired differences: it holds when the
mean difference has the expected sign and more than half of the pairs
agree.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CHECKS", "RECONSTRUCTIONS", "markdown", "planted_checks"]

CHECKS = (
    "consistency rises with the sample count",
    "at equal samples 1D CAVs are more consistent than 3D CAVs",
    "sub-concepts are less stable than their parent concept",
)
RECONSTRUCTIONS = (
    ("retrieval stability S (spec 5.2)", "S = separation x consistency; "
     "consistency K = 2/(R(R-1)) sum_{r<s} cos(v_r, v_s) of R CAVs fitted on R "
     "random subsets of n concept + n non-concept scenes; separation = the "
     "runs' mean held-out accuracy (or AUC) of w.f + b on M + M scenes. The "
     "paper's exact definition was not read"),
    ("2D CAV", "the channel mean of the map (h w features); which mean the "
     "paper's 2D view takes was not read"),
    ("1D gradient reduction", "a 1D CAV v is attributed against the spatial "
     "mean of the layer gradient, <mean_hw d logit / d A, v> (the sum would "
     "scale every value by h w and change no sign)"),
    ("attribution statistic", "the spread of T repeated attributions with "
     "fresh noise keys: mean pairwise sign-flip rate, median coefficient of "
     "variation, share of (scene, CAV) pairs with one sign in all T; "
     "'without smoothing' is the gradient at one noisy copy, 'with' the "
     "group's SmoothGrad (n noisy copies plus the clean image)"),
    ("concept samples", "whole SynthAerial scenes labelled by the presence of "
     "an object, a sub-concept or their scene class (the paper uses "
     "object-detection data)"),
    ("ICE consistency", "NMF dictionaries from different random inits on the "
     "same activation rows, each matched to seed 0 by the Hungarian "
     "assignment on cosine; the mean matched cosine"),
)  # fmt: skip
LEVEL_NAMES = {"object": "object", "subconcept": "sub-concept", "scene": "scene"}


def _cells(results: dict) -> dict:
    return {(r["concept"], r["layer"], r["dim"], r["samples"]): r
            for r in results["retrieval"]}  # fmt: skip


def _verdict(check: str, pairs: list[tuple[float, float]], what: str) -> dict:
    """Pairs (expected higher, expected lower) -> holds / evidence."""
    if not pairs:
        return {"check": check, "holds": None, "pairs": 0,
                "evidence": "no comparable cells"}  # fmt: skip
    hi, lo = np.asarray(pairs).T
    agree = int(np.sum(hi > lo))
    holds = bool(np.mean(hi - lo) > 0 and agree > len(pairs) / 2)
    return {"check": check, "holds": holds, "pairs": len(pairs), "agree": agree,
            "mean_high": float(hi.mean()), "mean_low": float(lo.mean()),
            "evidence": f"{what}: {agree}/{len(pairs)} pairs as expected; mean "
                        f"{hi.mean():.3f} vs {lo.mean():.3f}"}  # fmt: skip


def planted_checks(results: dict) -> list[dict]:
    """The three planted checks (`CHECKS`) from the retrieval rows."""
    cells = _cells(results)
    keys = sorted({k[:3] for k in cells})
    rise = []
    for c, layer, dim in keys:
        ns = sorted(n for (c2, l2, d2, n) in cells if (c2, l2, d2) == (c, layer, dim))
        if len(ns) >= 2:
            rise.append((cells[c, layer, dim, ns[-1]]["consistency"],
                         cells[c, layer, dim, ns[0]]["consistency"]))  # fmt: skip
    views = [(cells[c, lay, "1d", n]["consistency"], cells[c, lay, "3d", n]["consistency"])
             for (c, lay, d, n) in cells if d == "1d" and (c, lay, "3d", n) in cells]  # fmt: skip
    parent = {c["name"]: c["parent"] for c in results["concepts"]
              if c["level"] == "subconcept"}  # fmt: skip
    subs = [(cells[parent[c], lay, d, n]["stability"], r["stability"])
            for (c, lay, d, n), r in cells.items()
            if c in parent and (parent[c], lay, d, n) in cells]  # fmt: skip
    return [
        _verdict(CHECKS[0], rise, "K at the largest vs the smallest fitted n per "
                 "(concept, layer, view)"),
        _verdict(CHECKS[1], views, "K of 1D vs 3D per (concept, layer, n)"),
        _verdict(CHECKS[2], subs, "S of the parent vs the sub-concept per "
                 "(layer, view, n)"),
    ]  # fmt: skip


def _f(x, spec=".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def _level_means(results: dict) -> list[str]:
    cells, ns = _cells(results), results["samples"]
    level = {c["name"]: c["level"] for c in results["concepts"]}
    lines = ["| level | layer | view | " + " | ".join(f"n = {n}" for n in ns) + " |",
             "|---|---|---|" + "---|" * len(ns)]  # fmt: skip
    for lev in LEVEL_NAMES:
        for layer in results["layers"]:
            for dim in results["dims"]:
                out = []
                for n in ns:
                    got = [r for (c, lay, d, m), r in cells.items()
                           if level[c] == lev and (lay, d, m) == (layer, dim, n)]  # fmt: skip
                    out.append(
                        f"{np.mean([r['stability'] for r in got]):.2f} ("
                        f"{np.mean([r['consistency'] for r in got]):.2f} / "
                        f"{np.mean([r['separation'] for r in got]):.2f})"
                        if got
                        else "–"
                    )
                if any(o != "–" for o in out):
                    lines.append(f"| {LEVEL_NAMES[lev]} | {layer} | {dim.upper()} | "
                                 + " | ".join(out) + " |")  # fmt: skip
    return lines


def _per_concept(results: dict) -> list[str]:
    cells, n = _cells(results), max(results["samples"])
    cols = [(lay, d) for lay in results["layers"] for d in results["dims"]]
    lines = ["| concept | level | pool +/- | "
             + " | ".join(f"{lay} {d.upper()}" for lay, d in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]  # fmt: skip
    for c in results["concepts"]:
        vals = [cells.get((c["name"], lay, d, n)) for lay, d in cols]
        lines.append(
            f"| {c['name']} | {LEVEL_NAMES[c['level']]} | {c['train_positives']}/"
            f"{c['train_negatives']} | "
            + " | ".join(_f(v and v["stability"]) for v in vals)
            + " |"
        )
    return lines


def _attribution(results: dict) -> list[str]:
    a, s = results["attribution"], results["attribution_settings"]
    noise = ("(sigma range)^2, the reference's quirk" if s["quirk_noise_scale"]
             else "sigma range")  # fmt: skip
    lines = [
        f"Concept attribution <d logit / d A, v> of the predicted scene logit of "
        f"{s['num_images']} held-out scenes for every concept's 1D and 3D CAV "
        f"(run 0 at its largest n), repeated T = {s['repeats']} times with fresh "
        f"noise (std {noise}, sigma = {s['sigma']}): 'plain' is the gradient at "
        f"one noisy copy, 'SmoothGrad' the mean over {s['copies']} noisy copies "
        "plus the clean image. Sign flips: mean over pairs of repeats of the "
        "share of (scene, CAV) attributions whose sign differs; CV: median "
        "coefficient of variation over the repeats; one sign: share keeping "
        "one sign in all repeats.",
        "",
        "| layer | CAV | sign flips plain | sign flips SmoothGrad | CV plain | "
        "CV SmoothGrad | one sign plain / SmoothGrad |",
        "|---|---|---|---|---|---|---|",
    ]
    for layer in results["layers"]:
        for dim, v in a.get(layer, {}).items():
            p, q = v["plain"], v["smooth"]
            lines.append(
                f"| {layer} | {dim.upper()} | {p['sign_flip_rate']:.3f} | "
                f"{q['sign_flip_rate']:.3f} | {_f(p['median_cv'])} | "
                f"{_f(q['median_cv'])} | {p['sign_agreement']:.2f} / "
                f"{q['sign_agreement']:.2f} |"
            )
    b = a["batch"]
    worst = max(v["max_abs_diff"] for v in b.values())
    flips = max(v["sign_flip_rate"] for v in b.values())
    mode = "one backward pass of the summed batch" if s["batch_mode"] == "sum" else (
        "per-image gradients vmapped over the batch")  # fmt: skip
    lines += ["", f"**Single vs batched gradients** ({mode}, on "
              f"{results['backend']}): largest absolute difference {worst:.3g}, sign-flip "
              f"rate {flips:.3g} over the layers ("
              + ", ".join(f"{n} {v['max_abs_diff']:.3g}" for n, v in b.items()) + "). "]  # fmt: skip
    if worst == 0 and results["backend"] == "cpu":
        lines[-1] += (
            "Zero is expected on the CPU: a layer gradient has no sum over the "
            "batch, and XLA:CPU evaluates each image's gradient in the same "
            "order alone or in a batch. The instability the paper reports comes "
            "from batch-size-dependent GPU kernels (about 1e-10 in the reference "
            "code); it cannot appear here, so this 0 is no evidence either way."
        )  # fmt: skip
    elif worst == 0:
        lines[-1] += "This device's kernels gave identical gradients."
    else:
        lines[-1] += ("The two computations differ in floating-point summation "
                      "order; tiny sensitivities can flip sign.")  # fmt: skip
    return lines


def markdown(results: dict, with_reconstructions: bool = True) -> str:
    """The report section: retrieval, ICE, attribution, planted checks."""
    r, m = results, results["heldout_per_class"]
    skipped = ", ".join(f"{s['concept']} n = {s['samples']}" for s in r["skipped"])
    lines = [
        f"### Retrieval stability: {len(r['concepts'])} concepts x "
        f"{len(r['layers'])} layers x {len(r['dims'])} views, R = {r['runs']} runs",
        "",
        f"Cells: S (K / separation), the mean over a level's concepts. K: mean "
        f"pairwise cosine of the R CAVs ({r['method']} classifier, each on its "
        f"own random n concept + n non-concept pool scenes of {r['num_train']}); "
        f"separation: held-out {r['metric']} on {m} + {m} scenes per concept; "
        "S = separation x K."
        + (f" Skipped (too few pool scenes): {skipped}." if skipped else ""),
        "",
        *_level_means(r),
        "",
        f"S per concept at n = {max(r['samples'])} (pool +/-: positive and "
        "negative pool scenes):",
        "",
        *_per_concept(r),
        "",
        "### ICE consistency",
        "",
        f"NMF (k = {r['ice_settings']['num_components']}, "
        f"{r['ice_settings']['iters']} MU iterations) of the "
        f"activation rows of {r['ice_settings']['num_images']} pool scenes, "
        f"{r['ice_settings']['seeds']} random inits matched to seed 0.",
        "",
        "| layer | k | consistency | lowest seed | rel. error |",
        "|---|---|---|---|---|",
        *[f"| {n} | {v['k']} | {v['consistency']:.3f} | {min(v['per_run']):.3f} | "
          f"{v['rel_error']:.3f} |" for n, v in r["ice"].items()],
        "",
        "### Attribution stability",
        "",
        *_attribution(r),
        "",
        "### Planted checks",
        "",
        "| check | holds | evidence |",
        "|---|---|---|",
        *[f"| {c['check']} | {'n/a' if c['holds'] is None else ('yes' if c['holds'] else 'no')} "
          f"| {c['evidence']} |" for c in r["planted"]],
    ]  # fmt: skip
    if with_reconstructions:
        lines += ["", "### Reconstructions (not verified against the paper)", ""]
        lines += [f"- {part}: {why}." for part, why in RECONSTRUCTIONS]
    return "\n".join(lines)
