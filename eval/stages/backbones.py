"""Main-job stage `backbones`: trains the configured backbones on SynthAerial."""

from __future__ import annotations

import os

import numpy as np

from jaxcxai import plotting
from jaxcxai.metric_writers import read_jsonl
from train.classifier import train_and_evaluate


def backbones(config, stage_dir: str) -> dict:
    """Trains each configured backbone; plots the loss curves."""
    results, curves = {}, {}
    for name in config.keys():
        workdir = os.path.join(stage_dir, name)
        results[name] = train_and_evaluate(config[name], workdir)
        curves[name] = [
            (r["step"], r["loss"])
            for r in read_jsonl(os.path.join(workdir, "metrics.jsonl"))
            if "loss" in r
        ]
    fig, ax = plotting.figure(size=(6.4, 3.6))
    for name, curve in curves.items():
        if curve:
            steps, losses = np.asarray(curve).T
            ax.plot(steps, losses, label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (scene xent + object BCE)")
    ax.grid(alpha=0.3)
    plotting.legend_outside(ax, title="backbone")
    plotting.title(ax, "Backbone training loss, mean over each logging interval")
    plotting.save(fig, os.path.join(stage_dir, "loss.png"))
    rows = [
        "| model | steps | batch | train / test images | image size | scene "
        "accuracy | object-label accuracy | object macro F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        c = config[name]
        rows.append(
            f"| {name} | {r['steps']} | {c.train.batch_size} | {c.data.num_train} / "
            f"{c.data.num_test} | {c.data.image_size} px | {r['accuracy']:.3f} | "
            f"{r.get('label_accuracy', float('nan')):.3f} | "
            f"{r.get('label_macro_f1', float('nan')):.3f} |"
        )
    rows += [
        "",
        "Scene accuracy: 13-way scene classification on held-out scenes (seed + "
        "10,000); object labels: presence of each of the 8 object concepts "
        "(logit > 0), accuracy over all labels and macro F1 over concepts.",
    ]
    summary = "; ".join(
        f"`{n}` on {config[n].data.num_train} SynthAerial scenes of "
        f"{config[n].data.image_size} px (seed {config[n].data.seed}), "
        f"{results[n]['steps']} AdamW steps of batch {config[n].train.batch_size}"
        for n in results
    )
    return {"summary": summary + ".", "results": results,
            "markdown": "\n".join(rows), "figures": ["loss.png"]}  # fmt: skip
