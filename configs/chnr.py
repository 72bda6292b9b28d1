"""CHNR: DUCH with a noise detector for noisy image-text pairs (Mikriukov et al.,
ICIP 2022).

    python -m train.hashing --config configs/chnr.py:ucm --workdir workdirs/chnr_ucm \\
        --config.chnr.noise_prob=0.3 --config.chnr.noise_weights=exp
    python -m train.hashing --config configs/chnr.py:tiny --workdir /tmp/chnr_tiny
    python -m train.hashing --config configs/chnr.py:synthaerial --workdir w/chnr_sa \\
        --config.chnr.noise_prob=0.5

Variants: `ucm` (clean fraction 0.3), `rsicd` (0.2), `fixed` (ucm with every
quirk fixed), `tiny` (CI), `synthaerial` (the SynthAerial features of
configs/duch.py, noise detector width 512 instead of the joint 1664 so the
meta phase stays cheap on CPU) and `synthaerial_tiny` (CI: 6 + 6 epochs).
64 bits, 75 meta epochs on the clean subset then 75 main epochs on the noisy
training set. `chnr.noise_weights`: normal (NW), exp (EW), dis (DW) or
ones; the CHNR experiments' "DUCH" baseline is
`noise_weights=ones, clean_epochs=0`. Reported mAP@20 (64 bits):
`plots/plots_table_{ucm,rsicd}.csv` of the reference repository
(comrados/noisy_captions), e.g. UCM p=0.2, NW: I->T 0.846, T->I 0.908.

Quirk flags (True = reference), besides those of configs/duch.py:
  chnr_clean_label_bug          (11) the clean set yields labels[t], not
                                     labels[clean_idx[t]]
  chnr_always_clean_20          (12) the always-clean subset is 20 % whatever
                                     the clean fraction (fix: = clean fraction)
  chnr_buffer_index_mismatch    (13) meta-phase B/buffer rows are clean-subset
                                     positions (fix: train positions)
  chnr_dropout_in_weights       (14) D_N dropout active for the pair weights
  chnr_fake_pairs_use_labels    (15) fake pairs drawn with another label (fix:
                                     any other item; labels unused)
In the CHNR flow `eval_only_final` (10) means the reference's evaluations
(end of the meta phase and last epoch) with the last one reported.
"""

import ml_collections

from configs import duch

VARIANTS = duch.VARIANTS

QUIRKS = duch.QUIRKS + (
    "chnr_clean_label_bug",
    "chnr_always_clean_20",
    "chnr_buffer_index_mismatch",
    "chnr_dropout_in_weights",
    "chnr_fake_pairs_use_labels",
)


# Checked before anything is written (configs/validate.py): DUCH's rules plus
# the noise detector's.
CONSTRAINTS = {
    **duch.CONSTRAINTS,
    "> 0": duch.CONSTRAINTS["> 0"] + (
        "chnr.detector_blocks", "chnr.det_lr",
    ),
    ">= 0": duch.CONSTRAINTS[">= 0"] + (
        "chnr.clean_epochs", "chnr.detector_hidden", "chnr.det_weight_decay",
    ),
    "[0, 1)": duch.CONSTRAINTS["[0, 1)"] + (
        "chnr.detector_dropout", "chnr.det_b1", "chnr.det_b2",
    ),
    "[0, 1]": ("chnr.noise_prob",),
    "(0, 1]": duch.CONSTRAINTS["(0, 1]"] + ("chnr.clean_fraction",),
}  # fmt: skip
BATCH_LIMITS = duch.BATCH_LIMITS
DEVICE_BATCHES = duch.DEVICE_BATCHES


def get_config(variant=None):
    variant = variant or "ucm"
    if variant not in VARIANTS:
        raise KeyError(f"{variant!r}; valid: {', '.join(VARIANTS)}")
    aerial = variant.startswith("synthaerial")
    tiny = variant.endswith("tiny")
    c = duch.get_config(variant)
    c.method = "chnr"
    c.model.bits = 16 if tiny else 64
    c.loss.alpha = 0.0
    c.loss.gamma = 0.0
    c.loss.contrastive_weights = (1.0, 0.0, 0.0)
    c.train.epochs = (12 if aerial else 4) if tiny else 150
    # One batch shape per phase, so CI compiles less: 36 clean, 3 x 40 train
    # (tiny); 19 clean, 64 train (synthaerial_tiny).
    if tiny:
        c.train.batch_size = 64 if aerial else 40
    c.eval.select_k = 5
    c.eval.eval_every_epochs = (6 if aerial else 2) if tiny else 25

    c.chnr = ml_collections.ConfigDict()
    c.chnr.noise_prob = 0.2  # share of training pairs given a wrong caption
    c.chnr.clean_fraction = 0.2 if variant == "rsicd" else 0.3  # clean share
    c.chnr.clean_epochs = (6 if aerial else 2) if tiny else 75  # meta-phase epochs
    c.chnr.noise_weights = "normal"  # pair weights: normal | exp | dis | ones
    # 0: the joint feature width (1280 for UCM). SynthAerial's is 1664; 512
    # keeps the meta phase (gradient penalty) cheap on CPU.
    c.chnr.detector_hidden = (32 if tiny else 512) if aerial else 0  # D_N; 0: joint
    c.chnr.detector_blocks = 3  # noise detector D_N blocks
    c.chnr.detector_dropout = 0.2  # D_N dropout rate
    c.chnr.det_lr = 1e-4  # D_N Adam learning rate
    c.chnr.det_b1 = 0.5  # D_N Adam beta1
    c.chnr.det_b2 = 0.9  # D_N Adam beta2
    c.chnr.det_weight_decay = 1e-3  # D_N weight decay

    for name in QUIRKS[len(duch.QUIRKS) :]:
        c.quirks[name] = variant != "fixed"
    return c
