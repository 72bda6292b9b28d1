"""LoCEs of SynthAerial object instances with a trained backbone, and analyses.

    python -m train.classifier --config configs/classifier.py:small_cnn \\
        --workdir workdirs/small_cnn
    python -m train.loce --config configs/loce.py --workdir workdirs/loce \\
        [--config.backbone=workdirs/small_cnn]
    python -m eval.loce --config configs/loce.py --workdir workdirs/loce

Variants: `default` (400 images at the backbone's training size, at most 150
LoCEs per concept, UMAP) and `tiny` (CI: a few dozen 32 x 32 images, PCA).
In the main job (`eval.reproduce`) `backbone` is relative to the job's
workdir, where the `backbones` stage trains `small_cnn`.
"""

import ml_collections

VARIANTS = ("default", "tiny")

# Checked before anything is written (configs/validate.py).
CONSTRAINTS = {
    "> 0": (
        "batch_size", "data.num_images", "data.num_eval_images", "loce.steps",
        "loce.lr", "loce.chunk_size", "analysis.min_per_concept", "analysis.k_max",
        "analysis.k_max_agnostic", "analysis.purity_seeds",
        "analysis.purity_per_class", "analysis.dendrogram_per_class",
        "analysis.retrieval_ks", "analysis.outlier_top",
    ),
    ">= 0": (
        "seed", "data.seed", "data.image_size", "data.min_area",
        "data.max_per_concept", "data.eval_seed", "loce.weight_decay", "loce.grid",
    ),
    "[0, 1]": ("data.boat_on_water_p",),
    "[0, 1)": ("analysis.outlier_weight",),
    "(0, 1)": ("analysis.seg_thresholds",),
    "[-1, 1]": ("analysis.ari_found",),
}  # fmt: skip
BATCH_LIMITS = (("batch_size", "data.num_images"),)
DEVICE_BATCHES = {"batch_size": "all"}


def get_config(variant=None):
    variant = variant or "default"
    if variant not in VARIANTS:
        raise KeyError(f"{variant!r}; valid: {', '.join(VARIANTS)}")
    tiny = variant == "tiny"
    c = ml_collections.ConfigDict()
    c.seed = 0  # instance subset and LoCE inits
    # Workdir of `train.classifier` (checkpoint + config.json).
    c.backbone = "workdirs/small_cnn_tiny" if tiny else "workdirs/small_cnn"
    c.layers = ("conv2", "conv3")  # activations a LoCE is fitted to
    c.batch_size = 16 if tiny else 64  # activation extraction (multiple of devices)

    c.data = ml_collections.ConfigDict()
    c.data.num_images = 24 if tiny else 400  # SynthAerial scenes to fit
    # Seeds other than the backbone's training seed (0): unseen images.
    c.data.seed = 20_000  # seed of the fitting scenes
    c.data.image_size = 0  # 0: the backbone's training image size
    c.data.boat_on_water_p = 0.9  # SynthAerial planted boat/water correlation
    c.data.min_area = 2 if tiny else 4  # instance pixels at image_size
    c.data.max_per_concept = 0 if tiny else 150  # seeded subset; 0 keeps all
    c.data.num_eval_images = 8 if tiny else 100  # held out, for segmentation
    c.data.eval_seed = 30_000  # seed of the held-out scenes

    c.loce = ml_collections.ConfigDict()
    c.loce.objective = "net2vec"  # per-sample loss (objectives.OBJECTIVES)
    c.loce.steps = 20 if tiny else 50  # full-batch AdamW steps per LoCE
    c.loce.lr = 0.1  # AdamW learning rate
    c.loce.weight_decay = 0.01  # AdamW decoupled weight decay
    c.loce.init = "zeros"  # "zeros" | "ones" | "uniform" | "normal"
    c.loce.upsample = "native"  # "native": upsample logits; "reference": acts
    c.loce.interp = "bilinear"  # resampling to the target grid
    c.loce.grid = 0  # target grid side; 0: the image size (binary targets)
    c.loce.chunk_size = 64 if tiny else 256  # LoCEs per stored chunk

    c.analysis = ml_collections.ConfigDict()
    c.analysis.feature = "ml"  # a layer name, or "ml" (all layers concatenated)
    c.analysis.min_per_concept = 4  # concepts with fewer LoCEs are left out
    c.analysis.embedding = "pca" if tiny else "umap"  # 2-D map: umap | pca | tsne
    c.analysis.k_max = 5  # per-concept GMM, k by BIC
    c.analysis.k_max_agnostic = 10  # label-agnostic GMM over all concepts
    c.analysis.outlier_weight = 0.1  # GMM parts at or below this weight: outliers
    c.analysis.hac_method = "ward"  # hierarchical clustering linkage
    c.analysis.hac_metric = "euclidean"  # HAC distance
    c.analysis.purity_seeds = 2 if tiny else 10  # seeded draws the purity averages
    c.analysis.purity_per_class = 20 if tiny else 100  # LoCEs per concept per draw
    c.analysis.dendrogram_per_class = 4 if tiny else 12  # leaves per concept
    c.analysis.separation_metric = "euclidean"  # of the separation heatmap
    c.analysis.retrieval_metric = "cosine"  # nearest-LoCE retrieval distance
    c.analysis.retrieval_ks = (1, 3) if tiny else (1, 5, 10, 20, 30, 40)  # P@k
    c.analysis.outlier_top = 7  # tiles in each outlier figure
    c.analysis.outlier_concepts = ("car", "boat", "airplane")  # outlier figures
    c.analysis.seg_thresholds = (0.35, 0.5, 0.75)  # mask cut-offs (sigmoid)
    c.analysis.overlay_concepts = ("airplane", "car", "building")  # overlays
    c.analysis.ari_found = 0.5  # ARI at or above which a sub-concept split counts
    return c
