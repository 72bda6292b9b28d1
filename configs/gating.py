"""Uncertainty gating for cost-aware XAI (arXiv:2603.29915): every experiment.

    python -m eval.gating --config configs/gating.py[:VARIANT] --workdir DIR \\
        [--config.data.data_dir=/path/to/uci/files]

Fits LR (bootstrap), RF and MLP (MC dropout) per dataset and runs E1 (Table
2), E2 (XEC heatmap, natural and adversarial perturbations), E3 (strata),
E4/E5 (Tables 3-4), faithfulness, E7 focus, the reference code's extras
(threshold calibration, global approximation, contamination recovery), UC1
routing (a reconstruction) and the image experiment; writes `gating_report.md` with the paper's numbers beside
ours, `results.json`, `arrays.npz` and PNG figures.

Variants: `default` (the four embedded roles at CPU-sized sample counts:
50 rows per E2 cell, BIM as the one attack, KernelSHAP 256 coalitions x 20
background rows, LIME 500 samples, 3 E3 noise seeds on 240 rows, a 100-row
E4 pool of 2 versions; digits for the image experiment), `tiny` (CI: one
role, four E2 cells, two perturbations, a few rows) and `full` (the paper's
protocol: 100 rows per cell, BIM, PGD and C&W, KernelSHAP "auto" x 100
background rows, LIME 5000 samples, 10 seeds on 500 rows, 500-row pools of
5 versions).
With `data.data_dir` set, the paper's UCI files are read from there
(`jaxcxai.data.uci.PAPER_FILES`) instead of the embedded substitutes.
"""

import ml_collections

from jaxcxai.data.tabular import ROLES

VARIANTS = ("default", "tiny", "full")

# Checked before anything is written (configs/validate.py).
CONSTRAINTS = {
    "> 0": (
        "models.lr_resamples", "models.forest_trees", "models.mlp_epochs",
        "models.mc_passes", "explainers.kernel_background", "explainers.lime_samples",
        "explainers.lime_features", "explainers.ig_steps", "explainers.sig_n",
        "e2.num_samples", "e3.num_samples", "e3.per_stratum", "e3.num_seeds",
        "e3.sigmas", "e4.num_samples", "e4.num_versions", "e4.sigmas",
        "faithfulness.group_size", "faithfulness.num_random", "faithfulness.ks",
        "focus.rf_ratios", "focus.lr_ratios", "focus.num_samples", "focus.group_size",
        "focus.num_random", "extras.num_samples", "extras.calib_sigma",
        "extras.calib_draws", "extras.coverages", "extras.fracs", "extras.base",
        "extras.cont_sigma", "extras.keep", "extras.num_random",
        "uc1.sigma", "uc1.num_random", "image.channels", "image.epochs",
        "image.num_images", "image.mc_passes", "image.ig_steps", "image.smooth_n",
        "image.smooth_sigma", "image.batch_size",
    ),
    ">= 0": ("seed", "data.seed", "extras.rates", "explainers.kernel_nsamples",
             "explainers.sig_sigma", "image.max_per_class", "image.sigmas"),
    "[0, 1]": ("e4.nus", "e4.cost_nus", "uc1.fractions", "extras.coverages",
               "extras.fracs"),
}  # fmt: skip


def get_config(variant=None):
    variant = variant or "default"
    if variant not in VARIANTS:
        raise KeyError(f"{variant!r}; valid: {', '.join(VARIANTS)}")
    tiny, full = variant == "tiny", variant == "full"
    c = ml_collections.ConfigDict()
    c.seed = 42  # models, perturbations, explainers
    # "e1".."e4" (E5 comes with E4), "faithfulness", "focus" (E7), "extras"
    # (the reference code's scripts 8, 10, 11), "uc1", "image"
    c.experiments = (
        "e1", "e2", "e3", "e4", "faithfulness", "focus", "extras", "uc1", "image",
    )  # fmt: skip

    c.data = ml_collections.ConfigDict()
    # The paper's roles (jaxcxai.data.tabular.ROLES), in report order.
    c.data.roles = ("clean_binary",) if tiny else ROLES
    c.data.data_dir = ""  # "": embedded substitutes; else the paper's UCI files
    c.data.seed = 42  # the 70/15/15 split and the explained rows

    c.models = ml_collections.ConfigDict()
    c.models.names = ("lr", "rf", "mlp")  # bootstrap LR, random forest, MC-dropout MLP
    c.models.lr_resamples = 5 if tiny else 20  # bootstrap LR refits
    c.models.forest_trees = 20 if tiny else 100  # random forest
    c.models.mlp_epochs = 10 if tiny else 100  # at most (early stop 20)
    c.models.mc_passes = 10 if tiny else 50  # MC-dropout passes

    c.explainers = ml_collections.ConfigDict()
    # KernelSHAP background: the first training rows.
    c.explainers.kernel_background = 100 if full else (10 if tiny else 20)  # rows
    c.explainers.kernel_nsamples = 0 if full else (64 if tiny else 256)  # 0: "auto"
    c.explainers.lime_samples = 5000 if full else (100 if tiny else 500)  # per row
    c.explainers.lime_features = 10  # kept by LIME
    c.explainers.ig_steps = 50 if full else (8 if tiny else 20)  # IG / SmoothIG steps
    c.explainers.sig_n = 50 if full else (4 if tiny else 10)  # SmoothIG copies
    c.explainers.sig_sigma = 0.1  # SmoothIG noise std (z-scored units)

    c.e2 = ml_collections.ConfigDict()
    c.e2.num_samples = 100 if full else (16 if tiny else 50)  # rows per cell
    # natural: gaussian, missing, permutation; adversarial (MLP): bim, pgd, cw
    c.e2.perturbations = (
        ("gaussian", "bim")
        if tiny
        else ("gaussian", "missing", "permutation", "bim", "pgd", "cw")
        if full
        else ("gaussian", "missing", "permutation", "bim")  # BIM stands for the attacks
    )
    # "model:explainer" cells; (): the paper's eight
    c.e2.combos = ("lr:kernelshap", "rf:treeshap", "mlp:lime", "mlp:ig") if tiny else ()

    c.e3 = ml_collections.ConfigDict()
    c.e3.roles = ("clean_binary",) if tiny else ROLES[:3]  # RF + TreeSHAP strata
    c.e3.num_samples = 500 if full else (60 if tiny else 240)  # test rows stratified
    c.e3.per_stratum = 50 if full else (10 if tiny else 30)  # rows summarised
    c.e3.num_seeds = 10 if full else (2 if tiny else 3)  # noise seeds per row
    c.e3.sigmas = (0.01, 0.05, 0.1)  # Gaussian noise levels

    c.e4 = ml_collections.ConfigDict()
    c.e4.roles = ("clean_binary",) if tiny else ROLES[:3]  # mixed-noise pools
    c.e4.num_samples = 500 if full else (60 if tiny else 100)  # test rows pooled
    c.e4.num_versions = 5 if full else 2  # noisy copies per level
    # Gaussian noise levels of the pool (paper: 0.02 k, k = 1..10).
    c.e4.sigmas = (
        (0.05, 0.1, 0.2) if tiny else tuple(round(0.02 * k, 2) for k in range(1, 11))
    )
    c.e4.nus = (0.9, 0.7, 0.5, 0.3, 0.1)  # Table 3
    c.e4.cost_nus = (0.7, 0.5, 0.3, 0.0)  # Table 4
    c.e4.configs = ("rf:treeshap", "mlp:lime")  # E4 uses the first

    c.faithfulness = ml_collections.ConfigDict()
    c.faithfulness.configs = ("rf:treeshap", "lr:kernelshap")  # model:explainer
    c.faithfulness.group_size = 50 if full else (10 if tiny else 30)  # rows per group
    c.faithfulness.num_random = 5 if not tiny else 2  # random groups
    c.faithfulness.ks = (1, 2, 3, 4, 5)  # top features removed

    c.focus = ml_collections.ConfigDict()  # E7, noise-feature focus (Figure 8)
    # Datasets retrained with noise columns (App. C's are not in our notes).
    c.focus.roles = (
        ("clean_binary",) if tiny else (ROLES[:3] if full else ("weak_signal_binary",))
    )
    # "model:explainer" retrained per ratio (RF and LR only)
    c.focus.configs = ("rf:treeshap",) if tiny else ("rf:treeshap", "lr:kernelshap")
    c.focus.rf_ratios = (1, 3) if tiny else (1, 2, 3, 5, 10)  # noise per signal col
    c.focus.lr_ratios = (1, 2, 3)  # LR + KernelSHAP
    c.focus.num_samples = 500 if full else (60 if tiny else 150)  # test rows
    c.focus.group_size = 50 if full else (10 if tiny else 30)  # rows per group
    c.focus.num_random = 5 if not tiny else 2  # random groups

    # The reference code's extra scripts 8, 10, 11 (not claims of the paper).
    c.extras = ml_collections.ConfigDict()
    c.extras.roles = ("clean_binary",) if tiny else ROLES[:3]  # datasets
    c.extras.config = "rf:treeshap"  # model:explainer analysed
    c.extras.num_samples = 1000 if full else (60 if tiny else 200)  # test rows
    c.extras.calib_sigma = 0.1  # noise of the stability labels (script 8)
    c.extras.calib_draws = 5 if full else (2 if tiny else 3)  # noisy copies
    c.extras.coverages = tuple(round(0.05 * i, 2) for i in range(4, 17))  # sweep
    c.extras.fracs = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)  # script 10 groups
    c.extras.base = 10 if tiny else 50  # script 11: lowest-U base batch
    c.extras.cont_sigma = 0.5  # contaminants' Gaussian noise
    c.extras.rates = (0, 1, 3) if tiny else (0, 0.5, 1, 2, 3, 4, 5)  # per base row
    c.extras.keep = 8 if tiny else 40  # rows kept by filter / random subsets
    c.extras.num_random = 2 if tiny else 5  # random subsets per rate

    c.uc1 = ml_collections.ConfigDict()  # a reconstruction (no paper experiment)
    c.uc1.fractions = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)  # routed to SmoothIG
    c.uc1.sigma = 0.1  # noise of the stability check
    c.uc1.num_random = 3 if tiny else 20  # random routings per fraction

    c.image = ml_collections.ConfigDict()
    c.image.source = "digits"  # "digits" | "fashion_mnist" | "" (skip)
    # The paper's 32-64-128 CNN (pools after each block, batch 256) shrunk
    # for 8 x 8 digits: with it, 20 epochs give ~95 % test accuracy.
    c.image.channels = (32, 64, 128) if full else (16, 32, 64)
    c.image.pools = (True, True, False)  # 2 x 2 max-pool after each block
    c.image.batch_size = 32  # 1250 training digits: 256 leaves 5 steps/epoch
    # Noise std in [-1, 1] pixel units. The paper's 0..0.2 (28 x 28 images)
    # leaves an 8 x 8 digit CNN's U_epi flat; 0..0.8 spans its response.
    c.image.sigmas = (0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8)
    c.image.epochs = 2 if tiny else 20  # at most (early stop on val accuracy)
    c.image.num_images = 20 if tiny else 100  # test images explained
    c.image.mc_passes = 5 if tiny else 50  # MC-dropout passes
    c.image.ig_steps = 8 if tiny else (50 if full else 20)  # IG steps
    c.image.smooth_n = 4 if tiny else (20 if full else 10)  # SmoothGrad copies
    c.image.smooth_sigma = 0.1  # SmoothGrad noise std (image units)
    c.image.max_per_class = 0  # 0: all images
    return c
