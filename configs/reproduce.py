"""The main job: every implemented stage on the embedded SynthAerial dataset.

    python -m eval.reproduce --config configs/reproduce.py --workdir workdirs/reproduce
    python -m eval.reproduce --config configs/reproduce.py:tiny --workdir /tmp/r

Writes `report.md`, `results.json` and figures (PNG) into the workdir. Each
stage's outputs live under `workdir/<stage>/`; a finished stage is skipped on
re-run (delete its folder to redo it). Variants: `default`, `tiny` (CI).
"""

import ml_collections

from configs import chnr, classifier
from configs import loce as loce_cfg
from configs import probes as probes_cfg


def get_config(variant=None):
    variant = variant or "default"
    if variant not in ("default", "tiny"):
        raise KeyError(f"{variant!r}; valid: default, tiny")
    tiny = variant == "tiny"
    c = ml_collections.ConfigDict()
    c.stages = ("environment", "dataset", "backbones", "probes", "loce", "hashing")
    c.dataset = ml_collections.ConfigDict()
    c.dataset.num_preview = 8
    c.dataset.image_size = 32 if tiny else 128
    c.backbones = ml_collections.ConfigDict()
    suffix = "_tiny" if tiny else ""
    c.backbones.small_cnn = classifier.get_config("small_cnn" + suffix)
    c.backbones.resnet18 = classifier.get_config("resnet18" + suffix)
    c.probes = probes_cfg.get_config("tiny" if tiny else "default")
    c.probes.backbone = "backbones/small_cnn"
    c.loce = loce_cfg.get_config("tiny" if tiny else "default")
    c.loce.backbone = "backbones/small_cnn"
    c.hashing = ml_collections.ConfigDict()
    c.hashing.train = chnr.get_config("synthaerial_tiny" if tiny else "synthaerial")
    c.hashing.noise_rates = (0.0, 0.2, 0.5)
    c.hashing.fast_compile = tiny  # XLA optimisation level 0 for CI
    c.hashing.reported_csv = ""  # "": eval/data/chnr_reported_ucm.csv
    return c
