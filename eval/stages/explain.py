"""Main-job stage `explain`: attribution methods on the trained backbone and
on a tabular model, with localisation, faithfulness, randomisation and
stability scores.

Calls the library (`jaxcxai.attribution.run.explain`) in the stage
directory; nothing is trained but two small scikit-learn models. The config
section is a `configs/explain.py` config whose `backbone` is relative to the
main job's workdir, where the `backbones` stage trains `small_cnn` into
`backbones/small_cnn`.
"""

from __future__ import annotations

from configs import cli
from eval.stages.common import with_backbone
from jaxcxai.attribution import run, study
from jaxcxai.training.backbone import load_trained

# Below these sizes the numbers carry little (caveats).
MIN_ITEMS = 30  # items for a method-vs-method comparison of means
MIN_PER_CONCEPT = 10  # items for a per-concept statement
MIN_PRESENCE = 0.5  # mean presence probability of a concept's logit
MIN_ROWS = 50  # tabular rows (the uncertainty-gating paper's groups)
PAPER_SAMPLES = {"rise_masks": 4000, "lime_samples": 1000, "smooth_n": 50}

RECONSTRUCTIONS = (
    ("parameter randomisation", "each weight array of the randomised layers is "
     "re-drawn from N(0, std(weights)^2) and BatchNorm statistics are kept "
     "(Adebayo et al. 2018 re-initialise from the training initialisers); "
     "`attribution.scores.host_reinit`, swappable"),
    ("deletion / insertion", "pixels removed to black / inserted into a "
     "Gaussian-blurred copy in equal steps (Petsiuk et al. 2018); the paper's "
     "blur kernel and step size were not checked"),
    ("RISE masks", "bilinear upsampling by `jax.image.resize`, not "
     "scikit-image's reflect-mode resize of the authors' code (differs at the "
     "border)"),
)  # fmt: skip


def caveats(config, results: dict) -> list[str]:
    """Where the sizes are too small for the numbers to carry a conclusion."""
    img, tab, out = results["image"], results["tabular"], []
    if img["num_items"] < MIN_ITEMS:
        out.append(
            f"Image scores are means over {img['num_items']} items: differences "
            "between methods smaller than about 2 std / sqrt(n) are not resolved; "
            f"use at least {MIN_ITEMS} items (`explain.data.per_concept`)."
        )
    few = {c: n for c, n in img["items_per_concept"].items() if n < MIN_PER_CONCEPT}
    if few:
        out.append(
            "Per-concept relevance masses rest on fewer than "
            f"{MIN_PER_CONCEPT} items ("
            + ", ".join(f"{c} {n}" for c, n in few.items())
            + "); raise `explain.data.per_concept` (and `data.pool`)."
        )
    weak = {
        c: p
        for c, p in img["presence_probability"].items()
        if p is not None and p < MIN_PRESENCE
    }
    if weak:
        out.append(
            "The backbone gives a low presence probability to "
            + ", ".join(f"{c} ({p:.2f})" for c, p in weak.items())
            + ": explanations of a logit the model barely raises say little "
            "about where it looks; train the backbone longer."
        )
    m = config.methods
    low = {k: (getattr(m, k), v) for k, v in PAPER_SAMPLES.items()
           if getattr(m, k) < v}  # fmt: skip
    if low:
        out.append(
            "Sample counts below the papers' ("
            + ", ".join(f"{k} {a} < {b}" for k, (a, b) in low.items())
            + "): the sampled maps are noisier; their seed Kendall in the table "
            "measures how much."
        )
    unchecked = [n for n in m.names if n not in config.metrics.randomization_methods]
    if unchecked:
        out.append(
            "Randomisation was not run for " + ", ".join(unchecked) + " (each "
            "layer step re-runs the method at its full sampling cost); the "
            "`full` variant runs it."
        )
    if tab["num_explain"] < MIN_ROWS:
        out.append(
            f"Tabular scores over {tab['num_explain']} rows; the uncertainty-"
            f"gating paper reports groups of {MIN_ROWS}."
        )
    out += [f"Not run: {s}." for s in tab["skipped"]]
    return out


def _best(img: dict, key: str, lowest: bool) -> str:
    vals = {n: r[key]["mean"] for n, r in img["methods"].items()
            if n != img["control"] and r[key]["mean"] is not None}  # fmt: skip
    if not vals:
        return "n/a"
    name = (min if lowest else max)(vals, key=vals.get)
    ctrl = img["methods"][img["control"]][key]["mean"]
    shown = "n/a" if ctrl is None else f"{ctrl:.3f}"
    return f"{name} ({vals[name]:.3f}; random control {shown})"


def explain(config, stage_dir: str) -> dict:
    """Runs the explanation study; returns {summary, markdown, figures, ...}."""
    config = with_backbone(config, stage_dir)
    spec = cli.to_spec(study.ExplainStudy, config)
    run.check(spec)
    out = run.explain(spec, stage_dir, load_trained(spec.backbone))
    res, img, tab = out["results"], out["results"]["image"], out["results"]["tabular"]
    m, d = config.methods, config.data
    rnd = config.metrics.randomization_layers
    summary = (
        f"{img['num_items']} items (up to {d.per_concept} held-out SynthAerial "
        f"scenes per concept, seed {d.seed}, {img['image_size']} px) explained by "
        f"{len(m.names)} image methods ({', '.join(m.names)}) of the `small_cnn` "
        f"backbone's has_<concept> logit; IG {m.ig_steps} steps, SmoothGrad "
        f"{m.smooth_n} copies, RISE {m.rise_masks} masks, LIME {m.lime_samples} "
        f"samples; cascading randomisation of {', '.join(rnd)} for "
        f"{len(config.metrics.randomization_methods)} methods. Tabular: "
        f"{tab['dataset']}, {tab['num_explain']} held-out rows, an MLP and a "
        f"{config.tabular.forest_trees}-tree random forest. Seed {config.seed}; "
        f"{sum(res['seconds'].values()):.0f} s."
    )
    head = (
        "Highest relevance mass: " + _best(img, "relevance_mass", False)
        + "; lowest deletion AUC: " + _best(img, "deletion_auc", True)
        + "; highest insertion AUC: " + _best(img, "insertion_auc", False)
        + ". Full report: `explain/explain_report.md`."
    )  # fmt: skip
    return {
        "summary": summary,
        "markdown": head + "\n\n" + out["markdown"],
        "figures": out["figures"],
        "reconstructions": list(RECONSTRUCTIONS),
        "caveats": caveats(config, res),
        "results": res,
    }
