"""Backbone training on SynthAerial: scene class + multi-label object presence.

    python -m train.classifier --config configs/classifier.py:small_cnn \\
        --workdir workdirs/small_cnn
    python -m train.classifier --config configs/classifier.py:resnet18 \\
        --workdir workdirs/resnet18 --config.train.steps=3000

Variants: `small_cnn` (800 steps, batch 64) and `resnet18` (250 steps, batch
32), both on 64x64 scenes, and their `_tiny` forms for CI (32x32, 30 steps).
On 2 CPU cores: about 3.7 steps/s for small_cnn and 0.7 steps/s for
resnet18 (8 fake devices); see the main job's report for accuracies.
"""

import ml_collections

VARIANTS = ("small_cnn", "resnet18", "small_cnn_tiny", "resnet18_tiny")

# Checked before anything is written (configs/validate.py).
CONSTRAINTS = {
    "> 0": (
        "data.image_size", "data.num_train", "data.num_test", "train.batch_size",
        "train.steps", "train.lr", "train.log_every", "train.checkpoint_every",
        "train.keep_checkpoints", "mesh.num_model",
    ),
    ">= 0": (
        "seed", "data.seed", "train.weight_decay", "train.multilabel_weight",
        "train.eval_every",
    ),
    "[0, 1]": ("data.boat_on_water_p",),
}  # fmt: skip
BATCH_LIMITS = (("train.batch_size", "data.num_train"),)
DEVICE_BATCHES = {"train.batch_size": "mesh"}


def get_config(variant=None):
    variant = variant or "small_cnn"
    if variant not in VARIANTS:
        raise KeyError(f"{variant!r}; valid: {', '.join(VARIANTS)}")
    tiny = variant.endswith("_tiny")
    c = ml_collections.ConfigDict()
    c.seed = 0  # parameter init and batch order
    c.model = ml_collections.ConfigDict()
    c.model.name = variant.removesuffix("_tiny")  # a jaxcxai.models.zoo name
    c.data = ml_collections.ConfigDict()
    c.data.name = "synthaerial"  # "synthaerial" | "digits" (sklearn 8 x 8)
    c.data.image_size = 32 if tiny else 64  # scene side (px)
    c.data.num_train = 256 if tiny else 4000  # training images
    c.data.num_test = 64 if tiny else 800  # test images (seed + 10_000)
    c.data.seed = 0  # scene generator seed of the training split
    c.data.boat_on_water_p = 0.9  # planted boat/water correlation
    c.train = ml_collections.ConfigDict()
    resnet = c.model.name == "resnet18"
    c.train.batch_size = 32 if tiny or resnet else 64  # global batch
    # Sized for a 2-core CPU main job (a few minutes each); scene accuracy
    # saturates early on SynthAerial. Raise on accelerators.
    c.train.steps = 30 if tiny else (250 if resnet else 800)  # optimizer steps
    c.train.lr = 1e-3  # peak AdamW learning rate (cosine decay)
    c.train.weight_decay = 1e-4  # AdamW weight decay
    c.train.multilabel_weight = 1.0  # weight of the object-presence BCE term
    c.train.log_every = 10 if tiny else 50  # steps between metrics.jsonl records
    c.train.checkpoint_every = 20 if tiny else 100  # steps between checkpoints
    c.train.keep_checkpoints = 2  # newest checkpoints kept
    c.train.eval_every = 0 if tiny else 250  # steps between test evals; 0: end only
    c.mesh = ml_collections.ConfigDict()
    c.mesh.num_model = 1  # model-parallel axis size (1: pure data parallel)
    return c
