"""Caption-noise study of DUCH and CHNR: aggregation over seeds, a verdict
that respects seed noise, the report table and its figures.

The CHNR papers (Mikriukov et al. 2022) claim that CHNR's noise-aware pair
weights make retrieval degrade less than DUCH as the caption noise rate p
grows. A run of each (method, p, seed) gives mAP@K in both directions; this
module averages them over seeds and decides the claim only when the paired
per-seed differences pass a paired t-test (two-sided, 5 %). Reported numbers of
the papers are never drawn on the same axes as ours: their dataset and code
length differ (`plot_reported` draws them on their own).
"""

from __future__ import annotations

import csv
import os

import numpy as np

from jaxcxai import plotting

__all__ = [
    "ARROWS",
    "DIRECTIONS",
    "REPORTED_METHODS",
    "aggregate",
    "find_csv",
    "plot_map",
    "plot_pr",
    "plot_reported",
    "read_reported",
    "verdict",
]

DIRECTIONS = ("i2t", "t2i")
ARROWS = {"i2t": "I→T", "t2i": "T→I"}
REPORTED_METHODS = ("DUCH", "DUCH-NR-NW", "DUCH-NR-EW", "DUCH-NR-DW")
# Two-sided level of the paired test: a difference counts when it exceeds
# t_{1 - ALPHA/2, n-1} standard errors (12.7 with 2 seeds, 4.3 with 3): with
# few seeds the standard error itself is uncertain, so a fixed z would
# declare too much.
ALPHA = 0.05


def critical_t(seeds: int) -> float:
    """The t quantile a paired difference over `seeds` seeds must exceed."""
    from scipy import stats

    return float(stats.t.ppf(1.0 - ALPHA / 2, seeds - 1))


def read_reported(path: str) -> dict:
    """{(method, direction): {p: mAP@20}} from a `chnr_reported_*.csv`
    (header `probs,p1,...`, marker rows `I → T` / `T → I`, method rows)."""
    out, direction = {}, None
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    probs = [float(p) for p in rows[0][1:]]
    for row in rows[1:]:
        if not row or not row[0]:
            continue
        name = row[0].strip()
        if name.replace(" ", "") in ("I→T", "T→I"):
            direction = "i2t" if name.startswith("I") else "t2i"
            continue
        if direction is None:
            raise ValueError(f"{path}: method row {name!r} before a direction row")
        out[name, direction] = dict(zip(probs, map(float, row[1:]), strict=True))
    return out


def aggregate(runs: dict) -> dict:
    """{(method, p): {d: (mean, std), "avg": (mean, std), "seeds": [...],
    "per_seed_avg": {seed: avg}}} from runs {name: {method, p, seed, i2t,
    t2i}}; std is the sample std over seeds (0 for one seed)."""
    groups: dict = {}
    for r in runs.values():
        groups.setdefault((r["method"], r["p"]), []).append(r)
    out = {}
    for key, rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rs = sorted(rs, key=lambda r: r["seed"])
        stats = {}
        for d in DIRECTIONS + ("avg",):
            v = np.array(
                [r[d] if d != "avg" else np.mean([r[x] for x in DIRECTIONS])
                 for r in rs]
            )  # fmt: skip
            stats[d] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0)
        stats["seeds"] = [r["seed"] for r in rs]
        stats["noisy_pairs"], stats["num_train"] = (
            rs[0]["noisy_pairs"],
            rs[0]["num_train"],
        )
        stats["per_seed_avg"] = {
            r["seed"]: float(np.mean([r[x] for x in DIRECTIONS])) for r in rs
        }
        out[key] = stats
    return out


def verdict(agg: dict, rates) -> dict:
    """Per p > 0: does CHNR degrade less than DUCH, beyond seed noise?

    The paired per-seed difference CHNR - DUCH of the average mAP at p is
    tested two-sided at level `ALPHA` (paired t-test: the mean against
    `critical_t(n)` standard errors); with one seed nothing is decided.

    Returns:
      {f"{p:g}": {"duch_drop", "chnr_drop", "difference", "stderr", "t_crit",
      "seeds", "outcome"}} with outcome "chnr_better", "duch_better",
      "inconclusive" or "one_seed".
    """
    out = {}
    clean = agg.get(("DUCH", 0.0))
    for p in rates:
        duch, chnr = agg.get(("DUCH", p)), agg.get(("CHNR", p))
        if p == 0 or clean is None or duch is None or chnr is None:
            continue
        seeds = sorted(set(duch["per_seed_avg"]) & set(chnr["per_seed_avg"]))
        diff = np.array(
            [chnr["per_seed_avg"][s] - duch["per_seed_avg"][s] for s in seeds]
        )
        n = len(diff)
        se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        mean = float(diff.mean()) if n else float("nan")
        t_crit = critical_t(n) if n > 1 else float("nan")
        if n < 2:
            outcome = "one_seed"
        elif mean > t_crit * se:
            outcome = "chnr_better"
        elif mean < -t_crit * se:
            outcome = "duch_better"
        else:
            outcome = "inconclusive"
        out[f"{p:g}"] = dict(
            duch_drop=clean["avg"][0] - duch["avg"][0],
            chnr_drop=clean["avg"][0] - chnr["avg"][0],
            difference=mean, stderr=se, t_crit=t_crit, seeds=n, outcome=outcome,
        )  # fmt: skip
    return out


def plot_map(agg: dict, path: str, setting: str) -> str:
    """Our mAP against p, both directions; mean ± std over seeds."""
    fig, axes = plotting.figure(1, 2, size=(9.0, 3.6), sharey=True)
    for ax, d in zip(axes, DIRECTIONS, strict=True):
        for method, style in (("DUCH", "o-"), ("CHNR", "s-")):
            pts = sorted((p, s[d]) for (m, p), s in agg.items() if m == method)
            if method == "CHNR" and ("DUCH", 0.0) in agg:  # shared p = 0 start
                pts = [(0.0, agg["DUCH", 0.0][d])] + pts
            if pts:
                ps = [p for p, _ in pts]
                ax.errorbar(ps, [v[0] for _, v in pts], [v[1] for _, v in pts],
                            fmt=style, capsize=3, label=method)  # fmt: skip
        ax.set(title=f"{ARROWS[d]}", xlabel="caption noise rate p")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mAP@20 (reference semantics)")
    plotting.legend_outside(axes[1], title="method (ours)")
    fig.suptitle(f"Retrieval under caption noise, ours: {setting}")
    return plotting.save(fig, path)


def plot_reported(reported: dict, path: str, source: str) -> str:
    """The papers' reported mAP@20 against p (UCM, 64 bits), on their own."""
    fig, axes = plotting.figure(1, 2, size=(9.0, 3.6), sharey=True)
    for ax, d in zip(axes, DIRECTIONS, strict=True):
        for m in REPORTED_METHODS:
            pts = sorted(reported.get((m, d), {}).items())
            if pts:
                ax.plot(*zip(*pts), "o--", label=m)
        ax.set(title=ARROWS[d], xlabel="caption noise rate p")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("reported mAP@20")
    plotting.legend_outside(axes[1], title="method (reported)")
    fig.suptitle(f"Reported by the CHNR authors on UCM with 64-bit codes ({source})")
    return plotting.save(fig, path)


def plot_pr(runs: dict, path: str, seed: int) -> str:
    """Precision against recall over the Hamming radius, one run per (method, p)."""
    fig, axes = plotting.figure(1, 2, size=(9.0, 3.6), sharey=True)
    shown = [r for r in runs.values() if r["seed"] == seed]
    for ax, d in zip(axes, DIRECTIONS, strict=True):
        for r in shown:
            pr = r["pr"][d]
            ax.plot(pr["recall"], pr["precision"], ".-",
                    label=f"{r['method']}, p = {r['p']:g}")  # fmt: skip
        ax.set(title=ARROWS[d], xlabel="recall")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("precision")
    plotting.legend_outside(axes[1])
    fig.suptitle(f"Precision-recall over Hamming radius 0..bits (seed {seed})")
    return plotting.save(fig, path)


def find_csv(path: str, candidates) -> str | None:
    """`path` if given and present, else the first existing candidate."""
    for p in (path,) if path else candidates:
        if p and os.path.isfile(p):
            return p
    return None
