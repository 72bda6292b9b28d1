"""Main-job stage `gating`: uncertainty gating for cost-aware XAI
(arXiv:2603.29915) on the embedded tabular roles and digits.

Runs `jaxcxai.uncertainty.run.run_study` (what `python -m eval.gating`
runs) in the stage directory. The config section is a `configs/gating.py`
config; it needs no backbone (the stage fits its own small models).
"""

from __future__ import annotations

import time

from configs import cli
from jaxcxai.uncertainty import report, run, study

# Below these sizes the numbers carry little (caveats).
MIN_CELL_ROWS = 50  # rows per E2 cell: XD means over fewer are noisy
MIN_GROUP = 30  # rows per faithfulness group / E3 stratum


def caveats(spec: study.GatingStudy, results: dict) -> list[str]:
    """Where the sizes are too small for the numbers to carry a conclusion."""
    out = []
    if spec.e2.num_samples < MIN_CELL_ROWS:
        out.append(
            f"E2 averages tau over {spec.e2.num_samples} rows per level; with 7 "
            "levels one XEC is a Spearman of 7 noisy means (steps of 0.04): use "
            f"at least {MIN_CELL_ROWS} rows (`gating.e2.num_samples`)."
        )
    small = [
        f"{r['name']} ({r['sizes'][2]} test rows)"
        for r in results["datasets"].values()
        if r["sizes"][2] < 3 * min(spec.faithfulness.group_size, MIN_GROUP)
    ]
    if small:
        out.append(
            "Test sets too small for the paper's groups of 50 ("
            + ", ".join(small)
            + "): faithfulness groups and strata shrink to a third of the rows."
        )
    if spec.e3.num_seeds < 10 or spec.e4.num_versions < 5:
        out.append(
            f"E3 averages {spec.e3.num_seeds} noise seeds and the E4 pool "
            f"{spec.e4.num_versions} versions (paper: 10 and 5): per-row tau is "
            "noisier, which lowers precision at high nu."
        )
    return out


def gating(config, stage_dir: str) -> dict:
    """Runs the gating study; returns the stage's report part."""
    spec = cli.checked_spec(study.GatingStudy, config, study.check_study)
    t0 = time.perf_counter()
    out = run.run_study(spec, stage_dir, progress=True)
    seconds = time.perf_counter() - t0
    res = out["results"]
    names = ", ".join(f"{r['name']} ({r['role']})" for r in res["datasets"].values())
    img = res.get("image")
    summary = (
        f"LR (bootstrap, {spec.models.lr_resamples} refits), RF "
        f"({spec.models.forest_trees} trees) and MLP (MC dropout, "
        f"{spec.models.mc_passes} passes) on {names}; E2 on "
        f"{spec.e2.num_samples} rows per cell ({len(spec.e2.perturbations)} "
        f"perturbation kinds), E3 on {spec.e3.num_samples} rows x "
        f"{spec.e3.num_seeds} seeds, E4/E5 pools of {spec.e4.num_samples} rows x "
        f"{len(spec.e4.sigmas)} levels x {spec.e4.num_versions} versions"
        + (f"; image experiment on {img['source']} ({img['num_images']} images)"
           if img else "")
        + f"; {seconds:.0f} s."
    )  # fmt: skip
    return {
        "summary": summary,
        "markdown": report.markdown(spec, res, [], level=3)
        + f"\n\nFull report: `gating/{study.REPORT}`; results: "
        f"`gating/{study.RESULTS}`.",
        "figures": out["figures"],
        "reconstructions": list(report.RECONSTRUCTIONS),
        "caveats": caveats(spec, res),
        "results": dict(res, stage_seconds=seconds),
    }
