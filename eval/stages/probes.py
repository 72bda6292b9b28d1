"""Main-job stage `probes`: Net2Vec and TCAV concept probes of a trained backbone.

Runs `train.probes.train_and_evaluate` in the stage directory. The config
section is a `configs/probes.py` config whose `backbone` is relative to the
main job's workdir, where the `backbones` stage trains `small_cnn` into
`backbones/small_cnn`.
"""

from __future__ import annotations

from eval.stages.common import with_backbone
from train import probes as train_probes


def probes(config, stage_dir: str) -> dict:
    """Fits and evaluates the probes; returns {markdown, figures, results}."""
    config = with_backbone(config, stage_dir)
    out = train_probes.train_and_evaluate(config, stage_dir, progress=False)
    meta, best = out["meta"], out["results"]["best_layer"]
    sec = meta["seconds"]
    head = (
        f"Backbone `{config.backbone}`, {meta['num_train']} training and "
        f"{meta['num_test']} held-out images of {meta['image_size']} px; fitting "
        f"{sum(sec.values()):.1f} s. Best layer per concept: "
        + ", ".join(f"{c} {n}" for c, n in best.items())
        + ". Full report: `concepts_report.md`."
    )
    return {
        "markdown": head + "\n\n" + out["markdown"],
        "figures": out["figures"],
        "results": dict(out["results"], fit_seconds=sec),
    }
