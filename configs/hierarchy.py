"""Explaining, verifying and aligning semantic hierarchies in embeddings
(Schwalbe et al. 2026, arXiv:2603.26798).

    python -m eval.hierarchy --config configs/hierarchy.py[:tiny] --workdir DIR \\
        [--config.clip.checkpoint=/path/open_clip_model.safetensors]

Per embedding source and modality: an agglomerative tree of the class
centroids with nodes named from the ontology's names (extract), triplet
agreement, edge consistency, cophenetic correlation, zero-shot accuracy and
UAES against the ontology (verify), and a lambda sweep of the
ontology-guided alignment (align). Sources: `synthaerial` (a CLIP-style
two-tower model trained here on SynthAerial image-caption pairs over frozen
MobileNetV2 / MiniLM features, against the scene taxonomy), `imagenet`
(MiniLM class-name embeddings and the packaged classifiers' class weight
vectors of the 1000 ImageNet classes, against WordNet 3.0) and `clip` (an
OpenCLIP checkpoint from `clip.checkpoint`; "" skips it).

Variants: `default` (the SynthAerial features of the hashing stage, 1000
scenes at 128 px, read from its cache; all 1000 ImageNet classes, one prompt
template; about 100 s of CPU time on 2 cores with the features cached,
several minutes more on a first run that computes them), `tiny` (CI:
synthetic stand-in features for the two-tower model, the MobileNetV2
classifier view of 40 ImageNet classes, no MiniLM, short sweeps; about 35 s
of CPU time alone, less inside the main job, which has paid the imports and
umap's numba compilation) and `full` (five prompt templates, longer
training and sweeps, every ImageNet class aligned: hours on a CPU).
"""

import ml_collections

VARIANTS = ("default", "tiny", "full")

# Checked before anything is written (configs/validate.py).
CONSTRAINTS = {
    "> 0": (
        "synthaerial.num_images", "synthaerial.image_size", "synthaerial.batch_size",
        "heads.dim", "heads.steps", "heads.batch_size", "heads.lr",
        "clip.num_images", "clip.image_size", "clip.batch_size",
        "verify.temperature", "verify.worst", "align.steps", "align.lr",
        "align.hidden", "align.min_dist",
    ),
    ">= 0": ("seed", "synthaerial.seed", "synthaerial.synthetic_noise",
             "heads.hidden", "heads.weight_decay", "imagenet.num_classes",
             "verify.triplet_max_n", "align.lams", "align.max_classes",
             "align.zero_shot_weight"),
    ">= 2": ("align.n_neighbors",),
    "(0, 1)": ("synthaerial.test_frac",),
    "(0, 1]": ("synthaerial.crop", "verify.target_coverage"),
    "[0, 1]": ("align.beta",),
}  # fmt: skip
DEVICE_BATCHES = {
    "heads.batch_size": "all",
    "synthaerial.batch_size": ("all", {"synthaerial.features": ("packaged",)}),
    "clip.batch_size": "all",
}


def get_config(variant=None):
    variant = variant or "default"
    if variant not in VARIANTS:
        raise KeyError(f"{variant!r}; valid: {', '.join(VARIANTS)}")
    tiny, full = variant == "tiny", variant == "full"
    c = ml_collections.ConfigDict()
    c.seed = 0  # heads, synthetic features, alignment
    # Embedding sources: "synthaerial", "imagenet", "clip" (skipped without
    # clip.checkpoint).
    c.sources = ("synthaerial", "imagenet", "clip")

    c.synthaerial = ml_collections.ConfigDict()
    # "packaged" (MobileNetV2 + MiniLM features) or "synthetic" (stand-ins
    # with the scene taxonomy planted; no encoders).
    c.synthaerial.features = "synthetic" if tiny else "packaged"
    # Scenes; 1000 at 128 px (seed 0): the hashing stage's, from its cache.
    c.synthaerial.num_images = 260 if tiny else 1000
    c.synthaerial.image_size = 128  # generated scene side (px)
    c.synthaerial.seed = 0  # SynthAerial seed
    c.synthaerial.crop = 200 / 256  # centre crop of the image features
    c.synthaerial.image_aug = True  # augmented view: extra training images
    c.synthaerial.cache_dir = ""  # "": $JAXCXAI_CACHE/hashing_features
    c.synthaerial.batch_size = 32  # images per MobileNetV2 call (all devices)
    c.synthaerial.test_frac = 0.3  # held-out images per class
    c.synthaerial.synthetic_noise = 0.5  # noise of the "synthetic" features

    c.heads = ml_collections.ConfigDict()
    c.heads.dim = 32 if tiny else 128  # shared embedding width
    c.heads.hidden = 0  # hidden width of each head; 0: linear heads
    c.heads.steps = 100 if tiny else (1000 if full else 300)  # AdamW steps
    c.heads.batch_size = 64 if tiny else 256  # image-caption pairs per step
    c.heads.lr = 3e-3  # AdamW learning rate
    c.heads.weight_decay = 1e-4  # AdamW weight decay
    c.heads.fast_compile = tiny  # XLA optimisation level 0 (CI)

    c.imagenet = ml_collections.ConfigDict()
    c.imagenet.num_classes = 40 if tiny else 0  # evenly spaced; 0: all 1000
    # Prompt templates of the MiniLM text view (the first n of the CLIP set).
    c.imagenet.templates = (
        ("a photo of a {}.", "a blurry photo of the {}.", "a close-up photo of a {}.",
         "a drawing of a {}.", "a photo of the small {}.") if full
        else ("a photo of a {}.",)
    )  # fmt: skip
    # Packaged ImageNet classifiers whose class weight vectors are image views.
    c.imagenet.classifiers = (
        ("mobilenet_v2",) if tiny else ("mobilenet_v2", "efficientnet_lite0")
    )
    # The MiniLM text view (tiny skips the encoder: compiling it costs CI seconds).
    c.imagenet.text = not tiny
    # WordNet 3.0 dict folder; "": $JAXCXAI_WORDNET or /usr/share/wordnet.
    c.imagenet.wordnet_dir = ""

    c.clip = ml_collections.ConfigDict()
    c.clip.checkpoint = ""  # OpenCLIP state dict (.pt/.safetensors); "": skip
    c.clip.config = ""  # open_clip config name or JSON file; "": inferred
    c.clip.quick_gelu = True  # QuickGELU (OpenAI weights), inferred configs
    c.clip.vocab = ""  # CLIP BPE merges file; "": open-clip-torch's
    c.clip.num_images = 130  # SynthAerial scenes through the image tower
    c.clip.image_size = 64  # their side (px; resized to the model's input)
    c.clip.batch_size = 16  # images per image-tower call (all devices)

    c.verify = ml_collections.ConfigDict()
    c.verify.linkage = "average"  # "average" (cosine) | "ward" | "complete"
    c.verify.temperature = 0.01  # UAES softmax temperature (CLIP's 1 / 100)
    c.verify.target_coverage = 0.9  # leaf coverage h* is calibrated for
    c.verify.triplet_max_n = 0  # classes sampled for triplets; 0: exact
    c.verify.ancestor_constraint = False  # names: ontology ancestors only
    c.verify.onto_distance = "path"  # ontology distance ("path" | "lca")
    c.verify.worst = 10  # worst-placed ImageNet classes listed

    c.align = ml_collections.ConfigDict()
    c.align.kind = "linear" if tiny else "mlp"  # g: "mlp" (residual) | "linear"
    c.align.hidden = 64  # hidden width of the residual MLP
    c.align.steps = 50 if tiny else (500 if full else 100)  # Adam steps per lambda
    c.align.lr = 1e-2  # Adam learning rate
    # Fidelity weights swept (the unaligned baseline inf is always added).
    c.align.lams = (
        (1.0, 0.0) if tiny else (3.0, 1.0, 0.3, 0.1, 0.03, 0.0) if full
        else (1.0, 0.3, 0.1, 0.03, 0.0)
    )  # fmt: skip
    c.align.n_neighbors = 5  # UMAP neighbours of the target graph
    c.align.min_dist = 0.1  # UMAP min_dist (kernel shape)
    c.align.beta = 0.0  # blend of the original distance into the target
    c.align.target = "lca"  # target distance: "lca" (LCA height) | "path"
    c.align.max_classes = 0 if full else 100  # classes aligned per view; 0: all
    c.align.zero_shot_weight = 0.0  # weight of the zero-shot term (views with images)
    return c
