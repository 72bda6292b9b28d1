"""Main-job stage `probes`: Net2Vec and TCAV concept probes of a trained backbone.

Runs `train.probes.train_and_evaluate` in the stage directory. The config
section is a `configs/probes.py` config whose `backbone` is relative to the
main job's workdir, where the `backbones` stage trains `small_cnn` into
`backbones/small_cnn`.
"""

from __future__ import annotations

from eval.stages.common import with_backbone
from train import probes as train_probes

# Below these sizes a probe's IoU or a TCAV test says little (caveats).
MIN_TEST_IMAGES = 20  # held-out images containing the concept
MIN_RANDOM_RUNS = 10  # random CAVs per concept and layer

RECONSTRUCTIONS = (
    ("TCAV protocol", "concept vs random CAVs, scores over random runs and a "
     "two-sided t-test against random-vs-random CAVs as the method is commonly "
     "described (Kim et al. 2018); the paper's exact settings were not checked"),
)  # fmt: skip


def caveats(config, meta: dict, results: dict) -> list[str]:
    """Where the sizes are too small for the numbers to carry a conclusion."""
    out = []
    iou = results["net2vec"][config.layers[0]]
    few = {
        c: v["test_images"]
        for c, v in iou.items()
        if v["test_images"] < MIN_TEST_IMAGES
    }
    if few:
        out.append(
            "Set IoUs from fewer than "
            f"{MIN_TEST_IMAGES} held-out images ("
            + ", ".join(f"{c} {n}" for c, n in few.items())
            + ") vary a lot between splits; raise `probes.data.num_test`."
        )
    if config.tcav.num_random < MIN_RANDOM_RUNS:
        out.append(
            f"TCAV significance from {config.tcav.num_random} random runs has "
            f"little power; use at least {MIN_RANDOM_RUNS} "
            "(`probes.tcav.num_random`)."
        )
    if results.get("tcav_linear_head_layers"):
        out.append(
            "Layers followed only by global pooling and the linear classifier "
            f"({', '.join(results['tcav_linear_head_layers'])}) give every image "
            "the same gradient, so their TCAV scores are 0 or 1 by construction."
        )
    return out


def probes(config, stage_dir: str) -> dict:
    """Fits and evaluates the probes; returns {markdown, figures, results}."""
    config = with_backbone(config, stage_dir)
    out = train_probes.train_and_evaluate(config, stage_dir, progress=False)
    meta, best = out["meta"], out["results"]["best_layer"]
    sec = meta["seconds"]
    d = config.data
    summary = (
        f"{len(meta['concepts'])} SynthAerial concepts x {len(meta['layers'])} "
        f"layers ({', '.join(meta['layers'])}) of the `small_cnn` backbone; "
        f"{meta['num_train']} training scenes (seed {d.seed}) and "
        f"{meta['num_test']} held-out scenes (seed {d.test_seed}) at "
        f"{meta['image_size']} px; Net2Vec: {config.net2vec.runs} runs x "
        f"{config.net2vec.epochs} epochs; TCAV: {config.tcav.method} CAVs, "
        f"{config.tcav.num_random} random runs of {config.tcav.num_random_images} "
        f"images; fitting {sum(sec.values()):.0f} s."
    )
    head = (
        "Best layer per concept (highest held-out set IoU): "
        + ", ".join(f"{c} {n or 'n/a (no held-out image)'}" for c, n in best.items())
        + ". Full report: `probes/concepts_report.md`."
    )
    return {
        "summary": summary,
        "markdown": head + "\n\n" + out["markdown"],
        "figures": out["figures"],
        "reconstructions": list(RECONSTRUCTIONS),
        "caveats": caveats(config, meta, out["results"]),
        "results": dict(out["results"], fit_seconds=sec),
    }
