"""Main-job stage `probes`: Net2Vec and TCAV concept probes of a trained backbone.

Runs `train.probes.fit` and `eval.concepts.evaluate` in the stage directory.
The config section is a `configs/probes.py` config whose `backbone` is
relative to the main job's workdir (the stage directory's parent), where the
`backbones` stage trains `small_cnn` into `backbones/small_cnn`.
"""

from __future__ import annotations

import time

from eval import concepts as eval_concepts
from eval.stages import resolve_backbone
from train import probes as train_probes


def probes(config, stage_dir: str) -> dict:
    """Fits and evaluates the probes; returns {markdown, figures, results}."""
    backbone = resolve_backbone(config.backbone, stage_dir)
    t0 = time.perf_counter()
    meta = train_probes.fit(config, stage_dir, backbone, progress=False)
    t1 = time.perf_counter()
    out = eval_concepts.evaluate(config, stage_dir, backbone, progress=False)
    t2 = time.perf_counter()
    best = out["results"]["best_layer"]
    head = (
        f"Backbone `{config.backbone}`, {meta['num_train']} training and "
        f"{meta['num_test']} held-out images of {meta['image_size']} px; fitting "
        f"{t1 - t0:.1f} s, evaluation {t2 - t1:.1f} s. Best layer per concept: "
        + ", ".join(f"{c} {n}" for c, n in best.items())
        + ". Full report: `concepts_report.md`."
    )
    results = dict(out["results"], fit_seconds=t1 - t0, eval_seconds=t2 - t1)
    return {
        "markdown": head + "\n\n" + out["markdown"],
        "figures": out["figures"],
        "results": results,
    }
