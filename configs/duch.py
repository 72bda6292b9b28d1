"""DUCH: unsupervised contrastive cross-modal hashing (Mikriukov et al., ICASSP 2022).

    python -m train.hashing --config configs/duch.py:ucm --workdir workdirs/duch_ucm
    python -m train.hashing --config configs/duch.py:ucm --workdir workdirs/duch_ucm \\
        --config.data.h5_path=/path/to/duch_features \\
        --config.data.json_path=/path/to/UCM.json
    python -m train.hashing --config configs/duch.py:tiny --workdir /tmp/duch_tiny
    python -m train.hashing --config configs/duch.py:synthaerial --workdir w/duch_sa

Variants:
  ucm    reference settings on UCM (32 bits, 100 epochs, batch 256), every
         quirk of the reference code faithful (`quirks.*` = True).
  rsicd  the same for RSICD (31 classes).
  fixed  ucm with every quirk fixed (`quirks.*` = False).
  tiny   CI: synthetic features, small nets, 3 epochs.
  synthaerial       SynthAerial features (`data.synthaerial`: 1000 images at
                    128 px, MobileNetV2 pooled 1280-d, MiniLM 384-d, scene
                    labels), hidden width 1024 so CPU runs take seconds.
  synthaerial_tiny  CI: 128 images at 64 px, small nets, 10 epochs, one device.

Features (`data.source`): "synthaerial", "h5", "synthetic" or "auto" (the
default): DUCH-format HDF5 files (`jaxcxai.data.duch_h5.feature_paths`) in
`data.h5_path`, labels from the caption JSON `data.json_path`; without
`h5_path`, synthetic features with planted class structure of the sizes in
`data.synthetic`. Reference mAP@20 for UCM at 32 bits (third-party table,
approximate): I->T 0.794, T->I 0.851.

Each `quirks.<name>` flag is True for the reference behaviour:
  txt2_is_txt1              (1) augmented caption unused; y fed twice
  adv_on_text               (2) generator adversarial term on text codes
  ntx_subtract_e            (3) NT-Xent subtracts e (assumes tau = 1)
  ntx_sum                   (3) NT-Xent summed over rows, not averaged
  lr_decay_after_epoch0     (4) x0.8 decay after epochs 0, 50, 100
  unseeded                  (5) a fresh random seed per run (recorded)
  feature_train_mode_bn     (6) ResNet features from train-mode BatchNorm
  bert_mean_over_padding    (6) BERT pooling averages padding tokens
  standardize_with_eval_rows (7) feature statistics include query/db rows
  random_split              (8) random 50/10/40 split, JSON split ignored
  one_caption_per_image     (8) one caption per image, the same every epoch
  map_untruncated           (9) mAP@K of the reference (not truncated at K)
  eval_only_final           (10) a single evaluation after the last epoch
The two (6) flags describe how the features were extracted (by the feature
pipeline, not by this trainer); they are recorded with the results.
"""

import ml_collections

VARIANTS = ("ucm", "rsicd", "fixed", "tiny", "synthaerial", "synthaerial_tiny")

QUIRKS = (
    "txt2_is_txt1",
    "adv_on_text",
    "ntx_subtract_e",
    "ntx_sum",
    "lr_decay_after_epoch0",
    "unseeded",
    "feature_train_mode_bn",
    "bert_mean_over_padding",
    "standardize_with_eval_rows",
    "random_split",
    "one_caption_per_image",
    "map_untruncated",
    "eval_only_final",
)


# Checked before anything is written (configs/validate.py); chnr.py adds its own.
CONSTRAINTS = {
    "> 0": (
        "data.synthetic.num_images", "data.synthetic.num_classes",
        "data.synthetic.image_dim", "data.synthetic.text_dim",
        "data.synthetic.captions_per_image", "data.synthaerial.num_images",
        "data.synthaerial.image_size", "data.synthaerial.batch_size",
        "model.bits", "model.hidden", "loss.ntx_tau", "optim.lr",
        "optim.lr_decay_every", "optim.disc_lr", "train.epochs", "train.batch_size",
        "train.checkpoint_every_epochs", "train.keep_checkpoints", "eval.map_k",
        "eval.select_k", "eval.eval_every_epochs", "mesh.num_model",
    ),
    ">= 0": (
        "seed", "data.split_seed", "data.synthetic.class_scale",
        "data.synthetic.noise", "data.synthetic.aug_noise", "data.synthetic.seed",
        "data.synthaerial.seed", "data.synthaerial.input_size", "loss.alpha",
        "loss.beta", "loss.gamma", "loss.contrastive_weights", "loss.gp_weight",
        "optim.weight_decay", "optim.lr_min", "optim.disc_weight_decay",
        "mesh.num_devices",
    ),
    "(0, 1]": ("data.synthaerial.crop", "optim.lr_decay"),
    "(0, 1)": ("data.train_frac", "data.query_frac"),
    "[0, 1)": ("optim.disc_b1", "optim.disc_b2"),
}  # fmt: skip
# Training rows = int(train_frac * images) where the config knows the images.
BATCH_LIMITS = (
    ("train.batch_size", "data.synthetic.num_images * data.train_frac",
     {"data.source": ("synthetic",)}),
    ("train.batch_size", "data.synthetic.num_images * data.train_frac",
     {"data.source": ("auto",), "data.h5_path": ("",)}),
    ("train.batch_size", "data.synthaerial.num_images * data.train_frac",
     {"data.source": ("synthaerial",)}),
)  # fmt: skip
DEVICE_BATCHES = {
    "train.batch_size": "mesh",
    "data.synthaerial.batch_size": ("all", {"data.source": ("synthaerial",)}),
}


def data_config(
    dataset: str, tiny: bool, source: str = "auto"
) -> ml_collections.ConfigDict:
    """Data section shared with configs/chnr.py."""
    d = ml_collections.ConfigDict()
    d.source = source  # "auto" | "synthaerial" | "h5" | "synthetic" (see above)
    d.dataset = dataset  # "UCM" | "RSICD": h5 file names and label set
    d.h5_path = ""  # folder of the DUCH-format feature .h5 files
    d.json_path = ""  # caption JSON with labels and splits
    d.image_aug = "aug_center"  # augmented-image feature file suffix (h5)
    d.text_aug = "rb"  # augmented-caption feature file suffix (h5)
    d.standardize = True  # scalar mean/std standardisation of features
    d.train_frac = 0.5  # share of images for training (random split)
    d.query_frac = 0.2  # share of the rest used as queries; others: db
    d.split_seed = 42  # seed of the split and caption choice
    s = ml_collections.ConfigDict()
    s.num_images = 240 if tiny else (10921 if dataset == "RSICD" else 2100)  # images
    s.num_classes = 6 if tiny else (31 if dataset == "RSICD" else 21)  # planted classes
    s.image_dim = 32 if tiny else 512  # image feature width
    s.text_dim = 48 if tiny else 768  # caption feature width
    s.captions_per_image = 5  # captions per image
    s.class_scale = 1.0  # spread of the class centres
    s.noise = 1.0  # per-item noise std around its class centre
    s.aug_noise = 0.3  # extra noise std of the augmented views
    s.seed = 0  # generator seed
    d.synthetic = s
    a = ml_collections.ConfigDict()
    a.num_images = 128 if tiny else 1000  # SynthAerial scenes
    a.image_size = 64 if tiny else 128  # scene side (px)
    a.seed = 0  # scene generator seed
    a.backbone = "mobilenet_v2"  # pretrained image encoder (pooled features)
    a.input_size = 0  # 0: image_size
    a.crop = 200 / 256  # the reference's CenterCrop(200) of 256 px tiles
    # "scene" (single-label like UCM); "scene_objects" multi-hot makes about
    # 68 % of pairs relevant, too many for mAP to tell codes apart.
    a.labels = "scene"  # "scene" | "scene_objects" (multi-hot)
    a.text_aug = "synonyms"  # computed only when quirks.txt2_is_txt1 is off
    a.cache_dir = ""  # "": $JAXCXAI_CACHE/hashing_features
    a.batch_size = 32  # images per encoder call (all devices)
    d.synthaerial = a
    return d


def get_config(variant=None):
    variant = variant or "ucm"
    if variant not in VARIANTS:
        raise KeyError(f"{variant!r}; valid: {', '.join(VARIANTS)}")
    aerial = variant.startswith("synthaerial")
    tiny = variant.endswith("tiny")
    c = ml_collections.ConfigDict()
    c.method = "duch"  # "duch" | "chnr" (configs/chnr.py)
    c.seed = 42  # init and batch-order seed (quirks.unseeded: fresh)
    c.data = data_config(
        "RSICD" if variant == "rsicd" else "UCM",
        tiny,
        # tiny (CI) runs on synthetic features on purpose; "auto" warns
        # loudly when a UCM/RSICD config has no h5 features to read.
        "synthaerial" if aerial else ("synthetic" if tiny else "auto"),
    )

    c.model = ml_collections.ConfigDict()
    c.model.bits = 16 if tiny else 32  # hash code length
    c.model.hidden = 64 if tiny else (1024 if aerial else 4096)  # hash-net width

    c.loss = ml_collections.ConfigDict()
    c.loss.alpha = 0.01  # weight of the adversarial (generator) term
    c.loss.beta = 0.001  # weight of the quantization term
    c.loss.gamma = 0.01  # weight of the bit-balance term
    c.loss.contrastive_weights = (1.0, 1.0, 1.0)  # NT-Xent (i,t), (i,i2), (t,t2)
    c.loss.gp_weight = 10.0  # discriminator gradient-penalty weight
    c.loss.ntx_tau = 1.0  # NT-Xent temperature

    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 1e-4 if not tiny else 1e-3  # hash-net Adam learning rate
    c.optim.weight_decay = 5e-4  # hash-net weight decay
    c.optim.lr_decay = 0.8  # lr factor at each decay
    c.optim.lr_decay_every = 50  # epochs between decays
    c.optim.lr_min = 1e-6  # floor of the decayed lr
    c.optim.disc_lr = 1e-4  # discriminator Adam learning rate
    c.optim.disc_b1 = 0.5  # discriminator Adam beta1
    c.optim.disc_b2 = 0.9  # discriminator Adam beta2
    c.optim.disc_weight_decay = 1e-4  # discriminator weight decay

    c.train = ml_collections.ConfigDict()
    c.train.epochs = (10 if aerial else 3) if tiny else 100  # passes over training
    c.train.batch_size = 32 if tiny else 256  # global batch (pairs)
    c.train.checkpoint_every_epochs = 1 if tiny else 10  # epochs between saves
    if aerial:  # runs of seconds: save at the last epoch only
        c.train.checkpoint_every_epochs = 1000
    c.train.keep_checkpoints = 2  # newest checkpoints kept

    c.eval = ml_collections.ConfigDict()
    c.eval.map_k = 20  # K of the reported mAP@K
    c.eval.select_k = 20  # K of the mAP that picks the best epoch
    c.eval.eval_every_epochs = 1 if tiny else 10  # epochs between evaluations

    c.quirks = ml_collections.ConfigDict()
    for name in QUIRKS:
        c.quirks[name] = variant != "fixed"
    # CI and main-job runs must be reproducible.
    if tiny or aerial:
        c.quirks.unseeded = False
    c.mesh = ml_collections.ConfigDict()
    c.mesh.num_model = 1  # model-parallel axis size (1: pure data parallel)
    c.mesh.num_devices = 0  # 0: every device; n: the first n
    if variant == "synthaerial_tiny":
        c.mesh.num_devices = 1  # fake CPU devices only add overhead in CI
    return c
