"""Concept probes (Net2Vec, TCAV) of a trained backbone on SynthAerial or real data.

    python -m train.classifier --config configs/classifier.py:small_cnn \\
        --workdir workdirs/small_cnn
    python -m train.probes --config configs/probes.py --workdir workdirs/probes \\
        [--config.backbone=workdirs/small_cnn]
    python -m eval.concepts --config configs/probes.py --workdir workdirs/probes

Variants: `default` (600 + 200 scenes at the backbone's training size, all 8
SynthAerial concepts, conv1-conv3, 3 Net2Vec runs, 10 TCAV random runs) and
`tiny` (CI: a few dozen 32 x 32 scenes, conv2-conv3). In the main job
(`eval.reproduce`) `backbone` is relative to the job's workdir, where the
`backbones` stage trains `small_cnn`.

Real data: `--config.data.source=coco` with `data.coco.annotations` (an
instances JSON) and `data.coco.images` (its image folder), or
`--config.data.source=voc` with `data.voc.root` (SegmentationClass/ PNGs,
JPEGImages/, ImageSets/Segmentation/); `concepts` are then category or class
names and `tcav.targets` name outputs of the backbone.
"""

import ml_collections

from jaxcxai.data.synthaerial import CONCEPTS

VARIANTS = ("default", "tiny")

# Checked before anything is written (configs/validate.py).
CONSTRAINTS = {
    "> 0": (
        "batch_size", "data.num_train", "data.num_test", "net2vec.lr",
        "net2vec.batch_size", "net2vec.epochs", "net2vec.runs",
        "tcav.alpha", "tcav.num_concept_images", "tcav.num_random_images",
        "tcav.num_class_images", "report.num_examples",
    ),
    ">= 0": (
        "seed", "data.image_size", "data.seed", "data.test_seed",
        "data.coco.max_per_concept", "net2vec.pos_weight", "net2vec.weight_decay",
        "tcav.class_seed",
    ),
    ">= 3": ("tcav.num_random",),  # the t-test needs three random sets
    "[0, 1]": ("data.boat_on_water_p", "net2vec.momentum"),
    "[0, 1)": ("net2vec.threshold_quantile",),
    "(0, 1)": ("data.test_fraction", "tcav.significance"),
}  # fmt: skip
# Only SynthAerial's split sizes are known from the config.
SYNTHETIC = {"data.source": ("synthaerial",)}
BATCH_LIMITS = (
    ("batch_size", "data.num_train", SYNTHETIC),
    ("batch_size", "data.num_test", SYNTHETIC),
    ("net2vec.batch_size", "data.num_train", SYNTHETIC),
)
DEVICE_BATCHES = {"batch_size": "all", "net2vec.batch_size": "all"}

# TCAV target per concept: the scene class whose logit the concept should
# drive (the scene where it is planted most; SynthAerial scenes.py).
TARGETS = (
    "airplane:airport",
    "car:parking_lot",
    "truck:freeway",
    "boat:harbor",
    "storage_tank:storage_tanks",
    "tree:forest",
    "building:dense_residential",
    "tennis_court:tennis_court",
)


def get_config(variant=None):
    variant = variant or "default"
    if variant not in VARIANTS:
        raise KeyError(f"{variant!r}; valid: {', '.join(VARIANTS)}")
    tiny = variant == "tiny"
    c = ml_collections.ConfigDict()
    c.seed = 0  # splits, probe inits, minibatch orders, TCAV sets
    # Workdir of `train.classifier` (checkpoint + config.json).
    c.backbone = "workdirs/small_cnn_tiny" if tiny else "workdirs/small_cnn"
    c.layers = ("conv2", "conv3") if tiny else ("conv1", "conv2", "conv3")  # layers
    c.concepts = CONCEPTS  # SynthAerial concepts, or COCO / VOC class names
    c.batch_size = 16 if tiny else 64  # activation extraction (multiple of devices)

    c.data = ml_collections.ConfigDict()
    c.data.source = "synthaerial"  # "synthaerial" | "coco" | "voc"
    c.data.image_size = 0  # 0: the backbone's training image size
    # SynthAerial: seeds the backbone never saw (it trains on 0 and 10_000).
    c.data.num_train = 48 if tiny else 600  # SynthAerial probe-training scenes
    c.data.num_test = 24 if tiny else 200  # SynthAerial held-out scenes
    c.data.seed = 20_000  # seed of the training scenes
    c.data.test_seed = 30_000  # seed of the held-out scenes
    c.data.boat_on_water_p = 0.9  # SynthAerial planted boat/water correlation
    # Real data: a seeded split of the selected images.
    c.data.test_fraction = 0.25  # real data: held-out share of the images
    c.data.coco = ml_collections.ConfigDict()
    c.data.coco.annotations = ""  # instances_*.json
    c.data.coco.images = ""  # folder of the JSON's file_names
    c.data.coco.max_per_concept = 500  # LoCE selection; 0 keeps all
    c.data.coco.mask_variant = "exact"  # "exact" | "rectangle" | "ellipse"
    c.data.voc = ml_collections.ConfigDict()
    c.data.voc.root = ""  # VOC2012 folder
    c.data.voc.split = "train"  # ImageSets/Segmentation list: train | val

    c.net2vec = ml_collections.ConfigDict()
    c.net2vec.objective = "balanced_bce"  # "balanced_bce" | "net2vec" | "fuzzy_bce"
    c.net2vec.pos_weight = 0.0  # 0: the objective's default
    c.net2vec.optimizer = "adamw"  # "adamw" | "sgd"
    c.net2vec.lr = 0.03  # probe learning rate
    c.net2vec.momentum = 0.9  # SGD momentum (optimizer "sgd")
    c.net2vec.weight_decay = 0.0  # probe weight decay
    c.net2vec.batch_size = 16 if tiny else 32  # images per probe step
    c.net2vec.epochs = 3 if tiny else 20  # passes over the training split
    c.net2vec.runs = 2 if tiny else 3  # probes per (concept, layer), other inits
    c.net2vec.init = "uniform"  # probe init: "uniform" (Conv2d default) | "zeros"
    c.net2vec.threshold_quantile = 0.0  # NetDissect top quantile; 0: off

    c.tcav = ml_collections.ConfigDict()
    c.tcav.targets = TARGETS  # "concept:output name" (scene or class index)
    c.tcav.method = "mean_diff" if tiny else "logistic"  # or "hinge" (CAV fit)
    c.tcav.alpha = 0.01  # L2 strength of the CAV classifier
    c.tcav.pool = "flatten"  # "flatten" (3D-CAV) | "mean" (1D-CAV)
    c.tcav.num_random = 3 if tiny else 10  # R random sets (>= 3)
    c.tcav.num_concept_images = 6 if tiny else 40  # images per concept set
    c.tcav.num_random_images = 6 if tiny else 40  # images per random set
    c.tcav.num_class_images = 8 if tiny else 50  # images per target scene
    c.tcav.class_seed = 40_000  # seed of the target-class scenes
    c.tcav.significance = 0.05  # family-wise level (Bonferroni)

    c.report = ml_collections.ConfigDict()
    c.report.num_examples = 3  # images per concept in the mask figure
    return c
