"""Main-job stage `adversarial`: concept-based dissection of targeted
adversarial attacks (Mikriukov et al. 2024, arXiv 2403.16782; a
reconstruction).

Runs `jaxcxai.adversarial.run.adversarial` (what `python -m
eval.adversarial` runs) in the stage directory: BIM, PGD, MI-FGSM and C&W
on the trained SynthAerial backbone, the packaged ImageNet MobileNetV2 on
the bundled photos and a digits CNN; the attack success rates, the
concept composition of clean vs adversarial activations (F1), the global
perturbation components and their ablation (F2), their target specificity
(F3), TCAV / Net2Vec of SynthAerial concepts and the planted boat/harbor
check. The config section is a `configs/adversarial.py` config whose
`backbone` is relative to the main job's workdir, where the `backbones`
stage trains `small_cnn` into `backbones/small_cnn`.
"""

from __future__ import annotations

import time

from configs import cli
from eval.stages.common import with_backbone
from jaxcxai.adversarial import report, run, study
from jaxcxai.training.backbone import load_trained

# Below these sizes the numbers say little (caveats).
MIN_EXAMPLES = 30  # successful examples per model for the decomposition
MIN_PERMUTATIONS = 1000  # permutations of the specificity test


def caveats(config, results: dict) -> list[str]:
    """Where the sizes are too small for the numbers to carry a conclusion."""
    out = []
    for model, per in results["per_model"].items():
        n = per["dissection"]["num_examples"]
        if n < MIN_EXAMPLES:
            out.append(
                f"{model}: {n} successful examples are dissected; the components "
                f"and the specificity test need at least {MIN_EXAMPLES} (more "
                "source images or targets in `adversarial.scenes` / `photos` / "
                "`digits`)."
            )
    if results["dissect"]["permutations"] < MIN_PERMUTATIONS:
        out.append(
            f"The specificity p-values come from {results['dissect']['permutations']} "
            f"permutations; p-values near 0.05 need >= {MIN_PERMUTATIONS}."
        )
    return out


def adversarial(config, stage_dir: str) -> dict:
    """Runs the study; returns the stage's report part."""
    config = with_backbone(config, stage_dir)
    spec = cli.to_spec(study.AdversarialStudy, config)
    t0 = time.perf_counter()
    net = load_trained(spec.backbone) if "synthaerial" in spec.models else None
    out = run.adversarial(spec, stage_dir, net, progress=True)
    seconds = time.perf_counter() - t0
    res = out["results"]
    summary = (
        f"Targeted attacks {', '.join(res['attacks'])} (l_inf "
        f"{', '.join(res['eps'])}) on {', '.join(res['models'])}; "
        + "; ".join(
            f"{m}: {p['num_images']} source images x {len(p['targets'])} "
            f"targets, {p['dissection']['num_examples']} successful examples "
            f"dissected at {', '.join(p['layers'])}"
            for m, p in res["per_model"].items()
        )  # fmt: skip
        + f"; {seconds:.0f} s."
    )
    return {
        "summary": summary,
        "markdown": report.markdown(res, with_reconstructions=False)
        + f"\n\nFull report: `adversarial/{study.REPORT}`; results: "
        f"`adversarial/{study.RESULTS}`.",
        "figures": out["figures"],
        "reconstructions": list(report.RECONSTRUCTIONS),
        "caveats": caveats(config, res),
        "results": dict(res, stage_seconds=seconds),
    }
