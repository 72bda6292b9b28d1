"""Main-job stage `loce`: per-instance LoCEs of SynthAerial with a trained backbone.

Runs `train.loce.train_and_evaluate` in the stage directory. The config
section is a `configs/loce.py` config whose `backbone` is relative to the
main job's workdir, where the `backbones` stage trains `small_cnn` into
`backbones/small_cnn`.
"""

from __future__ import annotations

import time

from eval.stages.common import with_backbone
from train import loce as train_loce

# Fewer LoCEs per concept than this make per-concept GMMs (k by BIC) and
# sub-concept ARIs unstable (caveat).
MIN_PER_CONCEPT = 30

RECONSTRUCTIONS = (
    ("centroid-projection segmentation", "per-image IoU of the thresholded "
     "projection of a concept's mean LoCE on held-out scenes, averaged per "
     "concept: the LoCE paper's comparison protocol could not be read and is "
     "reconstructed"),
)  # fmt: skip


def caveats(config, results: dict) -> list[str]:
    out = []
    small = {c: n for c, n in results["counts"].items() if n < MIN_PER_CONCEPT}
    if small:
        out.append(
            f"Concepts with fewer than {MIN_PER_CONCEPT} LoCEs ("
            + ", ".join(f"{c} {n}" for c, n in small.items())
            + "): their GMMs, sub-concept ARIs and outlier ranks are unstable; "
            "raise `loce.data.num_images` or `loce.data.max_per_concept`."
        )
    if config.analysis.purity_seeds < 5:
        out.append(
            f"Purity is averaged over {config.analysis.purity_seeds} samples; "
            "its spread is underestimated below 5."
        )
    return out


def loce(config, stage_dir: str) -> dict:
    """Fits and analyses the LoCEs; returns {markdown, figures, results}."""
    config = with_backbone(config, stage_dir)
    t0 = time.perf_counter()
    out = train_loce.train_and_evaluate(config, stage_dir, progress=False)
    seconds = time.perf_counter() - t0
    d = config.data
    summary = (
        f"{out['num_loces']} LoCEs (one per object instance of at least "
        f"{d.min_area} px, at most {d.max_per_concept or 'all'} per concept) of "
        f"{d.num_images} SynthAerial scenes (seed {d.seed}), layers "
        f"{', '.join(config.layers)} of `small_cnn`, {config.loce.steps} AdamW "
        f"steps each; segmentation on {d.num_eval_images} held-out scenes (seed "
        f"{d.eval_seed}); {config.analysis.embedding} embedding; fitted and "
        f"analysed in {seconds:.0f} s."
    )
    return {
        "summary": summary,
        "markdown": out["markdown"] + "\n\nFull report: `loce/loce_report.md`.",
        "figures": out["figures"],
        "reconstructions": list(RECONSTRUCTIONS),
        "caveats": caveats(config, out["results"]),
        "results": dict(out["results"], seconds=seconds),
    }
