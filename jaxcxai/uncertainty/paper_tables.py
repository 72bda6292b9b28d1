"""The paper's tables and figure summaries in markdown, its numbers beside ours.

Tables 1-4 and the cells of Figures 2-3 of Mikriukov, Montavon & Hoehne,
"Uncertainty Gating for Cost-Aware XAI" (arXiv:2603.29915), labelled
"paper: <dataset>; ours: <dataset>" where our role plays the paper's set
(`paper.ROLE_DATASET`). `report.markdown` assembles them.
"""

from __future__ import annotations

import numpy as np

from jaxcxai.uncertainty import paper

__all__ = [
    "figure2",
    "figure3",
    "fmt",
    "paper_value",
    "table1",
    "table2",
    "table3",
    "table4",
]


def fmt(x, nd: int = 3) -> str:
    """`nd` significant digits; "–" for a missing or non-finite value."""
    if x is None or not np.isfinite(x):
        return "–"
    return format(float(x), f".{nd}g")


def paper_value(x) -> str:
    """A paper value as printed there (no rounding)."""
    return "–" if x is None else format(x, "g")


def _on(r: dict, embedded: bool) -> tuple[str, str]:
    p = paper.ROLE_DATASET[r["role"]]
    return p, (f"{r['name']} (plays {p})" if embedded else r["name"])


def table1(results) -> list[str]:
    out = ["| role | paper, dataset | paper d / K / train / val / test | ours, dataset "
           "| ours d / K / train / val / test |", "|---|---|---|---|---|"]  # fmt: skip
    for r in results["datasets"].values():
        p, ours = _on(r, results["embedded"])
        t = paper.TABLE1[p]
        out.append(f"| {r['role']} | {p} | {' / '.join(map(str, t))} | {ours} | "
                   f"{r['num_features']} / {r['num_classes']} / "
                   f"{' / '.join(map(str, r['sizes']))} |")  # fmt: skip
    return out


def table2(results) -> list[str]:
    out = ["| dataset | model | paper F1 plain / UQ | paper mean U / CV | ours F1 plain "
           "/ UQ (± boot std) | ours mean U / CV |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in results["datasets"].values():
        p, ours = _on(r, results["embedded"])
        for row in r.get("table2", []):
            pv = paper.TABLE2[p].get(row["model"], (None,) * 4)
            out.append(
                f"| paper: {p}; ours: {ours} | {row['model']} | {paper_value(pv[0])} / {paper_value(pv[1])} "
                f"| {paper_value(pv[2])} / {paper_value(pv[3])} | {fmt(row['f1_plain'])} / "
                f"{fmt(row['f1'])} ± {fmt(row['f1_std'])} | {fmt(row['u_epi_mean'], 2)} / "
                f"{fmt(row['cv_epi'], 2)} |"
            )
    return out


def figure2(results) -> list[str]:
    out = []
    for r in results["datasets"].values():
        cells = r.get("figure2", [])
        if not cells:
            continue
        cols = list(dict.fromkeys(c["perturbation"] for c in cells))
        rows = list(dict.fromkeys((c["model"], c["explainer"]) for c in cells))
        out += [f"\n{r['name']} ({r['role']}), XEC per cell (strong: < -0.6):\n",
                "| model + explainer | " + " | ".join(cols) + " |",
                "|---|" + "---|" * len(cols)]  # fmt: skip
        for m, e in rows:
            v = {c["perturbation"]: c["xec"] for c in cells
                 if (c["model"], c["explainer"]) == (m, e)}  # fmt: skip
            out.append(
                f"| {m} + {e} | " + " | ".join(fmt(v.get(k), 2) for k in cols) + " |"
            )
    return out


def figure3(results) -> list[str]:
    out = ["| dataset | sigma | tau low | tau medium | tau high | Δ p10-p90 | p | passed |",
           "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results["datasets"].values():
        for row in r.get("figure3", []):
            out.append(
                f"| {r['name']} | {row['sigma']:g} | {fmt(row['tau_low'])} ± "
                f"{fmt(row['std_low'])} | {fmt(row['tau_medium'])} ± {fmt(row['std_medium'])} "
                f"| {fmt(row['tau_high'])} ± {fmt(row['std_high'])} | "
                f"{fmt(row['delta_p10_p90'])} | {row['p']:.2g} | {row['passed']} |"
            )
    return out if len(out) > 2 else []


def table3(results) -> list[str]:
    ds = [r for r in results["datasets"].values() if r.get("table3")]
    if not ds:
        return []
    head, sep = "| nu |", "|---|"
    for r in ds:
        p, ours = _on(r, results["embedded"])
        head += f" paper P / R ({p}) | ours P / R ({ours}) |"
        sep += "---|---|"
    out = [head, sep]
    for i, row in enumerate(ds[0]["table3"]):
        line = f"| {row['nu']:.0%} |"
        for r in ds:
            p = paper.ROLE_DATASET[r["role"]]
            ref = paper.TABLE3.get(p, {}).get(round(row["nu"], 2), (None, None))
            o = r["table3"][i]
            line += (f" {paper_value(ref[0])} / {paper_value(ref[1])} | {fmt(o['precision'])} / "
                     f"{fmt(o['recall'])} |")  # fmt: skip
        out.append(line)
    return out


def table4(results) -> list[str]:
    out = ["| dataset | config | nu | paper tau | paper q | ours tau | ours q |",
           "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results["datasets"].values():
        p, ours = _on(r, results["embedded"])
        for row in r.get("table4", []):
            ref = paper.TABLE4.get(p, {}).get(row["config"], {})
            ref = ref.get(round(row["nu"], 2), (None, None, None))
            pt = "–" if ref[0] is None else f"{ref[0]:.3f} ± {ref[1]:.3f}"
            out.append(
                f"| paper: {p}; ours: {ours} | {row['config']} | {row['nu']:.0%} | {pt} "
                f"| {paper_value(ref[2])} | {fmt(row['tau_mean'])} ± {fmt(row['tau_std'])} | "
                f"{fmt(row['q'], 2)} |"
            )
    return out if len(out) > 2 else []
