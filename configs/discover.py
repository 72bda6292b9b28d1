"""Unsupervised concept discovery (NMF/ICE and TopK SAE) in a trained backbone.

    python -m train.classifier --config configs/classifier.py:small_cnn \\
        --workdir workdirs/small_cnn
    python -m eval.discover --config configs/discover.py --workdir workdirs/discover \\
        [--config.backbone=workdirs/small_cnn]

Fits `num_seeds` dictionaries per layer and method on the spatial
activations of SynthAerial scenes of an unseen seed and scores them against
the planted objects and background regions (reconstruction R², seed
stability, localization IoU, CAV match, scene fidelity).

Variants: `default` (200 scenes at the backbone's training size, conv1-conv3,
k = 10, 3 seeds, NMF 200 MU iterations, SAE 600 steps), `tiny` (CI: 24 scenes,
conv2-conv3, 2 seeds, a few iterations) and `full` (1000 scenes, 5 seeds,
500 iterations, an overcomplete SAE of 3000 steps). In the main job (`eval.reproduce`)
`backbone` is relative to the job's workdir, where the `backbones` stage
trains `small_cnn`.
"""

import ml_collections

from jaxcxai.data.synthaerial import BACKGROUNDS, CONCEPTS

VARIANTS = ("default", "tiny", "full")

# Checked before anything is written (configs/validate.py).
CONSTRAINTS = {
    "> 0": (
        "batch_size", "num_components", "data.num_images", "nmf.iters",
        "sae.num_latents", "sae.active", "sae.batch_size", "sae.learning_rate",
        "sae.steps", "report.num_references",
    ),
    ">= 0": ("seed", "data.image_size", "data.seed", "nmf.l1"),
    ">= 2": ("num_seeds",),  # stability needs a pair of dictionaries
    "[0, 1]": ("data.boat_on_water_p", "quality.iou_threshold"),
    "(0, 1)": ("quality.top_quantile",),
    "(0, 1]": ("report.crop",),
}  # fmt: skip
BATCH_LIMITS = (("batch_size", "data.num_images"),)
DEVICE_BATCHES = {"batch_size": "all"}


def get_config(variant=None):
    variant = variant or "default"
    if variant not in VARIANTS:
        raise KeyError(f"{variant!r}; valid: {', '.join(VARIANTS)}")
    tiny, full = variant == "tiny", variant == "full"
    c = ml_collections.ConfigDict()
    c.seed = 0  # dictionary inits and the SAE's row order
    # Workdir of `train.classifier` (checkpoint + backbone.json).
    c.backbone = "workdirs/small_cnn_tiny" if tiny else "workdirs/small_cnn"
    # Spatial activations (N, h, w, C) factorized; rows are the h w positions.
    c.layers = ("conv2", "conv3") if tiny else ("conv1", "conv2", "conv3")
    c.methods = ("nmf", "sae")  # "nmf" (ICE) and/or "sae" (TopK autoencoder)
    c.num_components = 6 if tiny else 10  # k: NMF rank (<= channels of each layer)
    c.num_seeds = 2 if tiny else (5 if full else 3)  # dictionaries per layer, method
    c.concepts = CONCEPTS  # planted SynthAerial objects scored (class masks)
    c.backgrounds = BACKGROUNDS  # planted background regions scored
    c.batch_size = 8 if tiny else 64  # activation extraction (multiple of devices)

    c.data = ml_collections.ConfigDict()
    c.data.num_images = 24 if tiny else (1000 if full else 200)  # scenes
    c.data.image_size = 0  # 0: the backbone's training image size
    c.data.seed = 50_000  # SynthAerial seed (the backbone saw 0 and 10_000)
    c.data.boat_on_water_p = 0.9  # SynthAerial planted boat/water correlation

    c.nmf = ml_collections.ConfigDict()
    c.nmf.solver = "mu"  # "mu" (Lee & Seung) | "hals" (coordinate descent)
    c.nmf.iters = 30 if tiny else (500 if full else 200)  # NMF iterations
    c.nmf.l1 = 0.0  # L1 penalty on the codes

    c.sae = ml_collections.ConfigDict()
    c.sae.num_latents = 6 if tiny else (32 if full else 10)  # dictionary size m
    c.sae.active = 2 if tiny else 3  # TopK: latents kept per row
    c.sae.batch_size = 64 if tiny else 256  # rows per Adam step
    c.sae.learning_rate = 5e-3  # Adam learning rate
    # At least this many Adam steps per layer, as whole passes over the rows.
    c.sae.steps = 60 if tiny else (3000 if full else 600)  # training steps

    c.quality = ml_collections.ConfigDict()
    # "area": per concept, keep as many pixels as it covers; "quantile":
    # NetDissect's fixed top quantile (too strict for 8 x 8 maps).
    c.quality.threshold = "area"  # "area" | "quantile"
    c.quality.top_quantile = 0.005  # top share kept when threshold="quantile"
    c.quality.iou_threshold = 0.3  # IoU at which a concept counts as recovered

    c.report = ml_collections.ConfigDict()
    # Layers with a reference-crop grid (one PNG per layer, methods side by side).
    c.report.reference_layers = ("conv3",) if tiny else ("conv2", "conv3")
    c.report.num_references = 4 if tiny else 6  # crops per component
    c.report.crop = 0.5  # crop side as a fraction of the image side
    return c
