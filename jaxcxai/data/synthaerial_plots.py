"""Figure of SynthAerial samples: images, class-mask overlays, background maps."""

from __future__ import annotations

import os
import textwrap

import numpy as np

from jaxcxai.data.scenes import SCENES
from jaxcxai.data.shapes import CONCEPTS
from jaxcxai.data.textures import BACKGROUNDS

# One distinct colour per concept (index c - 1) and per background family.
CONCEPT_COLORS = np.array(
    [
        (1.0, 0.1, 0.9),
        (1.0, 0.2, 0.2),
        (1.0, 0.6, 0.0),
        (0.1, 0.9, 1.0),
        (1.0, 1.0, 0.2),
        (0.2, 1.0, 0.2),
        (0.6, 0.3, 1.0),
        (0.0, 0.4, 1.0),
    ]
)
BACKGROUND_COLORS = np.array(
    [
        (0.45, 0.75, 0.3),
        (0.1, 0.35, 0.1),
        (0.15, 0.35, 0.8),
        (0.9, 0.8, 0.5),
        (0.4, 0.4, 0.4),
        (0.7, 0.3, 0.3),
        (0.8, 0.7, 0.2),
        (0.95, 0.95, 1.0),
    ]
)


def overlay(
    image: np.ndarray, class_mask: np.ndarray, alpha: float = 0.6
) -> np.ndarray:
    """Blends concept colours over an (H, W, 3) uint8 image; returns float in [0, 1]."""
    out = image.astype(np.float64) / 255.0
    sel = class_mask > 0
    out[sel] = (1 - alpha) * out[sel] + alpha * CONCEPT_COLORS[class_mask[sel] - 1]
    return out


def plot_samples(data: dict, path: str, num: int = 6, captions: bool = True) -> str:
    """Saves a grid: per sample the image, the class-mask overlay, the background map.

    Args:
        data: output of `synthaerial.generate` (needs image, class_mask,
            background_map, scene; captions optional).
        path: output image file (PNG); written atomically.
        num: number of samples (columns) to show.
        captions: print the first caption under each column.

    Returns:
        The path written.
    """
    from matplotlib.patches import Patch

    from jaxcxai import plotting

    num = min(num, len(data["image"]))
    fig, axes = plotting.figure(3, num, size=(2.3 * num + 0.8, 8.8), squeeze=False)
    rows = ("image", "object masks", "background map")
    for j in range(num):
        scene = SCENES[int(data["scene"][j])]
        panels = (
            data["image"][j],
            overlay(data["image"][j], data["class_mask"][j]),
            BACKGROUND_COLORS[data["background_map"][j]],
        )
        for i, panel in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(rows[i])
        axes[0, j].set_title(f"scene: {scene}")
        if captions and "captions" in data:
            text = textwrap.fill(str(data["captions"][j][0]), 30)
            axes[2, j].set_xlabel(text, fontsize=7)
    handles = [
        Patch(color=CONCEPT_COLORS[k], label=c) for k, c in enumerate(CONCEPTS)
    ] + [Patch(color=BACKGROUND_COLORS[k], label=b) for k, b in enumerate(BACKGROUNDS)]
    fig.legend(handles=handles, loc="outside lower center", ncol=8,
               title="object concepts (row 2) and background families (row 3)")  # fmt: skip
    side = data["image"].shape[1]
    fig.suptitle(f"SynthAerial: {num} generated scenes ({side} px) with their "
                 "object masks and background maps; first caption below")  # fmt: skip
    return os.path.join(os.path.dirname(path), plotting.save(fig, path))
