"""Attribution methods on a trained SynthAerial backbone and a tabular model.

    python -m train.classifier --config configs/classifier.py:small_cnn \\
        --workdir workdirs/small_cnn
    python -m eval.explain --config configs/explain.py --workdir workdirs/explain \\
        [--config.backbone=workdirs/small_cnn]

Variants: `default` (4 held-out scenes per object concept at the backbone's
training size, every image method, randomisation of the gradient methods;
the wine set with an MLP and a random forest), `tiny` (CI: one scene per
concept, three image methods at toy sample counts) and `full` (10 scenes per
concept, the papers' sample counts: 4000 RISE masks, 1000 LIME samples,
50 SmoothGrad copies, every method randomised). In the main job
(`eval.reproduce`) `backbone` is relative to the job's workdir, where the
`backbones` stage trains `small_cnn`.
"""

import ml_collections

from jaxcxai.data.synthaerial import CONCEPTS

VARIANTS = ("default", "tiny", "full")

# Checked before anything is written (configs/validate.py).
CONSTRAINTS = {
    "> 0": (
        "num_examples", "data.per_concept", "data.pool", "methods.ig_steps",
        "methods.smooth_n", "methods.smooth_sigma", "methods.occlusion_window",
        "methods.occlusion_stride", "methods.rise_masks", "methods.rise_grid",
        "methods.lime_samples", "methods.lime_segments", "methods.lime_compactness",
        "metrics.deletion_steps", "tabular.mlp_iters", "tabular.forest_trees",
        "tabular.forest_depth", "tabular.num_explain", "tabular.background",
        "tabular.lime_samples", "tabular.lime_features", "tabular.ig_steps",
        "tabular.smooth_n", "tabular.removal_ks", "tabular.hidden",
    ),
    ">= 0": (
        "seed", "data.seed", "data.image_size", "data.min_area",
        "metrics.insertion_blur",
        "metrics.pointing_tolerance", "tabular.kernel_shap_nsamples",
        "tabular.smooth_sigma",
    ),
    "[0, 1]": ("data.boat_on_water_p", "methods.occlusion_baseline"),
    "(0, 1]": ("methods.rise_p",),
    "(0, 1)": ("tabular.test_fraction",),
}  # fmt: skip

# The randomisation checks that compile one program per (method, layer):
# the gradient methods by default, every method in `full`.
GRADIENT_METHODS = (
    "saliency", "gradient_x_input", "integrated_gradients", "smoothgrad",
    "grad_cam", "grad_cam_plus_plus",
)  # fmt: skip
IMAGE_METHODS = GRADIENT_METHODS + ("occlusion", "rise", "lime")


def get_config(variant=None):
    variant = variant or "default"
    if variant not in VARIANTS:
        raise KeyError(f"{variant!r}; valid: {', '.join(VARIANTS)}")
    tiny, full = variant == "tiny", variant == "full"
    c = ml_collections.ConfigDict()
    c.seed = 0  # explainer keys, randomisation draws, tabular split and models
    # Workdir of `train.classifier` (checkpoint + backbone.json).
    c.backbone = "workdirs/small_cnn_tiny" if tiny else "workdirs/small_cnn"
    c.sharded = True  # split the explained images over all devices
    c.num_examples = 4 if tiny else 6  # items (rows) of the attribution grid

    c.data = ml_collections.ConfigDict()
    c.data.concepts = CONCEPTS  # SynthAerial object concepts explained
    c.data.per_concept = 1 if tiny else (10 if full else 4)  # items per concept
    c.data.pool = 60 if tiny else 200  # held-out scenes to choose items from
    c.data.seed = 30_000  # SynthAerial seed of the pool (unseen by the backbone)
    c.data.image_size = 0  # 0: the backbone's training image size
    c.data.min_area = 4 if tiny else 16  # mask pixels a concept needs in a scene
    c.data.boat_on_water_p = 0.9  # SynthAerial planted boat/water correlation

    c.methods = ml_collections.ConfigDict()
    # Image explainers (jaxcxai.attribution.methods.METHODS).
    c.methods.names = ("saliency", "grad_cam", "rise") if tiny else IMAGE_METHODS
    c.methods.layer = "conv3"  # Grad-CAM / Grad-CAM++ layer
    c.methods.ig_steps = 8 if tiny else (64 if full else 16)  # IG quadrature nodes
    c.methods.ig_method = "gausslegendre"  # IG rule (Captum's default)
    c.methods.smooth_n = 4 if tiny else (50 if full else 16)  # SmoothGrad copies
    c.methods.smooth_sigma = 0.15  # SmoothGrad noise std / input range
    c.methods.occlusion_window = 8  # occlusion square side (px)
    c.methods.occlusion_stride = 8 if tiny else 4  # occlusion step (px)
    c.methods.occlusion_baseline = 0.5  # occluded value (grey, image in [0, 1])
    c.methods.rise_masks = 64 if tiny else (4000 if full else 300)  # RISE masks
    c.methods.rise_grid = 4 if tiny else 8  # RISE low-resolution grid side
    c.methods.rise_p = 0.5  # RISE probability that a cell is kept
    c.methods.lime_samples = 64 if tiny else (1000 if full else 200)  # LIME samples
    c.methods.lime_segments = 16 if tiny else 40  # LIME SLIC superpixels
    c.methods.lime_compactness = 10.0  # SLIC compactness

    c.metrics = ml_collections.ConfigDict()
    c.metrics.deletion_steps = 8 if tiny else 16  # deletion/insertion increments
    c.metrics.insertion_blur = 4.0  # Gaussian sigma (px) of the insertion start
    c.metrics.pointing_tolerance = 2.0  # pointing-game tolerance (px)
    # Parameters re-drawn top-down, cascading (flax names of SmallCNN).
    c.metrics.randomization_layers = (
        ("fc", "conv3") if tiny else ("fc", "conv3", "conv2", "conv1")
    )
    # Image methods given the randomisation check (a subset of methods.names).
    c.metrics.randomization_methods = (
        ("saliency", "grad_cam")
        if tiny
        else (IMAGE_METHODS if full else GRADIENT_METHODS)
    )

    c.tabular = ml_collections.ConfigDict()
    c.tabular.dataset = "wine"  # scikit-learn bundled set: wine | breast_cancer
    c.tabular.test_fraction = 0.33  # held-out share (explained rows)
    c.tabular.hidden = (32,)  # MLP hidden widths
    c.tabular.mlp_iters = 300 if tiny else 2000  # MLP training iterations (max)
    c.tabular.forest_trees = 10 if tiny else 100  # random forest trees
    c.tabular.forest_depth = 6  # random forest depth
    c.tabular.num_explain = 8 if tiny else 40  # held-out rows explained
    c.tabular.background = 10 if tiny else 50  # KernelSHAP background rows
    c.tabular.kernel_shap_nsamples = 256 if tiny else 0  # coalitions; 0: "auto"
    c.tabular.lime_samples = 500 if tiny else 5000  # LIME samples per row
    c.tabular.lime_features = 10  # LIME features kept (top-k)
    c.tabular.ig_steps = 8 if tiny else 50  # IG steps (zero = training mean)
    c.tabular.smooth_n = 4 if tiny else 50  # SmoothIG copies
    c.tabular.smooth_sigma = 0.1  # SmoothIG noise std (z-scored units)
    c.tabular.removal_ks = (1, 2, 3, 4, 5)  # top-k removed (log-odds shift)
    # Tabular methods (jaxcxai.attribution.tabular.MLP_METHODS, FOREST_METHODS).
    c.tabular.mlp_methods = (
        ("gradient_x_input", "kernel_shap")
        if tiny
        else ("saliency", "gradient_x_input", "integrated_gradients", "smooth_ig",
              "kernel_shap", "lime")
    )  # fmt: skip
    # Forest methods (TreeSHAP needs the optional shap package).
    c.tabular.forest_methods = ("tree_shap",) if tiny else ("tree_shap", "lime")
    c.tabular.randomization_layers = ("dense1", "dense0")  # MLP layers, top-down
    # MLP methods given the randomisation check (a subset of mlp_methods).
    c.tabular.randomization_methods = (
        ("gradient_x_input",)
        if tiny
        else (c.tabular.mlp_methods if full
              else ("saliency", "gradient_x_input", "integrated_gradients",
                    "kernel_shap"))
    )  # fmt: skip
    return c
