"""Main-job stage `loce`: per-instance LoCEs of SynthAerial with a trained backbone.

Runs `train.loce.fit` and `eval.loce.analyze` in the stage directory. The
config section is a `configs/loce.py` config whose `backbone` is relative to
the main job's workdir (the stage directory's parent), where the `backbones`
stage trains `small_cnn` into `backbones/small_cnn`.
"""

from __future__ import annotations

import time

from eval import loce as eval_loce
from eval.stages import resolve_backbone
from train import loce as train_loce


def loce(config, stage_dir: str) -> dict:
    """Fits and analyses the LoCEs; returns {markdown, figures, results}."""
    backbone = resolve_backbone(config.backbone, stage_dir)
    t0 = time.perf_counter()
    train_loce.fit(config, stage_dir, backbone)
    t1 = time.perf_counter()
    out = eval_loce.analyze(config, stage_dir, backbone)
    t2 = time.perf_counter()
    results = dict(out["results"], fit_seconds=t1 - t0, analysis_seconds=t2 - t1)
    head = (
        f"Backbone `{config.backbone}`; LoCE fitting {t1 - t0:.1f} s, analyses "
        f"{t2 - t1:.1f} s. Full report: `loce_report.md`."
    )
    return {
        "markdown": head + "\n\n" + out["markdown"],
        "figures": out["figures"],
        "results": results,
    }
