"""Stages of the main job (`eval.reproduce`). Each takes its config section
and a stage directory and returns a JSON-able dict with `markdown` (its part
of the report), `figures` (PNG names inside the stage directory) and results.
"""

from __future__ import annotations

import os
import platform

import jax
import numpy as np


def resolve_backbone(path: str, stage_dir: str) -> str:
    """An absolute `path` as is; a relative one under the main-job workdir
    (the stage directory's parent), where the `backbones` stage trains."""
    if os.path.isabs(path):
        return path
    return os.path.join(os.path.dirname(os.path.abspath(stage_dir)), path)


def environment(config, stage_dir: str) -> dict:
    """Records devices and software versions."""
    import flax
    import optax

    devices = jax.devices()
    info = {
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "process_count": jax.process_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
    }
    rows = "\n".join(f"| {k} | {v} |" for k, v in info.items())
    return {"info": info, "markdown": "| what | value |\n|---|---|\n" + rows}


def dataset(config, stage_dir: str) -> dict:
    """Generates a SynthAerial preview with masks and captions."""
    from jaxcxai.data import synthaerial, synthaerial_plots

    data = synthaerial.generate(config.num_preview, size=config.image_size, seed=0)
    synthaerial_plots.plot_samples(data, os.path.join(stage_dir, "samples.png"))
    captions = [c[0] for c in data["captions"]]
    md = [
        f"SynthAerial: {len(synthaerial.SCENES)} scene classes, "
        f"{len(synthaerial.CONCEPTS)} object concepts, "
        f"{len(synthaerial.BACKGROUNDS)} background families.",
        "",
        "First caption of each preview image:",
        "",
    ] + [f"- {c}" for c in captions]
    return {"markdown": "\n".join(md), "figures": ["samples.png"], "captions": captions}


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
