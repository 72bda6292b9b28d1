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


def get_config(variant=None):
    variant = variant or "default"
    if variant not in VARIANTS:
        raise KeyError(f"{variant!r}; valid: {', '.join(VARIANTS)}")
    tiny = variant == "tiny"
    c = ml_collections.ConfigDict()
    c.seed = 0
    # Workdir of `train.classifier` (checkpoint + config.json).
    c.backbone = "workdirs/small_cnn_tiny" if tiny else "workdirs/small_cnn"
    c.layers = ("conv2", "conv3")
    c.batch_size = 16 if tiny else 64  # activation extraction (multiple of devices)

    c.data = ml_collections.ConfigDict()
    c.data.num_images = 24 if tiny else 400
    # Seeds other than the backbone's training seed (0): unseen images.
    c.data.seed = 20_000
    c.data.image_size = 0  # 0: the backbone's training image size
    c.data.boat_on_water_p = 0.9
    c.data.min_area = 2 if tiny else 4  # instance pixels at image_size
    c.data.max_per_concept = 0 if tiny else 150  # seeded subset; 0 keeps all
    c.data.num_eval_images = 8 if tiny else 100  # held out, for segmentation
    c.data.eval_seed = 30_000

    c.loce = ml_collections.ConfigDict()
    c.loce.objective = "net2vec"
    c.loce.steps = 20 if tiny else 50
    c.loce.lr = 0.1
    c.loce.weight_decay = 0.01
    c.loce.init = "zeros"
    c.loce.upsample = "native"
    c.loce.interp = "bilinear"
    c.loce.grid = 0  # target grid side; 0: the image size (binary targets)
    c.loce.chunk_size = 64 if tiny else 256  # LoCEs per stored chunk

    c.analysis = ml_collections.ConfigDict()
    c.analysis.feature = "ml"  # a layer name, or "ml" (all layers concatenated)
    c.analysis.min_per_concept = 4  # concepts with fewer LoCEs are left out
    c.analysis.embedding = "pca" if tiny else "umap"
    c.analysis.k_max = 5  # per-concept GMM, k by BIC
    c.analysis.k_max_agnostic = 10  # label-agnostic GMM over all concepts
    c.analysis.outlier_weight = 0.1
    c.analysis.hac_method = "ward"
    c.analysis.hac_metric = "euclidean"
    c.analysis.purity_seeds = 2 if tiny else 10
    c.analysis.purity_per_class = 20 if tiny else 100
    c.analysis.dendrogram_per_class = 4 if tiny else 12
    c.analysis.separation_metric = "euclidean"
    c.analysis.retrieval_metric = "cosine"
    c.analysis.retrieval_ks = (1, 3) if tiny else (1, 5, 10, 20, 30, 40)
    c.analysis.outlier_top = 7
    c.analysis.outlier_concepts = ("car", "boat", "airplane")
    c.analysis.seg_thresholds = (0.35, 0.5, 0.75)
    c.analysis.overlay_concepts = ("airplane", "car", "building")
    c.analysis.ari_found = 0.5  # ARI at or above which a sub-concept split counts
    return c
