"""Main-job stage `background`: the background bias of the trained
backbone's concept embeddings (Schwalbe et al. 2025, arXiv 2504.08602).

Runs `jaxcxai.concepts.background.run.background` (what `python -m
eval.background` runs) in the stage directory: GloCEs and Net2Vec vectors
trained on vanilla and background-randomised views of SynthAerial objects,
their IoU per test background group, the boat-on-road check and the
embedding shift. The config section is a `configs/background.py` config
whose `backbone` is relative to the main job's workdir, where the
`backbones` stage trains `small_cnn` into `backbones/small_cnn`.
"""

from __future__ import annotations

import time

from configs import cli
from eval.stages.common import with_backbone
from jaxcxai.concepts.background import report, run, study
from jaxcxai.training.backbone import load_trained

# Below these sizes the numbers say little (caveats).
MIN_TEST = 30  # held-out objects per concept, for group means
MIN_VIEWS = 8  # training views per object


def caveats(config, results: dict) -> list[str]:
    """Where the sizes are too small for the numbers to carry a conclusion."""
    out = []
    m = results["num_test"] * results["views"]["test"]
    if m < MIN_TEST:
        out.append(
            f"Each test group's IoU rests on {m} views of {results['num_test']} "
            f"held-out objects; use at least {MIN_TEST} "
            "(`background.data.num_test`) before reading group differences."
        )
    if results["views"]["train"] < MIN_VIEWS:
        out.append(
            f"n = {results['views']['train']} randomised views per training "
            f"object (the paper uses more); `background.views.train` >= "
            f"{MIN_VIEWS} gives vectors less tied to the few backgrounds drawn."
        )
    return out


def background(config, stage_dir: str) -> dict:
    """Runs the study; returns the stage's report part."""
    config = with_backbone(config, stage_dir)
    spec = cli.to_spec(study.BackgroundStudy, config)
    t0 = time.perf_counter()
    out = run.background(spec, stage_dir, load_trained(spec.backbone), progress=True)
    seconds = time.perf_counter() - t0
    res = out["results"]
    summary = (
        f"Background bias of {', '.join(res['concepts'])} in layers "
        f"{', '.join(res['layers'])} of `small_cnn`: {', '.join(res['methods'])} "
        f"vectors trained on {', '.join(res['train_kinds'])} views (n = "
        f"{res['views']['train']}) of {res['num_train']} objects per concept, "
        f"tested on {res['num_test']} held-out objects in {len(res['test_groups'])} "
        f"test groups ({res['image_size']} px); {seconds:.0f} s."
    )
    return {
        "summary": summary,
        "markdown": report.markdown(res, with_reconstructions=False)
        + f"\n\nFull report: `background/{study.REPORT}`; results: "
        f"`background/{study.RESULTS}`.",
        "figures": out["figures"],
        "reconstructions": list(report.RECONSTRUCTIONS),
        "caveats": caveats(config, res),
        "results": dict(res, stage_seconds=seconds),
    }
