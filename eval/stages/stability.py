"""Main-job stage `stability`: how stable the trained backbone's concept
representations are (Mikriukov et al. 2023, arXiv 2304.14864).

Runs `jaxcxai.concepts.stability.run.stability` (what `python -m
eval.stability` runs) in the stage directory: retrieval stability of 1D/2D/3D
CAVs per layer and sample count for object concepts, sub-concepts and scene
classes, ICE consistency, attribution stability with and without SmoothGrad,
and the planted checks. The config section is a `configs/stability.py`
config whose `backbone` is relative to the main job's workdir, where the
`backbones` stage trains `small_cnn` into `backbones/small_cnn`.
"""

from __future__ import annotations

import time

from configs import cli
from eval.stages.common import with_backbone
from jaxcxai.concepts.stability import report, run, study
from jaxcxai.training.backbone import load_trained

# Below these sizes the numbers say little (caveats).
MIN_RUNS = 10  # CAVs per cell, for consistency
MIN_HELDOUT = 30  # held-out scenes per side, for separation
MAX_OVERLAP = 0.5  # n / pool scenes above which runs share many scenes
MIN_REPEATS = 5  # noise repeats, for attribution sign flips


def caveats(config, results: dict) -> list[str]:
    """Where the sizes are too small for the numbers to carry a conclusion."""
    out, r = [], results["runs"]
    if r < MIN_RUNS:
        out.append(
            f"Consistency from R = {r} runs ({r * (r - 1) // 2} pairs of CAVs) per "
            f"cell has a wide spread; use at least {MIN_RUNS} "
            "(`stability.retrieval.runs`)."
        )
    m = results["heldout_per_class"]
    if m < MIN_HELDOUT:
        out.append(
            f"Separation rests on {m} + {m} held-out scenes per concept (steps of "
            f"{1 / (2 * m):.3f}); more held-out scenes "
            "(`stability.data.num_heldout`) give finer numbers."
        )
    n = max(results["samples"])
    shared = [c["name"] for c in results["concepts"]
              if n / min(c["train_positives"], c["train_negatives"]) > MAX_OVERLAP]  # fmt: skip
    if shared:
        out.append(
            f"At n = {n} the runs of {', '.join(shared)} draw more than "
            f"{MAX_OVERLAP:.0%} of the pool's scenes of one side, so they share many "
            "scenes and their consistency is inflated; a larger pool "
            "(`stability.data.num_train`) removes the overlap."
        )
    if results["skipped"]:
        out.append(
            "Cells skipped for too few pool scenes: "
            + ", ".join(
                f"{s['concept']} n = {s['samples']}" for s in results["skipped"]
            )
            + "."
        )
    t = results["attribution_settings"]["repeats"]
    if t < MIN_REPEATS:
        out.append(
            f"Attribution sign flips from T = {t} noise repeats on "
            f"{results['attribution_settings']['num_images']} scenes; use at least "
            f"{MIN_REPEATS} repeats (`stability.attribution.repeats`)."
        )
    if results["backend"] == "cpu":
        out.append(
            "Single vs batched gradients run on the CPU, where XLA computes both "
            "the same way: their difference is 0 by construction, not evidence "
            "that the paper's GPU instability is absent."
        )
    return out


def stability(config, stage_dir: str) -> dict:
    """Runs the study; returns the stage's report part."""
    config = with_backbone(config, stage_dir)
    spec = cli.to_spec(study.StabilityStudy, config)
    t0 = time.perf_counter()
    out = run.stability(spec, stage_dir, load_trained(spec.backbone), progress=True)
    seconds = time.perf_counter() - t0
    res, d, a = out["results"], config.data, config.attribution
    summary = (
        f"Retrieval stability of {len(res['concepts'])} concepts (objects: "
        f"{', '.join(config.concepts) or 'none'}; sub-concepts: "
        f"{', '.join(config.subconcepts) or 'none'}; scene classes: "
        f"{', '.join(config.scenes) or 'none'}) in layers {', '.join(config.layers)} "
        f"of `small_cnn`: R = {res['runs']} CAVs per (concept, layer, "
        f"{'/'.join(x.upper() for x in res['dims'])} view, n = "
        f"{', '.join(map(str, res['samples']))}) on {res['num_train']} pool + "
        f"{res['num_heldout']} held-out SynthAerial scenes (seed {d.seed}"
        + (f"; {', '.join(d.scenes)}" if d.scenes else "")
        + f") at {res['image_size']} px; ICE: {config.ice.seeds} NMF dictionaries "
        f"(k = {config.ice.num_components}) per layer; attribution of "
        f"{a.num_images} scenes x {a.repeats} noise repeats, SmoothGrad with "
        f"{a.copies} copies; {seconds:.0f} s."
    )
    return {
        "summary": summary,
        "markdown": report.markdown(res, with_reconstructions=False)
        + f"\n\nFull report: `stability/{study.REPORT}`; results: "
        f"`stability/{study.RESULTS}`.",
        "figures": out["figures"],
        "reconstructions": list(report.RECONSTRUCTIONS),
        "caveats": caveats(config, res),
        "results": dict(res, stage_seconds=seconds),
    }
