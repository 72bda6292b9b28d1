"""Main-job stage `discovery`: NMF (ICE) and TopK SAE concept dictionaries of
the trained backbone, scored against SynthAerial's planted concepts.

Runs `jaxcxai.concepts.discovery.run.discover` (what `python -m
eval.discover` runs) in the stage directory. The config section is a
`configs/discover.py` config whose `backbone` is relative to the main job's
workdir, where the `backbones` stage trains `small_cnn` into
`backbones/small_cnn`.
"""

from __future__ import annotations

import time

import numpy as np

from configs import cli
from eval.stages.common import with_backbone
from jaxcxai.concepts.discovery import run, study
from jaxcxai.training.backbone import load_trained

# Below these sizes the numbers say little (caveats).
MIN_IMAGES = 20  # scenes containing a concept, for its IoU
MIN_SEEDS = 5  # dictionaries per (layer, method), for seed stability

RECONSTRUCTIONS = (
    ("ICE fidelity", "reported as the share of scenes whose predicted scene is "
     "unchanged when the layer is replaced by its k-concept reconstruction "
     "(Zhang et al. 2021 describe the classifier's accuracy on reconstructed "
     "features; their exact normalisation was not checked)"),
    ("TopK SAE", "decoder bias initialised at the data mean instead of the "
     "geometric median, and no AuxK loss for dead latents (Gao et al. 2024)"),
)  # fmt: skip


def caveats(config, results: dict) -> list[str]:
    """Where the sizes are too small for the numbers to carry a conclusion."""
    out, n = [], results["num_images"]
    few = {c: k for c, k in results["concept_images"].items() if k < MIN_IMAGES}
    if few:
        rarest = max(min(few.values()), 1)
        out.append(
            f"Concepts in fewer than {MIN_IMAGES} of the {n} scenes ("
            + ", ".join(f"{c} {k}" for c, k in few.items())
            + "): their IoUs rest on a handful of scenes; about "
            f"{int(np.ceil(n * MIN_IMAGES / rarest))} scenes "
            "(`discovery.data.num_images`) would give each of them "
            f"{MIN_IMAGES}."
        )
    size = results["image_size"]
    for layer, (h, _, _) in results["layer_shapes"].items():
        cell = (size / h) ** 2
        small = [
            c for c in config.concepts
            if results["concept_images"][c]
            and results["concept_area"][c] * n * size**2
            / results["concept_images"][c] < cell
        ]  # fmt: skip
        if small:
            out.append(
                f"At {layer} one cell covers {cell:.0f} px, more than "
                f"{', '.join(small)} cover on average in a scene containing "
                "them: a presence map that coarse can hardly reach IoU "
                f"{results['iou_threshold']} on them; larger scenes "
                "(`discovery.data.image_size`) or earlier layers resolve them."
            )
    s = results["num_seeds"]
    if s < MIN_SEEDS:
        out.append(
            f"Seed stability from {s} seeds ({s * (s - 1) // 2} pairs) has a wide "
            f"spread; use at least {MIN_SEEDS} (`discovery.num_seeds`)."
        )
    return out


def discovery(config, stage_dir: str) -> dict:
    """Fits and scores the dictionaries; returns the stage's report part."""
    config = with_backbone(config, stage_dir)
    spec = cli.to_spec(study.DiscoveryStudy, config)
    t0 = time.perf_counter()
    out = run.discover(spec, stage_dir, load_trained(spec.backbone))
    seconds = time.perf_counter() - t0
    res = out["results"]
    d = config.data
    summary = (
        f"NMF (ICE, {config.nmf.iters} {config.nmf.solver.upper()} iterations, "
        f"k = {config.num_components}) and TopK SAE ({config.sae.num_latents} "
        f"latents, {config.sae.active} active, at least {config.sae.steps} Adam "
        "steps) "
        f"dictionaries of layers {', '.join(config.layers)} of `small_cnn` x "
        f"{config.num_seeds} seeds, fitted on the activation rows of "
        f"{res['num_images']} SynthAerial scenes (seed {d.seed}) at "
        f"{res['image_size']} px and scored against {len(config.concepts)} "
        f"planted objects and {len(config.backgrounds)} background regions; "
        f"{seconds:.0f} s."
    )
    return {
        "summary": summary,
        "markdown": out["markdown"] + "\n\nFull report: `discovery/"
        f"{study.REPORT}`; results: `discovery/{study.RESULTS}`.",
        "figures": out["figures"],
        "reconstructions": list(RECONSTRUCTIONS),
        "caveats": caveats(config, res),
        "results": dict(res, stage_seconds=seconds),
    }
