"""Concept-based dissection of targeted adversarial attacks (Mikriukov et al.
2024, arXiv 2403.16782; a reconstruction).

    python -m train.classifier --config configs/classifier.py:small_cnn \\
        --workdir workdirs/small_cnn
    python -m eval.adversarial --config configs/adversarial.py --workdir \\
        workdirs/adversarial [--config.backbone=workdirs/small_cnn]

Attacks SynthAerial scenes on the trained backbone (targets: scene classes),
digits on a small CNN trained inside the study and (variant `full`) the
photos bundled with scikit-image / scikit-learn on the packaged ImageNet
MobileNetV2 and EfficientNet-Lite0 (targets: the classes of other photos),
with BIM, PGD, MI-FGSM and C&W-l2; then dissects
the latent perturbations of the successful examples: concept composition
(F1), global components and their ablation (F2), target specificity (F3),
plus TCAV / Net2Vec of SynthAerial concepts and the planted boat/harbor
check.

Variants: `default` (SynthAerial small_cnn with 4 attacks at 8/255 and
16/255, the digits CNN with PGD; 3 sources x 3-4 targets; layers conv2 and
conv3), `tiny`
(CI: SynthAerial only, 2 x 2 scene classes, PGD at 32/255) and `full`
(also MobileNetV2 and EfficientNet-Lite0 on the photos at 224 px and
Fashion-MNIST where installed, every attack on every model, more images,
steps and components). The packaged ImageNet networks are only in `full`:
compiling one attack of MobileNetV2 takes about a minute of CPU time. In the main job
(`eval.reproduce`) `backbone` is relative to the job's workdir, where the
`backbones` stage trains `small_cnn`.
"""

import ml_collections

VARIANTS = ("default", "tiny", "full")

# Checked before anything is written (configs/validate.py).
CONSTRAINTS = {
    "> 0": (
        "batch_size", "attack.steps", "attack.alpha", "attack.restarts",
        "attack.cw_c", "attack.cw_steps", "attack.cw_binary_steps", "attack.cw_lr",
        "scenes.per_class", "photos.views", "photos.image_size", "digits.per_class",
        "digits.image_size", "digits.widths", "digits.train_steps",
        "digits.train_batch", "digits.lr", "dissect.components",
        "dissect.min_samples", "dissect.permutations", "dissect.concepts",
        "dissect.concept_images", "dissect.gamma", "probes.num_images",
        "probes.num_concept", "probes.epochs",
    ),
    ">= 0": ("seed", "attack.momentum", "attack.cw_kappa", "scenes.seed",
             "dissect.specific", "digits.sources", "digits.targets"),
    ">= 3": ("probes.num_random",),
    "(0, 1]": ("attack.eps",),
}  # fmt: skip
DEVICE_BATCHES = {"batch_size": "all"}


def get_config(variant=None):
    variant = variant or "default"
    if variant not in VARIANTS:
        raise KeyError(f"{variant!r}; valid: {', '.join(VARIANTS)}")
    tiny, full = variant == "tiny", variant == "full"
    c = ml_collections.ConfigDict()
    c.seed = 0  # random starts, decompositions, permutation tests
    # Workdir of `train.classifier` (checkpoint + backbone.json).
    c.backbone = "workdirs/small_cnn_tiny" if tiny else "workdirs/small_cnn"
    # Model sources: "synthaerial", "mobilenet_v2", "efficientnet_lite0",
    # "digits", "fashion_mnist" (digits when its Debian package is absent).
    c.models = (
        ("synthaerial",) if tiny else
        ("synthaerial", "mobilenet_v2", "efficientnet_lite0", "digits",
         "fashion_mnist") if full else ("synthaerial", "digits")
    )  # fmt: skip
    c.batch_size = 16 if tiny else 32  # forward passes (multiple of devices)

    c.attack = ml_collections.ConfigDict()
    # "fgsm" | "bim" | "pgd" | "mifgsm" | "cw_l2", all targeted.
    c.attack.names = ("pgd",) if tiny else ("bim", "pgd", "mifgsm", "cw_l2")
    c.attack.eps = (32 / 255,) if tiny else (8 / 255, 16 / 255)  # l_inf budgets, pixels
    c.attack.steps = 40 if full else 10  # BIM / PGD / MI-FGSM steps
    c.attack.alpha = 0.25  # step size as a fraction of eps
    c.attack.momentum = 1.0  # MI-FGSM decay mu
    c.attack.restarts = 1  # PGD random restarts
    c.attack.cw_c = 1.0 if full else 10.0  # C&W initial constant c (few steps: large)
    c.attack.cw_steps = 10 if tiny else (100 if full else 20)  # Adam steps per round
    c.attack.cw_binary_steps = 5 if full else 1  # rounds over c
    c.attack.cw_lr = 0.01  # C&W Adam learning rate
    c.attack.cw_kappa = 0.0  # C&W confidence margin

    c.scenes = ml_collections.ConfigDict()
    # SynthAerial source scenes (attacked) and target scenes.
    c.scenes.sources = ("forest", "beach") if tiny else ("forest", "farmland", "beach")
    targets = ("harbor", "airport", "parking_lot", "freeway")
    c.scenes.targets = targets[:2] if tiny else targets  # target scene classes
    c.scenes.per_class = 4 if tiny else (24 if full else 4)  # images per class
    c.scenes.seed = 90_000  # SynthAerial seed (the backbone saw 0 and 10_000)
    c.scenes.layers = ("conv3",) if tiny else ("conv2", "conv3")  # dissected layers

    c.photos = ml_collections.ConfigDict()
    # Bundled photos: chelsea, coffee, astronaut, rocket, motorcycle, china,
    # flower; the targets are the ImageNet classes of `targets`.
    c.photos.photos = (
        ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "china", "flower")
        if full else ("chelsea", "coffee", "rocket", "china")
    )  # fmt: skip
    targets = ("coffee", "rocket", "flower")
    c.photos.targets = (
        targets if full else targets[:2]
    )  # photos whose class is a target
    c.photos.views = 4 if full else 1  # whole, mirrored, centre crop, its mirror
    c.photos.image_size = 224 if full else 96  # input side (multiple of 32)
    # Attacks run on the ImageNet networks; () = all of attack.names.
    c.photos.attacks = ("bim",) if variant == "default" else ()
    c.photos.mobilenet_layers = ("features.14", "features.18")  # dissected layers
    c.photos.efficientnet_layers = ("_blocks.12", "_conv_head")  # dissected layers

    c.digits = ml_collections.ConfigDict()
    c.digits.sources = (0, 1) if tiny else (0, 1, 7)  # attacked classes
    c.digits.targets = (3, 8) if tiny else (3, 5, 8)  # target classes
    c.digits.per_class = 3 if tiny else (24 if full else 4)  # test images per class
    c.digits.image_size = 32 if full else 16  # side after upsampling (multiple of 8)
    c.digits.widths = (8, 16, 32) if tiny else (16, 32, 64)  # SmallCNN widths
    c.digits.train_steps = 60 if tiny else (1000 if full else 200)  # Adam steps
    c.digits.train_batch = 64  # training batch
    c.digits.lr = 0.003  # Adam learning rate
    c.digits.layers = ("conv3",) if tiny else ("conv2", "conv3")  # dissected layers
    c.digits.attacks = ("pgd",) if variant == "default" else ()  # () = all

    c.dissect = ml_collections.ConfigDict()
    c.dissect.components = 3 if tiny else (10 if full else 6)  # global k (F2)
    c.dissect.method = "pca"  # "pca" | "nmf_pm" | "ica"
    c.dissect.order = "variance"  # removal order: "variance" | "gradient"
    # Directions per (attack, source, target) run (F3); 0: the mean direction.
    c.dissect.specific = 0
    c.dissect.min_samples = 2  # successful examples a run needs (F3)
    c.dissect.permutations = 200 if tiny else 1000  # permutation test of the gap
    c.dissect.concepts = 2 if tiny else 4  # NMF concepts per set (F1)
    c.dissect.concept_images = 3 if tiny else (16 if full else 6)  # images per set
    c.dissect.gamma = 0.8  # cosine below which a concept is new (F1)

    c.probes = ml_collections.ConfigDict()
    c.probes.concept = "boat"  # planted: the concept defining ...
    c.probes.target = "harbor"  # ... this target scene (one of scenes.targets)
    c.probes.num_images = 32 if tiny else (400 if full else 96)  # probe scenes
    c.probes.num_concept = 4 if tiny else (40 if full else 12)  # images per CAV set
    c.probes.num_random = 3  # random sets per CAV (>= 3)
    # CAV classifier: "logistic" | "hinge" | "mean_diff" (closed form).
    c.probes.cav_method = "mean_diff" if tiny else "logistic"
    c.probes.epochs = 2 if tiny else (20 if full else 6)  # Net2Vec passes
    return c
