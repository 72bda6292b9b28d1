"""Stability of concept representations in a trained backbone (Mikriukov et
al. 2023, arXiv 2304.14864).

    python -m train.classifier --config configs/classifier.py:small_cnn \\
        --workdir workdirs/small_cnn
    python -m eval.stability --config configs/stability.py --workdir \\
        workdirs/stability [--config.backbone=workdirs/small_cnn]

Measures, on SynthAerial scenes of an unseen seed, the retrieval stability
S = separation x consistency of 1D/2D/3D CAVs per layer and sample count for
object concepts, their planted sub-concepts and scene classes; the
consistency of ICE (NMF) concepts across seeds; and the stability of concept
attribution with and without SmoothGrad, plus single-vs-batched gradients.

Variants: `default` (600 pool + 200 held-out scenes of 4 scene classes at the
backbone's training size, conv1-conv3, n = 10/30/100, R = 5 runs, SmoothGrad
with 10 copies; about 1-1.5 minutes on 2 CPU cores), `tiny` (CI: 120 + 60
scenes, conv2-conv3, n = 5/15, R = 3) and `full` (4000 + 1000 scenes of 6
scene classes, n = 10/30/100/300, R = 10, the reference's 50 SmoothGrad
copies). In the main job (`eval.reproduce`) `backbone` is relative to the
job's workdir, where the `backbones` stage trains `small_cnn`.
"""

import ml_collections

from jaxcxai.data.synthaerial import SUBCONCEPTS

VARIANTS = ("default", "tiny", "full")

# Checked before anything is written (configs/validate.py).
CONSTRAINTS = {
    "> 0": (
        "batch_size", "data.num_train", "data.num_heldout", "retrieval.samples",
        "retrieval.steps", "ice.num_images",
        "ice.num_components", "ice.iters", "attribution.num_images",
        "attribution.copies", "attribution.sigma",
    ),
    ">= 0": ("seed", "data.image_size", "data.seed", "retrieval.alpha"),
    ">= 2": ("retrieval.runs", "ice.seeds", "attribution.repeats"),
}  # fmt: skip
BATCH_LIMITS = (("batch_size", "data.num_train"),)
DEVICE_BATCHES = {"batch_size": "all"}


def get_config(variant=None):
    variant = variant or "default"
    if variant not in VARIANTS:
        raise KeyError(f"{variant!r}; valid: {', '.join(VARIANTS)}")
    tiny, full = variant == "tiny", variant == "full"
    c = ml_collections.ConfigDict()
    c.seed = 0  # the runs' subsets, NMF inits and attribution noise
    # Workdir of `train.classifier` (checkpoint + backbone.json).
    c.backbone = "workdirs/small_cnn_tiny" if tiny else "workdirs/small_cnn"
    # Spatial activations (N, h, w, C) whose CAVs are studied.
    c.layers = ("conv2", "conv3") if tiny else ("conv1", "conv2", "conv3")
    # Object-level concepts: scenes containing such an object are positives.
    c.concepts = ("car",) if tiny else (("car", "tree", "truck", "boat") if full
                                        else ("car", "tree"))  # fmt: skip
    # Sub-concepts "concept:sub" (parents in concepts): all planted ones here.
    c.subconcepts = tuple(f"{p}:{s}" for p in c.concepts for s in SUBCONCEPTS[p])
    # Scene-level concepts: scenes of that class are positives.
    c.scenes = ("parking_lot",) if tiny else (
        ("parking_lot", "forest", "harbor", "airport") if full
        else ("parking_lot", "forest"))  # fmt: skip
    c.batch_size = 8 if tiny else 64  # activation extraction (multiple of devices)
    c.sharded = False  # split runs and attributed scenes over all devices

    c.data = ml_collections.ConfigDict()
    c.data.num_train = 120 if tiny else (4000 if full else 600)  # pool scenes
    c.data.num_heldout = 60 if tiny else (1000 if full else 200)  # held-out scenes
    c.data.image_size = 0  # 0: the backbone's training image size
    c.data.seed = 70_000  # SynthAerial seed (the backbone saw 0 and 10_000)
    # Scene classes the scenes are drawn from (uniformly); () = all 13.
    c.data.scenes = ("parking_lot", "dense_residential", "forest", "harbor")
    if full:
        c.data.scenes += ("airport", "river")

    c.retrieval = ml_collections.ConfigDict()
    c.retrieval.dims = ("1d", "2d", "3d")  # CAV views: spatial mean, channel mean, map
    # n concept and n non-concept pool scenes per run.
    c.retrieval.samples = (5, 15) if tiny else ((10, 30, 100, 300) if full
                                                else (10, 30, 100))  # fmt: skip
    c.retrieval.runs = 3 if tiny else (10 if full else 5)  # R CAVs per cell
    c.retrieval.method = "logistic"  # "logistic" | "hinge" | "sgd" | "mean_diff"
    c.retrieval.alpha = 0.01  # L2 strength of the classifier
    c.retrieval.steps = 50  # L-BFGS iterations
    c.retrieval.metric = "accuracy"  # held-out separation: "accuracy" | "auc"

    c.ice = ml_collections.ConfigDict()
    c.ice.num_images = 20 if tiny else (200 if full else 50)  # pool scenes factorized
    c.ice.num_components = 4 if tiny else 6  # k, NMF rank (<= channels)
    c.ice.seeds = 2 if tiny else (10 if full else 5)  # dictionaries per layer
    c.ice.iters = 30 if tiny else (300 if full else 100)  # NMF MU iterations

    c.attribution = ml_collections.ConfigDict()
    c.attribution.num_images = 4 if tiny else (32 if full else 8)  # scenes attributed
    c.attribution.repeats = 2 if tiny else (10 if full else 3)  # T runs, fresh noise
    c.attribution.copies = 4 if tiny else (50 if full else 10)  # SmoothGrad n (+ clean)
    c.attribution.sigma = 0.1  # noise level relative to the image's value range
    # True: the reference's noise std (sigma range)^2 instead of sigma range.
    c.attribution.quirk_noise_scale = False
    # Batched gradients vs one image at a time: "sum" (reference) | "vmap".
    c.attribution.batch_mode = "sum"
    return c
