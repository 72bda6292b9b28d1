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


def loce(config, stage_dir: str) -> dict:
    """Fits and analyses the LoCEs; returns {markdown, figures, results}."""
    config = with_backbone(config, stage_dir)
    t0 = time.perf_counter()
    out = train_loce.train_and_evaluate(config, stage_dir, progress=False)
    seconds = time.perf_counter() - t0
    head = (
        f"Backbone `{config.backbone}`; {out['num_loces']} LoCEs fitted and "
        f"analysed in {seconds:.1f} s. Full report: `loce_report.md`."
    )
    return {
        "markdown": head + "\n\n" + out["markdown"],
        "figures": out["figures"],
        "results": dict(out["results"], seconds=seconds),
    }
