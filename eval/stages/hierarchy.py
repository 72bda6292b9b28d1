"""Main-job stage `hierarchy`: explaining, verifying and aligning semantic
hierarchies in embedding spaces (Schwalbe et al. 2026, arXiv:2603.26798).

Runs `jaxcxai.hierarchy.run.hierarchy` (what `python -m eval.hierarchy`
runs) in the stage directory: per embedding source and modality, the named
agglomerative tree of the class centroids, its consistency with the
ontology (SynthAerial scene taxonomy, WordNet), zero-shot and UAES metrics,
and the lambda sweep of the ontology-guided alignment. The config section is
a `configs/hierarchy.py` config. Its default SynthAerial features are the
hashing stage's (1000 scenes at 128 px, MobileNetV2 + MiniLM), read from the
shared feature cache when the hashing stage ran first with the same
settings; otherwise this stage computes them (minutes on a CPU).
"""

from __future__ import annotations

import time

from configs import cli
from jaxcxai.hierarchy import report, run, study

# Below these sizes the numbers say little (caveats).
MIN_TEST_IMAGES = 100  # held-out images behind zero-shot and UAES numbers
MIN_CLASSES = 100  # ImageNet classes behind a text-image comparison


def caveats(config, results: dict) -> list[str]:
    """Where the sizes or the sources are too small for a conclusion."""
    out = []
    info = results.get("two_tower")
    if info and info["features"] == "synthetic":
        out.append(
            "The two-tower model trained on synthetic stand-in features "
            "(`hierarchy.synthaerial.features = 'synthetic'`): its numbers test "
            "the pipeline, not MobileNetV2 / MiniLM."
        )
    if info and info["num_test"] < MIN_TEST_IMAGES:
        out.append(
            f"Zero-shot and UAES numbers rest on {info['num_test']} held-out images; "
            f"use at least {MIN_TEST_IMAGES} (`hierarchy.synthaerial.num_images`)."
        )
    for row in results["comparison"]:
        n = max(
            r["num_classes"] for r in results["views"] if r["classes"] == row["classes"]
        )
        if row["classes"] == "imagenet" and n < MIN_CLASSES:
            out.append(
                f"The ImageNet text-image comparison uses {n} classes; use at least "
                f"{MIN_CLASSES} (`hierarchy.imagenet.num_classes`, 0 = all 1000)."
            )
    if not any(r["classes"] == "imagenet" and r["modality"] == "text"
               for r in results["views"]):  # fmt: skip
        out.append(
            "No text view of the ImageNet classes: the paper's finding (text "
            "hierarchies match WordNet better) is not tested on ImageNet here."
        )
    return out


def hierarchy(config, stage_dir: str) -> dict:
    """Runs the study; returns the stage's report part."""
    spec = cli.to_spec(study.HierarchyStudy, config)
    t0 = time.perf_counter()
    out = run.hierarchy(spec, stage_dir, progress=True)
    seconds = time.perf_counter() - t0
    res = out["results"]
    verdicts = "; ".join(
        f"{c['classes']}: text {'better' if c['text_better'] else 'not better'} "
        f"(T {report.num(c['text_triplet'])} vs {report.num(c['image_triplet'])})"
        for c in res["comparison"]
    )  # fmt: skip
    summary = (
        f"Semantic hierarchies of {len(res['views'])} views "
        f"({', '.join(r['name'] for r in res['views'])}), extract / verify / align "
        f"with {len(res['views'][0]['align']['lams']) if res['views'] else 0} "
        f"alignment strengths; text vs image modality: {verdicts or 'n/a'}; "
        f"{seconds:.0f} s."
    )
    return {
        "summary": summary,
        "markdown": report.markdown(res, with_reconstructions=False)
        + f"\n\nFull report: `hierarchy/{study.REPORT}`; results: "
        f"`hierarchy/{study.RESULTS}`.",
        "figures": out["figures"],
        "reconstructions": list(report.RECONSTRUCTIONS),
        "caveats": caveats(config, res),
        "results": dict(res, stage_seconds=seconds),
    }
