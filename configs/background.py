"""Background bias of concept embeddings in a trained backbone (Schwalbe et al.
2025, arXiv 2504.08602).

    python -m train.classifier --config configs/classifier.py:small_cnn \\
        --workdir workdirs/small_cnn
    python -m eval.background --config configs/background.py --workdir \\
        workdirs/background [--config.backbone=workdirs/small_cnn]

Fits GloCEs of multi-view LoCEs and multi-view Net2Vec vectors of SynthAerial
objects (boats: planted on water with probability 0.9) on vanilla, full and
Voronoi background-randomised views, and measures their IoU on held-out
objects pasted on backgrounds of each scene group, plus the embedding shift.

Variants: `default` (boat, car, truck; 24 + 16 objects each, n = 4 views,
conv2 and conv3, LoCE and Net2Vec; about a minute on 2 CPU cores), `tiny`
(CI: boat and car, 8 + 6 objects, n = 2, conv3) and `full` (80 + 40
objects, n = 8, 16 backgrounds per group). The backgrounds are whole
SynthAerial scenes, filtered per concept by the backbone's object-presence
output (`pool.source`, `pool.filter`). In the main job (`eval.reproduce`)
`backbone` is relative to the job's workdir, where the `backbones` stage
trains `small_cnn`.
"""

import ml_collections

VARIANTS = ("default", "tiny", "full")

# Checked before anything is written (configs/validate.py).
CONSTRAINTS = {
    "> 0": (
        "batch_size", "data.num_scenes", "data.num_test", "data.min_pixels",
        "views.train", "views.test", "pool.train_per_group",
        "pool.test_per_group", "pool.candidates", "pool.filter_top_k",
        "pool.filter_threshold", "fit.steps", "fit.epochs", "fit.batch",
    ),
    ">= 0": ("seed", "data.image_size", "data.seed", "pool.seed", "pool.test_seed",
             "pool.scene_fraction", "fit.cosine_atol"),
    ">= 2": ("data.num_train",),
}  # fmt: skip
DEVICE_BATCHES = {"batch_size": "all"}


def get_config(variant=None):
    variant = variant or "default"
    if variant not in VARIANTS:
        raise KeyError(f"{variant!r}; valid: {', '.join(VARIANTS)}")
    tiny, full = variant == "tiny", variant == "full"
    c = ml_collections.ConfigDict()
    c.seed = 0  # backgrounds of the views and the Net2Vec shuffle
    # Workdir of `train.classifier` (checkpoint + backbone.json).
    c.backbone = "workdirs/small_cnn_tiny" if tiny else "workdirs/small_cnn"
    # Spatial activations (N, h, w, C) the concept vectors live in.
    c.layers = ("conv3",) if tiny else ("conv2", "conv3")
    # Object concepts; boat carries the planted water bias.
    c.concepts = ("boat", "car") if tiny else ("boat", "car", "truck")
    # "loce" / "loce_proper_bce" (GloCE) and "net2vec" / "net2vec_proper_bce".
    c.methods = ("loce", "net2vec")
    # Training randomisations ("vanilla" required: the shift's reference).
    c.train_kinds = ("vanilla", "full", "voronoi")
    c.batch_size = 16 if tiny else 64  # activation extraction (multiple of devices)

    c.data = ml_collections.ConfigDict()
    c.data.num_scenes = 120 if tiny else (1200 if full else 400)  # scenes generated
    c.data.num_train = 8 if tiny else (80 if full else 24)  # training objects/concept
    c.data.num_test = 6 if tiny else (40 if full else 16)  # held-out objects/concept
    c.data.min_pixels = 4  # smallest object mask kept (pixels)
    c.data.image_size = 0  # 0: the backbone's training image size
    c.data.seed = 80_000  # SynthAerial seed (the backbone saw 0 and 10_000)
    # Scene classes the objects come from; () = all 13.
    c.data.scenes = ("harbor", "river", "parking_lot", "freeway", "storage_tanks")

    c.views = ml_collections.ConfigDict()
    c.views.train = 2 if tiny else (8 if full else 4)  # n views per training object
    c.views.test = 1  # views per held-out object and test group
    c.views.resize = "cover"  # background fit: "cover" (aspect kept) | "squash"

    c.pool = ml_collections.ConfigDict()
    c.pool.train_per_group = 2 if tiny else (16 if full else 4)  # training bgs/group
    c.pool.test_per_group = 2 if tiny else (16 if full else 4)  # test bgs/group
    c.pool.seed = 1  # training pool seed
    c.pool.test_seed = 2  # test pool seed (backgrounds disjoint from training)
    c.pool.groups = ()  # scene groups (test groups); () = all 8 texture families
    # "scenes": whole SynthAerial scenes, objects included (they may show the
    # concept, as Places photos do), for a scene_fraction of the backgrounds,
    # the rest without objects; "backgrounds": layouts without objects.
    c.pool.source = "scenes"
    c.pool.scene_fraction = 0.5  # share of whole scenes among the backgrounds
    # Per concept, reject backgrounds a classifier sees the concept in (spec
    # §7.2): "presence" (the backbone's has_<concept> output), "imagenet" (the
    # packaged MobileNetV2's top-k against filtering.IMAGENET_CONCEPTS), "none".
    c.pool.filter = "presence"
    # Presence probability that rejects (tiny: the 10-step CI backbones'
    # outputs sit near 0.5, so only a confident output rejects).
    c.pool.filter_threshold = 0.9 if tiny else 0.5
    c.pool.filter_top_k = 5  # ImageNet top-k inspected (the reference's 5)
    c.pool.candidates = 3  # backgrounds drawn per one used, when filtering
    # A group the filter leaves short: "least_likely" completes it with the
    # rejected backgrounds the classifier finds least concept-like (the report
    # counts them; the demo backbone's boat output fires on any water), or
    # "error".
    c.pool.when_short = "least_likely"

    c.fit = ml_collections.ConfigDict()
    c.fit.steps = 30  # multi-view LoCE AdamW steps (the paper's)
    c.fit.epochs = 30  # Net2Vec passes over the views (the paper's)
    c.fit.batch = 512  # Net2Vec views per batch (the paper's)
    c.fit.cosine_atol = 1e-8  # "about 0" of the embedding-shift cosine
    return c
