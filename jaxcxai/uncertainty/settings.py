"""The sections of a gating study's settings, one frozen dataclass each.

Defaults are the protocol of Mikriukov, Montavon & Hoehne, "Uncertainty
Gating for Cost-Aware XAI" (arXiv:2603.29915, sections 4-5 and App. C);
`study.GatingStudy` gathers them (`configs/gating.py` mirrors every field).
"""

from __future__ import annotations

import dataclasses

from jaxcxai.data.tabular import ROLES
from jaxcxai.uncertainty.perturb import IMAGE_NOISE_LEVELS

__all__ = [
    "ADVERSARIAL",
    "COMBOS",
    "EXPLAINERS",
    "MODELS",
    "NATURAL",
    "PERTURBATIONS",
    "Data",
    "E2",
    "E3",
    "E4",
    "Explainers",
    "Extras",
    "Faithfulness",
    "Focus",
    "Image",
    "Models",
    "UC1",
]

MODELS = ("lr", "rf", "mlp")
EXPLAINERS = ("treeshap", "kernelshap", "lime", "ig", "sig")
# The paper's explainer of each model (section 5.2): trees TreeSHAP and LIME,
# LR KernelSHAP and LIME, MLP KernelSHAP, LIME, IG and SmoothIG.
COMBOS = {
    "rf": ("treeshap", "lime"),
    "lr": ("kernelshap", "lime"),
    "mlp": ("kernelshap", "lime", "ig", "sig"),
}
NATURAL = ("gaussian", "missing", "permutation")
ADVERSARIAL = ("bim", "pgd", "cw")  # MLP only (section 4.4)
PERTURBATIONS = NATURAL + ADVERSARIAL


@dataclasses.dataclass(frozen=True)
class Data:
    """Which datasets, by the paper's roles (`jaxcxai.data.tabular.ROLES`).

    Attributes:
      roles: the roles studied, in report order.
      data_dir: "" for scikit-learn's embedded substitutes; else a directory
        of the paper's UCI files (`jaxcxai.data.uci.PAPER_FILES`).
      seed: the split seed (the paper: 42).
    """

    roles: tuple[str, ...] = ROLES
    data_dir: str = ""
    seed: int = 42


@dataclasses.dataclass(frozen=True)
class Models:
    """The models and their estimators (section 4.2).

    Attributes:
      names: subset of `MODELS`.
      lr_resamples: bootstrap refits of the logistic regression (20).
      forest_trees: trees of the random forest (100).
      mlp_epochs: at most this many MLP epochs (100, early stop 20).
      mc_passes: MC-dropout passes of the MLP (50).
    """

    names: tuple[str, ...] = MODELS
    lr_resamples: int = 20
    forest_trees: int = 100
    mlp_epochs: int = 100
    mc_passes: int = 50


@dataclasses.dataclass(frozen=True)
class Explainers:
    """Explainer settings (section 4.3, App. A).

    Attributes:
      kernel_background: training rows of the KernelSHAP background (100).
      kernel_nsamples: coalitions per row; 0 = shap's "auto" (2 d + 2048).
      lime_samples: LIME's perturbed rows per sample (5000).
      lime_features: features LIME keeps (10).
      ig_steps: Integrated Gradients steps (50).
      sig_n: noisy copies of SmoothIG (50).
      sig_sigma: their absolute noise std in z-scored units (0.1).
    """

    kernel_background: int = 100
    kernel_nsamples: int = 0
    lime_samples: int = 5000
    lime_features: int = 10
    ig_steps: int = 50
    sig_n: int = 50
    sig_sigma: float = 0.1


@dataclasses.dataclass(frozen=True)
class E2:
    """XAI-UQ correlation (Figure 2).

    Attributes:
      num_samples: explained test rows (the paper: min(100, |test|)).
      perturbations: subset of `PERTURBATIONS` (adversarial: MLP only).
      combos: "model:explainer" cells; () = the paper's (`COMBOS`).
    """

    num_samples: int = 100
    perturbations: tuple[str, ...] = PERTURBATIONS
    combos: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class E3:
    """Stratified stability (Figure 3), RF + TreeSHAP.

    Attributes:
      roles: datasets of E3 (the paper: Wine, Bean, Rice; Ecoli too small).
      num_samples: test rows stratified (the paper: 500).
      per_stratum: rows summarised per stratum (50).
      num_seeds: noise seeds averaged per row (10).
      sigmas: noise levels (0.01, 0.05, 0.1).
    """

    roles: tuple[str, ...] = ROLES[:3]
    num_samples: int = 500
    per_stratum: int = 50
    num_seeds: int = 10
    sigmas: tuple[float, ...] = (0.01, 0.05, 0.1)


@dataclasses.dataclass(frozen=True)
class E4:
    """The mixed-noise pool of E4 (Table 3) and E5 (Table 4).

    Attributes:
      roles: datasets (the paper: Wine, Bean, Rice).
      num_samples: test rows (the paper: 500).
      num_versions: noisy copies per row and level (5).
      sigmas: noise levels (0.02 k, k = 1..10).
      nus: E4's deferral rates (90 .. 10 %).
      cost_nus: E5's deferral rates (70, 50, 30, 0 %).
      configs: E5's "model:explainer" configurations.
    """

    roles: tuple[str, ...] = ROLES[:3]
    num_samples: int = 500
    num_versions: int = 5
    sigmas: tuple[float, ...] = tuple(round(0.02 * k, 2) for k in range(1, 11))
    nus: tuple[float, ...] = (0.9, 0.7, 0.5, 0.3, 0.1)
    cost_nus: tuple[float, ...] = (0.7, 0.5, 0.3, 0.0)
    configs: tuple[str, ...] = ("rf:treeshap", "mlp:lime")


@dataclasses.dataclass(frozen=True)
class Faithfulness:
    """Log-odds removal shift by U group (Figure 4).

    Attributes:
      configs: "model:explainer" (the paper: RF + TreeSHAP, LR + KernelSHAP).
      group_size: rows per group (50).
      num_random: random groups (5).
      ks: numbers of removed top features (1..5).
    """

    configs: tuple[str, ...] = ("rf:treeshap", "lr:kernelshap")
    group_size: int = 50
    num_random: int = 5
    ks: tuple[int, ...] = (1, 2, 3, 4, 5)


@dataclasses.dataclass(frozen=True)
class Focus:
    """Noise-feature focus, E7 (App. C, Figure 8): SignalMass by U group.

    Attributes:
      roles: datasets (a reconstruction: our notes of App. C do not name
        its datasets; the default is E3's).
      configs: "model:explainer" (the paper: RF + TreeSHAP, LR + KernelSHAP).
      rf_ratios, lr_ratios: noise columns per signal column (1..10 for RF,
        1..3 for LR).
      num_samples: test rows explained (>= 3 group_size).
      group_size: rows per group (50).
      num_random: random groups (5).
    """

    roles: tuple[str, ...] = ROLES[:3]
    configs: tuple[str, ...] = ("rf:treeshap", "lr:kernelshap")
    rf_ratios: tuple[float, ...] = (1, 2, 3, 5, 10)
    lr_ratios: tuple[float, ...] = (1, 2, 3)
    num_samples: int = 500
    group_size: int = 50
    num_random: int = 5


@dataclasses.dataclass(frozen=True)
class Extras:
    """The reference code's extra analyses, not claims of the paper's text:
    threshold calibration (script 8), global approximation (10) and
    contamination recovery (11) of arXiv:2603.29915's code.

    Attributes:
      roles: datasets (default E3's).
      config: the "model:explainer" analysed (the scripts: RF + TreeSHAP).
      num_samples: test rows (script 10: at most 1000).
      calib_sigma, calib_draws: noise of the stability labels (0.1, 5 draws).
      coverages: script 8's coverage sweep (`calibration.COVERAGES`).
      fracs: script 10's fractions of lowest / highest-U rows.
      base: script 11's base batch (the 50 lowest-U rows; contaminants are
        the 50 highest-U rows plus noise).
      cont_sigma: the contaminants' Gaussian noise (0.5).
      rates: contaminants per base row.
      keep: rows kept by the filter and by random subsets (int(0.8 base)).
      num_random: random subsets per rate (5).
    """

    roles: tuple[str, ...] = ROLES[:3]
    config: str = "rf:treeshap"
    num_samples: int = 1000
    calib_sigma: float = 0.1
    calib_draws: int = 5
    coverages: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(4, 17))
    fracs: tuple[float, ...] = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    base: int = 50
    cont_sigma: float = 0.5
    rates: tuple[float, ...] = (0, 0.5, 1, 2, 3, 4, 5)
    keep: int = 40
    num_random: int = 5


@dataclasses.dataclass(frozen=True)
class UC1:
    """Routing (Use Case 1), a reconstruction: the paper has no experiment.

    Cheap explainer IG, expensive SmoothIG, both of the MLP; stability is
    tau against a noisy copy at `sigma`.

    Attributes:
      fractions: routed fractions r.
      sigma: the noise of the stability check.
      num_random: random routings per fraction.
    """

    fractions: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
    sigma: float = 0.1
    num_random: int = 20


@dataclasses.dataclass(frozen=True)
class Image:
    """The image experiment (section 5, Figures 5-6) on an offline set.

    Attributes:
      source: "digits" (scikit-learn, 8 x 8) or "fashion_mnist" (Debian
        package files); "" skips the experiment.
      channels, pools: the CNN's conv widths and max-pools (the paper's
        32-64-128 with a pool after each block).
      epochs: at most this many epochs (early stop on validation accuracy).
      batch_size: training batch (256).
      sigmas: image noise levels in [-1, 1] pixel units (the paper's
        `IMAGE_NOISE_LEVELS`, 0 .. 0.2).
      num_images: test images explained (100).
      mc_passes: MC-dropout passes (50).
      ig_steps: IG steps (50).
      smooth_n, smooth_sigma: SmoothGrad copies (20) and std (0.1).
      max_per_class: cap of images per class (0: all).
    """

    source: str = "digits"
    channels: tuple[int, ...] = (32, 64, 128)
    pools: tuple[bool, ...] = (True, True, True)
    epochs: int = 20
    batch_size: int = 256
    sigmas: tuple[float, ...] = IMAGE_NOISE_LEVELS
    num_images: int = 100
    mc_passes: int = 50
    ig_steps: int = 50
    smooth_n: int = 20
    smooth_sigma: float = 0.1
    max_per_class: int = 0
