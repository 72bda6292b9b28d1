"""DUCH: unsupervised contrastive cross-modal hashing (hashing.md §3).

    python -m train.hashing --config configs/duch.py:ucm --workdir workdirs/duch_ucm
    python -m train.hashing --config configs/duch.py:ucm --workdir workdirs/duch_ucm \\
        --config.data.h5_path=/path/to/duch_features \\
        --config.data.json_path=/work/shared/data/UCM.json
    python -m train.hashing --config configs/duch.py:tiny --workdir /tmp/duch_tiny

Variants:
  ucm    reference settings on UCM (32 bits, 100 epochs, batch 256), every
         quirk of hashing.md §7.2 faithful (`quirks.*` = True).
  rsicd  the same for RSICD (31 classes).
  fixed  ucm with every quirk fixed (`quirks.*` = False).
  tiny   CI: synthetic features, small nets, 3 epochs.

Features: DUCH-format HDF5 files (`jaxcxai.data.duch_h5.feature_paths`) in
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

VARIANTS = ("ucm", "rsicd", "fixed", "tiny")

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


def data_config(dataset: str, tiny: bool) -> ml_collections.ConfigDict:
    """Data section shared with configs/chnr.py."""
    d = ml_collections.ConfigDict()
    d.dataset = dataset
    d.h5_path = ""
    d.json_path = ""
    d.image_aug = "aug_center"
    d.text_aug = "rb"
    d.standardize = True
    d.train_frac = 0.5
    d.query_frac = 0.2
    d.split_seed = 42
    s = ml_collections.ConfigDict()
    s.num_images = 240 if tiny else (10921 if dataset == "RSICD" else 2100)
    s.num_classes = 6 if tiny else (31 if dataset == "RSICD" else 21)
    s.image_dim = 32 if tiny else 512
    s.text_dim = 48 if tiny else 768
    s.captions_per_image = 5
    s.class_scale = 1.0
    s.noise = 1.0
    s.aug_noise = 0.3
    s.seed = 0
    d.synthetic = s
    return d


def get_config(variant=None):
    variant = variant or "ucm"
    if variant not in VARIANTS:
        raise KeyError(f"{variant!r}; valid: {', '.join(VARIANTS)}")
    tiny = variant == "tiny"
    c = ml_collections.ConfigDict()
    c.method = "duch"
    c.seed = 42
    c.data = data_config("RSICD" if variant == "rsicd" else "UCM", tiny)

    c.model = ml_collections.ConfigDict()
    c.model.bits = 16 if tiny else 32
    c.model.hidden = 64 if tiny else 4096

    c.loss = ml_collections.ConfigDict()
    c.loss.alpha = 0.01
    c.loss.beta = 0.001
    c.loss.gamma = 0.01
    c.loss.contrastive_weights = (1.0, 1.0, 1.0)
    c.loss.gp_weight = 10.0
    c.loss.ntx_tau = 1.0

    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 1e-4 if not tiny else 1e-3
    c.optim.weight_decay = 5e-4
    c.optim.lr_decay = 0.8
    c.optim.lr_decay_every = 50
    c.optim.lr_min = 1e-6
    c.optim.disc_lr = 1e-4
    c.optim.disc_b1 = 0.5
    c.optim.disc_b2 = 0.9
    c.optim.disc_weight_decay = 1e-4

    c.train = ml_collections.ConfigDict()
    c.train.epochs = 3 if tiny else 100
    c.train.batch_size = 32 if tiny else 256
    c.train.checkpoint_every_epochs = 1 if tiny else 10
    c.train.keep_checkpoints = 2

    c.eval = ml_collections.ConfigDict()
    c.eval.map_k = 20
    c.eval.select_k = 20
    c.eval.eval_every_epochs = 1 if tiny else 10

    c.quirks = ml_collections.ConfigDict()
    for name in QUIRKS:
        c.quirks[name] = variant != "fixed"
    if tiny:
        c.quirks.unseeded = False  # CI runs must be reproducible
    c.mesh = ml_collections.ConfigDict()
    c.mesh.num_model = 1
    c.mesh.num_devices = 0  # 0: every device; n: the first n
    return c
