"""Report of a comparison study: best matches, planted checks, markdown.

Plain results in (`run.compare`'s dict), no config. `matches` reads a layer
similarity matrix row by row (`depth.best_match`, both directions, and the
semantic flow of A = A); `planted_checks` turns the pairs into the two
planted checks, yes/no with their evidence:

* self-comparison: a network compared with itself has every row's maximum
  on the diagonal (best match at relative-depth distance 0);
* relative depth: across networks, the best matches' mean distance from
  the relative-depth diagonal is below what a random assignment of each
  row to a column gives (its exact mean, and a one-sided Monte Carlo
  p-value of the same rows assigned at random).

Rows whose maximum is attained more than once (`DepthMatch.tied`, e.g. a
layer whose probes never fire: a row of zeros by the 0/0 = 0 convention)
have no best match and are left out of the distances.
"""

from __future__ import annotations

import numpy as np

from jaxcxai.concepts.comparison import depth

__all__ = ["LABELS", "markdown", "matches", "planted_checks"]

LABELS = {"iou": "Net2Vec mask IoU", "pearson": "CAV projection Pearson",
          "cka": "linear CKA (raw activations)"}  # fmt: skip
_TOL = 1e-6


def _direction(sim: np.ndarray, exclude_diagonal: bool = False) -> dict:
    dm = depth.best_match(sim, exclude_diagonal=exclude_diagonal)
    best, dist = np.asarray(dm.best), np.asarray(dm.distance, np.float64)
    keep = ~np.asarray(dm.tied)
    gap = np.abs(np.asarray(dm.depth_a)[:, None] - np.asarray(dm.depth_b)[None])
    if exclude_diagonal:
        gap = np.where(np.eye(len(gap), dtype=bool), np.nan, gap)
    rand = np.nanmean(gap, axis=1)  # expected distance of a uniform column
    mean = lambda x: float(np.mean(x[keep])) if keep.any() else None  # noqa: E731
    return {"best": best.tolist(), "distance": dist.tolist(),
            "tied": (~keep).tolist(), "mean_distance": mean(dist),
            "random_distance": mean(rand)}  # fmt: skip


def matches(sim, self_pair: bool) -> dict:
    """Best matches of an (La, Lb) similarity: "a_to_b" (rows), "b_to_a"
    (columns) and, for A = A, "flow" (best *other* layer), each
    {"best", "distance", "tied", "mean_distance", "random_distance"} with
    the means over untied rows (None when every row is tied)."""
    sim = np.asarray(sim, np.float32)
    out = {"a_to_b": _direction(sim), "b_to_a": _direction(sim.T)}
    if self_pair and sim.shape[0] >= 2:
        out["flow"] = _direction(sim, exclude_diagonal=True)
    return out


def _self_check(m: np.ndarray, fwd: dict) -> dict:
    diag_max = np.diag(m) >= m.max(axis=1) - _TOL
    untied = ~np.asarray(fwd["tied"])
    on_diag = np.asarray(fwd["best"]) == np.arange(len(m))
    return {"passed": bool(diag_max.all() and on_diag[untied].all()),
            "layers": len(m), "diagonal_is_max": int(diag_max.sum()),
            "tied": int((~untied).sum()), "mean_distance": fwd["mean_distance"],
            "min_diagonal": float(np.diag(m).min())}  # fmt: skip


def _depth_check(results: dict, kind: str, settings, rng) -> dict:
    nets = results["networks"]
    rows, obs = [], []
    for p in results["pairs"]:
        if p["self"] or kind not in p:
            continue
        for way, (a, b) in (("a_to_b", (p["a"], p["b"])), ("b_to_a", (p["b"], p["a"]))):
            da, db = np.asarray(nets[a]["depth"]), np.asarray(nets[b]["depth"])
            r = p[kind]["matches"][way]
            for i, (d, tied) in enumerate(zip(r["distance"], r["tied"])):
                if not tied:
                    rows.append(np.abs(da[i] - db))
                    obs.append(d)
    if not rows:
        return {"passed": None, "rows": 0}
    observed = float(np.mean(obs))
    expected = float(np.mean([r.mean() for r in rows]))
    null = np.zeros(settings.draws)
    for r in rows:
        null += r[rng.integers(len(r), size=settings.draws)]
    null /= len(rows)
    p = float((1 + np.sum(null <= observed + _TOL)) / (1 + settings.draws))
    return {"passed": bool(observed < expected and p <= settings.significance),
            "rows": len(rows), "mean_distance": observed,
            "random_distance": expected, "p_value": p, "draws": settings.draws,
            "significance": settings.significance}  # fmt: skip


def planted_checks(results: dict, settings, seed: int) -> dict:
    """{"self": {"passed", network: {kind: evidence}}, "relative_depth":
    {kind: {"passed" (None without a second network), "mean_distance",
    "random_distance", "p_value", "rows", ...}}}.

    Args:
      results: `run.compare`'s results (networks with "depth", pairs).
      settings: `study.CheckSettings` (draws, significance).
      seed: NumPy seed of the Monte Carlo draws.
    """
    own = {}
    for p in results["pairs"]:
        if p["self"]:
            own[p["a"]] = {k: _self_check(np.asarray(p[k]["matrix"]),
                                          p[k]["matches"]["a_to_b"])
                           for k in LABELS if k in p}  # fmt: skip
    passed = all(v["passed"] for net in own.values() for v in net.values())
    rng = np.random.default_rng(seed)
    rel = {k: _depth_check(results, k, settings, rng) for k in LABELS}
    return {"self": dict(own, passed=passed), "relative_depth": rel}


def _fmt(x, spec=".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def _yes(flag) -> str:
    return "n/a" if flag is None else ("**yes**" if flag else "**no**")


def _network_rows(results: dict) -> list[str]:
    present = np.asarray(results["test_images_per_concept"]) > 0
    rows = ["| network | weights | input | compared layers (relative depth) | "
            "Net2Vec IoU per layer |", "|---|---|---|---|---|"]  # fmt: skip
    for name, n in results["networks"].items():
        layers = ", ".join(
            f"{lay} ({d:.2f})" for lay, d in zip(n["layers"], n["depth"])
        )
        iou = np.asarray(n["probe_iou"])[:, present]
        cells = " / ".join(f"{v:.2f}" for v in iou.mean(1)) if present.any() else "n/a"
        src = (
            "SynthAerial (trained)" if n["kind"] == "trained" else "ImageNet (packaged)"
        )
        rows.append(f"| {name} | {src} | {n['input_size']} px | {layers} | {cells} |")
    return rows


def _check_lines(results: dict) -> list[str]:
    ch = results["checks"]
    ev = []
    for net, kinds in ch["self"].items():
        if net == "passed":
            continue
        parts = [f"{LABELS[k].split(' (')[0]} {v['diagonal_is_max']}/{v['layers']} "
                 f"rows ({v['tied']} tied)" for k, v in kinds.items()]  # fmt: skip
        ev.append(f"{net}: " + ", ".join(parts))
    lines = [
        f"- A network compared with itself has its diagonal as every row's "
        f"maximum (best match at distance 0): {_yes(ch['self']['passed'])}. "
        "Rows whose maximum is the diagonal: " + "; ".join(ev) + ".",
        "- Across networks, best matches lie nearer the relative-depth diagonal "
        "than a random assignment of each layer to a layer of the other network "
        "(one-sided Monte Carlo p-value):",
    ]
    for kind, r in ch["relative_depth"].items():
        if r["passed"] is None:
            lines.append(
                f"  - {LABELS[kind]}: n/a (no second network or no untied row)."
            )
            continue
        lines.append(
            f"  - {LABELS[kind]}: {_yes(r['passed'])}: mean distance "
            f"{r['mean_distance']:.3f} over {r['rows']} rows (both directions of "
            f"every pair) vs {r['random_distance']:.3f} at random, p = "
            f"{r['p_value']:.4f} ({r['draws']} draws, level {r['significance']})."
        )
    return lines


def markdown(results: dict) -> str:
    """The report section: networks, planted checks, pair and flow tables."""
    nets, k = results["networks"], len(results["concepts"])
    lines = [
        f"### Concept-based comparison of {len(nets)} networks: {k} SynthAerial "
        f"concepts, {results['num_train']} probe-training and "
        f"{results['num_test']} held-out scenes",
        "",
        "Net2Vec IoU: set IoU of each layer's held-out masks (grid "
        f"{results['grid']} x {results['grid']}) with the true masks, mean over the "
        "concepts present in the held-out scenes (probes that locate nothing "
        "make a layer's similarities meaningless).",
        "",
    ] + _network_rows(results)  # fmt: skip
    if len(results["cav_concepts"]) < k:
        lines += ["", "CAVs (Pearson) only for the concepts in at least 2 training "
                  "scenes: " + (", ".join(results["cav_concepts"]) or "none") + "."]  # fmt: skip
    if results["skipped"]:
        lines += ["", "Not compared (no trained backbone there): "
                  + ", ".join(f"`{s}`" for s in results["skipped"]) + "."]  # fmt: skip
    lines += ["", "**Planted checks**", ""] + _check_lines(results)
    lines += [
        "",
        "**Best matches per pair**: mean |d_A(i) - d_B(j*(i))| over A's layers "
        "(A→B) and over B's layers (B→A), relative depth d = index / (L - 1); "
        "random: the same rows matched to a uniformly random layer; tied rows "
        "(no unique maximum) are left out.",
        "",
        "| A | B | similarity | A→B | B→A | random A→B | tied rows |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in results["pairs"]:
        for kind in LABELS:
            if kind not in p:
                continue
            m = p[kind]["matches"]
            tied = sum(m["a_to_b"]["tied"]) + (
                0 if p["self"] else sum(m["b_to_a"]["tied"])
            )
            lines.append(
                f"| {p['a']} | {p['b']} | {LABELS[kind]} | "
                f"{_fmt(m['a_to_b']['mean_distance'])} | "
                f"{_fmt(m['b_to_a']['mean_distance'])} | "
                f"{_fmt(m['a_to_b']['random_distance'])} | {tied} |"
            )
    lines += ["", "**Semantic flow** (A = A, each layer's most similar *other* "
              "layer): mean relative-depth distance, and the share of layers whose "
              "best other layer is a direct neighbour.", "",
              "| network | similarity | mean distance | neighbour share |",
              "|---|---|---|---|"]  # fmt: skip
    for p in results["pairs"]:
        for kind in LABELS:
            if not p["self"] or kind not in p or "flow" not in p[kind]["matches"]:
                continue
            f = p[kind]["matches"]["flow"]
            steps = np.abs(np.asarray(f["best"]) - np.arange(len(f["best"])))
            share = (
                np.mean(steps[~np.asarray(f["tied"])] == 1)
                if not all(f["tied"])
                else None
            )
            lines.append(f"| {p['a']} | {LABELS[kind]} | {_fmt(f['mean_distance'])} "
                         f"| {_fmt(share)} |")  # fmt: skip
    lines += [
        "",
        "**Reconstructions** (spec concepts.md §6.2, not verified against "
        "Mikriukov et al., arXiv:2305.07663): IoU similarity = set IoU of two "
        "layers' thresholded Net2Vec masks, pooled over all held-out scenes; "
        "masks are the probes' logits resampled bilinearly to the common "
        f"{results['grid']} x {results['grid']} grid, then thresholded at 0; "
        "the R probe runs are averaged as mean signed distances. Pearson "
        "similarity = correlation over the held-out scenes of two layers' CAV "
        "signed distances (mean over the random runs). Layer similarity = mean "
        "over concepts, with 0/0 = 0 (a concept neither layer predicts, or a "
        "constant projection, counts as similarity 0).",
    ]
    return "\n".join(lines)
