"""The gating paper's findings, checked in direction on a study's results.

Each check reads the results of `run.run_study` (rows of `tables`) and says
whether the direction the paper reports (arXiv:2603.29915, section 5;
`paper.FINDINGS`) holds in ours, with the numbers it rests on. They double
as the sanity behaviour expected of the embedded data (EG rises and XD
falls with sigma, low-U strata are more stable, precision of "stable" rises
with nu, low-U rows have the larger removal shift).
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_findings", "monotone_share"]

STRONG = -0.6  # the paper's "strong" XEC


def monotone_share(values, increasing: bool = True) -> float:
    """Share of consecutive steps that go the expected way (ties count)."""
    v = np.asarray(values, np.float64)
    if v.size < 2:
        return float("nan")
    d = np.diff(v)
    return float(np.mean(d >= 0 if increasing else d <= 0))


def _cells(results):
    return [c for r in results["datasets"].values() for c in r.get("figure2", [])]


def _mean_xec(cells, **match):
    v = [c["xec"] for c in cells if all(c[k] == x for k, x in match.items())]
    v = [x for x in v if np.isfinite(x)]
    return (float(np.mean(v)), len(v)) if v else (float("nan"), 0)


def _row(finding, holds, evidence):
    return {"finding": finding, "holds": holds, "evidence": evidence}


def _xec_findings(cells):
    out = []
    finite = [c["xec"] for c in cells if np.isfinite(c["xec"])]
    if finite:
        share = float(np.mean(np.asarray(finite) < STRONG))
        out.append(_row("XEC is strongly negative (< -0.6) in nearly all settings",
                        share >= 0.75,
                        f"{share:.0%} of {len(finite)} cells below -0.6"))  # fmt: skip
    groups = (("SHAP (Tree/Kernel) vs LIME", ("treeshap", "kernelshap"), ("lime",)),
              ("IG vs SmoothIG (MLP)", ("ig",), ("sig",)))  # fmt: skip
    for what, first, second in groups:
        xa = [c["xec"] for c in cells if c["explainer"] in first]
        xb = [c["xec"] for c in cells if c["explainer"] in second]
        xa, xb = [x for x in xa if np.isfinite(x)], [x for x in xb if np.isfinite(x)]
        if xa and xb:
            ma, mb = float(np.mean(xa)), float(np.mean(xb))
            out.append(_row(f"{what}: the first gives the more negative XEC",
                            ma < mb, f"mean XEC {ma:.2f} ({len(xa)} cells) vs "
                            f"{mb:.2f} ({len(xb)})"))  # fmt: skip
    kinds = {c["perturbation"] for c in cells} & {"gaussian", "missing", "permutation"}
    if "permutation" in kinds and len(kinds) > 1:
        means = {k: _mean_xec(cells, perturbation=k)[0] for k in sorted(kinds)}
        holds = means["permutation"] >= max(
            v for k, v in means.items() if k != "permutation"
        )
        out.append(_row("permutation is the weakest perturbation (highest mean XEC)",
                        bool(holds),
                        ", ".join(f"{k} {v:.2f}" for k, v in means.items())))  # fmt: skip
    gauss = [c for c in cells if c["perturbation"] == "gaussian"]
    if gauss:
        eg = np.mean([monotone_share(c["eg"], True) for c in gauss])
        xd = np.mean([monotone_share(c["xd"], False) for c in gauss])
        out.append(_row("Gaussian sweeps: EG rises and XD falls with sigma",
                        bool(eg >= 0.7 and xd >= 0.7),
                        f"{eg:.0%} of EG steps rise, {xd:.0%} of XD steps fall "
                        f"({len(gauss)} cells)"))  # fmt: skip
    return out


def check_findings(results: dict) -> list[dict]:
    """[{"finding", "holds" (bool), "evidence"}] for every finding the
    study's results can speak to (skipped experiments give no row)."""
    out = _xec_findings(_cells(results))
    ds = results["datasets"].values()
    e3 = [row for r in ds for row in r.get("figure3", [])]
    if e3:
        ok = [row["tau_low"] >= row["tau_medium"] >= row["tau_high"] for row in e3]
        out.append(_row("E3: tau falls from the low to the high U_epi stratum",
                        bool(np.mean(ok) >= 0.5) and all(
                            row["tau_low"] > row["tau_high"] for row in e3),
                        f"low >= medium >= high in {sum(ok)} of {len(ok)} "
                        "(dataset, sigma) rows; low > high in "
                        f"{sum(row['tau_low'] > row['tau_high'] for row in e3)}"))  # fmt: skip
    for r in ds:
        t3 = r.get("table3")
        if t3:
            p = [row["precision"] for row in sorted(t3, key=lambda row: row["nu"])]
            out.append(_row(f"E4 ({r['name']}): precision of 'stable' rises with nu",
                            monotone_share(p, True) == 1.0,
                            "precision " + ", ".join(f"{x:.3f}" for x in p)
                            + " at increasing nu"))  # fmt: skip
        rf = [row for row in r.get("table4", []) if row["config"] == "rf:treeshap"]
        if rf:
            t = [row["tau_mean"] for row in sorted(rf, key=lambda row: row["nu"])]
            out.append(_row(f"E5 ({r['name']}): RF + TreeSHAP stability rises with nu",
                            monotone_share(t, True) == 1.0,
                            "tau " + ", ".join(f"{x:.3f}" for x in t)
                            + " at increasing nu"))  # fmt: skip
        for cfg in sorted({row["model"] for row in r.get("faithfulness", [])}):
            g = {row["group"]: row["shift_mean"] for row in r["faithfulness"]
                 if row["model"] == cfg}  # fmt: skip
            out.append(_row(f"faithfulness ({r['name']}, {cfg}): low-U shift > high-U",
                            bool(g["low"] > g["high"]),
                            f"low {g['low']:.3g}, high {g['high']:.3g}, "
                            f"random {g['random']:.3g}"))  # fmt: skip
        fo = r.get("focus", [])
        for cfg in sorted({row["model"] for row in fo}):
            by = {}
            for row in fo:
                if row["model"] == cfg:
                    by.setdefault(row["ratio"], {})[row["group"]] = row["signal_mass"]
            ok = [g["low"] >= g["high"] for g in by.values()]
            out.append(_row(f"focus ({r['name']}, {cfg}): low-U SignalMass >= high-U",
                            bool(np.mean(ok) >= 0.5),
                            f"low >= high at {sum(ok)} of {len(ok)} noise ratios ("
                            + ", ".join(f"r={k:g}: {g['low']:.3f} vs {g['high']:.3f}"
                                        for k, g in sorted(by.items())) + ")"))  # fmt: skip
        ex = r.get("extras")
        if ex:
            a, c = ex["approximation"], ex["contamination"]
            ok = [lo >= hi for lo, hi in zip(a["rho_low"], a["rho_high"])]
            out.append(_row(f"extras ({r['name']}): lowest-U rows approximate the "
                            "global importance better than highest-U rows",
                            bool(np.mean(ok) >= 0.5),
                            f"rho low >= high at {sum(ok)} of {len(ok)} fractions"))  # fmt: skip
            pos = [i for i, rate in enumerate(c["rates"]) if rate > 0]
            ok = [c["rho_filtered"][i] >= c["rho_naive"][i] for i in pos]
            out.append(_row(f"extras ({r['name']}): U filtering recovers the "
                            "contaminated global importance",
                            bool(ok) and bool(np.mean(ok) >= 0.5),
                            f"filtered >= naive at {sum(ok)} of {len(ok)} rates > 0"))  # fmt: skip
    img = results.get("image")
    if img and "xec" in img:
        out.append(_row("image: XEC = -1 for IG and SmoothGrad (strongly negative)",
                        all(v < STRONG for v in img["xec"].values()),
                        ", ".join(f"{k} {v:.2f}" for k, v in img["xec"].items())))  # fmt: skip
    return out
