"""Main-job stage `backbones`: trains the configured backbones on SynthAerial."""

from __future__ import annotations

import os

import numpy as np


def backbones(config, stage_dir: str) -> dict:
    """Trains each configured backbone on SynthAerial; plots the loss curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxcxai.metric_writers import read_jsonl
    from train.classifier import train_and_evaluate

    results, curves = {}, {}
    for name in config.keys():
        workdir = os.path.join(stage_dir, name)
        results[name] = train_and_evaluate(config[name], workdir)
        curves[name] = [
            (r["step"], r["loss"])
            for r in read_jsonl(os.path.join(workdir, "metrics.jsonl"))
            if "loss" in r
        ]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, curve in curves.items():
        if curve:
            steps, losses = np.asarray(curve).T
            ax.plot(steps, losses, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(stage_dir, "loss.png"), dpi=120)
    plt.close(fig)
    head = (
        "| model | steps | scene accuracy | object-label accuracy | object macro F1 |"
    )
    rows = [head, "|---|---|---|---|---|"]
    for name, r in results.items():
        rows.append(
            f"| {name} | {r['steps']} | {r['accuracy']:.3f} | "
            f"{r.get('label_accuracy', float('nan')):.3f} | "
            f"{r.get('label_macro_f1', float('nan')):.3f} |"
        )
    return {"results": results, "markdown": "\n".join(rows), "figures": ["loss.png"]}
