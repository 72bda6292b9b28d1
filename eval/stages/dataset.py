"""Main-job stage `dataset`: a SynthAerial preview with masks and captions."""

from __future__ import annotations

import os


def dataset(config, stage_dir: str) -> dict:
    """Generates a SynthAerial preview with masks and captions."""
    from jaxcxai.data import synthaerial, synthaerial_plots

    data = synthaerial.generate(config.num_preview, size=config.image_size, seed=0)
    synthaerial_plots.plot_samples(data, os.path.join(stage_dir, "samples.png"))
    captions = [c[0] for c in data["captions"]]
    md = [
        f"SynthAerial (generated, no download): {len(synthaerial.SCENES)} scene classes, "
        f"{len(synthaerial.CONCEPTS)} object concepts, "
        f"{len(synthaerial.BACKGROUNDS)} background families.",
        "",
        "First caption of each preview image:",
        "",
    ] + [f"- {c}" for c in captions]
    summary = f"{config.num_preview} preview scenes of {config.image_size} px, seed 0."
    return {"summary": summary, "markdown": "\n".join(md), "figures": ["samples.png"],
            "captions": captions}  # fmt: skip
