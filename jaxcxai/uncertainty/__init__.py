"""Uncertainty gating for cost-aware XAI (Mikriukov, Montavon, Höhne,
arXiv:2603.29915): epistemic uncertainty as a cheap proxy for explanation
reliability, used to route uncertain samples to expensive explainers or to
defer them under a budget.

entropy      U_epi / aleatoric reductions of member probabilities (mutual
             information, member variance), the `Estimate` every estimator
             returns
bootstrap    bootstrap logistic regression: B refits at once under vmap
dropout      MC-dropout MLP (mutual information) and CNN (softmax variance)
ensembles    deep ensembles trained at once under vmap; the MLP trainer
forest       random-forest tree variance; the forest surrogate for any model
perturb      Gaussian, missing-value and permutation perturbations at the
             paper's levels, one key per realisation
attacks      untargeted BIM, PGD and C&W against a JAX model
correlation  explanation drift XD, epistemic gain EG, XEC, U_epi strata,
             stratified stability and the p10-vs-p90 t-test
gating       calibrate / route / defer, the cost q, reliability records,
             precision and recall of "stable" under a budget, UC1 (a
             reconstruction)
quality      E1 (Table 2): weighted F1 with bootstrap std, mean U_epi, CV_epi
experiments  E2 (Figure 2: XD, EG, XEC) and E3 (Figure 3: strata, t-test)
deferral     the mixed-noise pool, E4 (Table 3), E5 (Table 4), faithfulness
             groups (Figure 4)
tables       the experiments' rows in the paper's table layout
gbdt         the reference code's LightGBM / CatBoost estimators (optional
             `gbdt` extra)
image        the image experiment: CNN with MC dropout, IG / SmoothGrad
             SSIM against noise (Figures 5-6)
image_data   the image experiment's image sets, split 70/15/15 per class
masks        counter-hash dropout masks (the MC-dropout models' default)
focus        E7: noise columns and the SignalMass of U groups (App. C)
calibration  threshold calibration (the reference code's script 8)
recovery     global approximation and contamination recovery (scripts 10,
             11)

A whole study (what `python -m eval.gating` and the main job's `gating`
stage run):
study        `GatingStudy`: every setting, the paper's protocol as defaults
settings     its sections (one frozen dataclass each)
models       the tabular models of one dataset, their U_epi and explainers
pipeline     one dataset through E1-E5, faithfulness and UC1
analyses     E7 focus and the reference code's extras on one dataset
run          all datasets and the image experiment; writes the workdir
paper        the paper's Tables 1-4, image numbers and findings
findings     the paper's findings checked in direction on our results
figures      the study's PNG figures
report       the markdown report, the paper's numbers beside ours
paper_tables the paper's Tables 1-4 and Figure 2-3 cells beside ours
"""

from jaxcxai.uncertainty import analyses as analyses
from jaxcxai.uncertainty import attacks as attacks
from jaxcxai.uncertainty import bootstrap as bootstrap
from jaxcxai.uncertainty import calibration as calibration
from jaxcxai.uncertainty import correlation as correlation
from jaxcxai.uncertainty import deferral as deferral
from jaxcxai.uncertainty import dropout as dropout
from jaxcxai.uncertainty import ensembles as ensembles
from jaxcxai.uncertainty import entropy as entropy
from jaxcxai.uncertainty import experiments as experiments
from jaxcxai.uncertainty import figures as figures
from jaxcxai.uncertainty import findings as findings
from jaxcxai.uncertainty import focus as focus
from jaxcxai.uncertainty import forest as forest
from jaxcxai.uncertainty import gating as gating
from jaxcxai.uncertainty import gbdt as gbdt
from jaxcxai.uncertainty import image as image
from jaxcxai.uncertainty import image_data as image_data
from jaxcxai.uncertainty import masks as masks
from jaxcxai.uncertainty import models as models
from jaxcxai.uncertainty import paper as paper
from jaxcxai.uncertainty import paper_tables as paper_tables
from jaxcxai.uncertainty import perturb as perturb
from jaxcxai.uncertainty import pipeline as pipeline
from jaxcxai.uncertainty import quality as quality
from jaxcxai.uncertainty import recovery as recovery
from jaxcxai.uncertainty import report as report
from jaxcxai.uncertainty import run as run
from jaxcxai.uncertainty import settings as settings
from jaxcxai.uncertainty import study as study
from jaxcxai.uncertainty import tables as tables
from jaxcxai.uncertainty.attacks import attack_sweep as attack_sweep
from jaxcxai.uncertainty.attacks import bim as bim
from jaxcxai.uncertainty.attacks import carlini_wagner as carlini_wagner
from jaxcxai.uncertainty.attacks import pgd as pgd
from jaxcxai.uncertainty.bootstrap import (
    bootstrap_logreg_uncertainty as bootstrap_logreg_uncertainty,
)
from jaxcxai.uncertainty.bootstrap import fit_bootstrap_logreg as fit_bootstrap_logreg
from jaxcxai.uncertainty.calibration import (
    threshold_calibration as threshold_calibration,
)
from jaxcxai.uncertainty.correlation import epistemic_gain as epistemic_gain
from jaxcxai.uncertainty.correlation import explanation_drift as explanation_drift
from jaxcxai.uncertainty.correlation import extreme_groups_ttest as extreme_groups_ttest
from jaxcxai.uncertainty.correlation import strata as strata
from jaxcxai.uncertainty.correlation import xec as xec
from jaxcxai.uncertainty.deferral import e4_deferral as e4_deferral
from jaxcxai.uncertainty.deferral import e5_cost as e5_cost
from jaxcxai.uncertainty.deferral import faithfulness_groups as faithfulness_groups
from jaxcxai.uncertainty.deferral import mixed_noise_pool as mixed_noise_pool
from jaxcxai.uncertainty.dropout import MLP as MLP
from jaxcxai.uncertainty.dropout import DropoutCNN as DropoutCNN
from jaxcxai.uncertainty.dropout import cnn_mc_variance as cnn_mc_variance
from jaxcxai.uncertainty.dropout import mc_dropout_uncertainty as mc_dropout_uncertainty
from jaxcxai.uncertainty.ensembles import ensemble_uncertainty as ensemble_uncertainty
from jaxcxai.uncertainty.ensembles import train_ensemble as train_ensemble
from jaxcxai.uncertainty.ensembles import train_mlp as train_mlp
from jaxcxai.uncertainty.entropy import Estimate as Estimate
from jaxcxai.uncertainty.entropy import expected_entropy as expected_entropy
from jaxcxai.uncertainty.entropy import member_variance as member_variance
from jaxcxai.uncertainty.entropy import mutual_information as mutual_information
from jaxcxai.uncertainty.entropy import predictive_entropy as predictive_entropy
from jaxcxai.uncertainty.experiments import e2_correlation as e2_correlation
from jaxcxai.uncertainty.experiments import (
    e3_stratified_stability as e3_stratified_stability,
)
from jaxcxai.uncertainty.findings import check_findings as check_findings
from jaxcxai.uncertainty.focus import add_noise_features as add_noise_features
from jaxcxai.uncertainty.focus import focus_groups as focus_groups
from jaxcxai.uncertainty.forest import fit_forest as fit_forest
from jaxcxai.uncertainty.forest import fit_surrogate as fit_surrogate
from jaxcxai.uncertainty.forest import forest_uncertainty as forest_uncertainty
from jaxcxai.uncertainty.forest import surrogate_uncertainty as surrogate_uncertainty
from jaxcxai.uncertainty.gating import calibrate as calibrate
from jaxcxai.uncertainty.gating import defer as defer
from jaxcxai.uncertainty.gating import deferral_table as deferral_table
from jaxcxai.uncertainty.gating import relative_cost as relative_cost
from jaxcxai.uncertainty.gating import reliability_records as reliability_records
from jaxcxai.uncertainty.gating import route as route
from jaxcxai.uncertainty.gating import uc1_curve as uc1_curve
from jaxcxai.uncertainty.gbdt import catboost_uncertainty as catboost_uncertainty
from jaxcxai.uncertainty.gbdt import fit_catboost as fit_catboost
from jaxcxai.uncertainty.gbdt import fit_lightgbm as fit_lightgbm
from jaxcxai.uncertainty.gbdt import lightgbm_uncertainty as lightgbm_uncertainty
from jaxcxai.uncertainty.image import image_experiment as image_experiment
from jaxcxai.uncertainty.image import train_cnn as train_cnn
from jaxcxai.uncertainty.perturb import gaussian_noise as gaussian_noise
from jaxcxai.uncertainty.perturb import missing_values as missing_values
from jaxcxai.uncertainty.perturb import permute_features as permute_features
from jaxcxai.uncertainty.perturb import perturb_sweep as perturb_sweep
from jaxcxai.uncertainty.pipeline import run_dataset as run_dataset
from jaxcxai.uncertainty.quality import e1_model_quality as e1_model_quality
from jaxcxai.uncertainty.recovery import (
    contamination_recovery as contamination_recovery,
)
from jaxcxai.uncertainty.recovery import global_approximation as global_approximation
from jaxcxai.uncertainty.run import run_study as run_study
from jaxcxai.uncertainty.study import GatingStudy as GatingStudy

__all__ = [
    "study",
    "settings",
    "analyses",
    "paper_tables",
    "masks",
    "focus",
    "calibration",
    "recovery",
    "add_noise_features",
    "focus_groups",
    "threshold_calibration",
    "global_approximation",
    "contamination_recovery",
    "models",
    "pipeline",
    "paper",
    "findings",
    "figures",
    "report",
    "image",
    "image_data",
    "gbdt",
    "run",
    "GatingStudy",
    "run_study",
    "run_dataset",
    "check_findings",
    "image_experiment",
    "train_cnn",
    "fit_lightgbm",
    "lightgbm_uncertainty",
    "fit_catboost",
    "catboost_uncertainty",
    "quality",
    "experiments",
    "deferral",
    "tables",
    "e1_model_quality",
    "e2_correlation",
    "e3_stratified_stability",
    "mixed_noise_pool",
    "e4_deferral",
    "e5_cost",
    "faithfulness_groups",
    "entropy",
    "bootstrap",
    "dropout",
    "ensembles",
    "forest",
    "perturb",
    "attacks",
    "correlation",
    "gating",
    "Estimate",
    "mutual_information",
    "member_variance",
    "predictive_entropy",
    "expected_entropy",
    "bootstrap_logreg_uncertainty",
    "fit_bootstrap_logreg",
    "MLP",
    "DropoutCNN",
    "mc_dropout_uncertainty",
    "cnn_mc_variance",
    "train_mlp",
    "train_ensemble",
    "ensemble_uncertainty",
    "forest_uncertainty",
    "surrogate_uncertainty",
    "fit_forest",
    "fit_surrogate",
    "perturb_sweep",
    "gaussian_noise",
    "missing_values",
    "permute_features",
    "bim",
    "pgd",
    "carlini_wagner",
    "attack_sweep",
    "explanation_drift",
    "epistemic_gain",
    "xec",
    "strata",
    "extreme_groups_ttest",
    "calibrate",
    "route",
    "defer",
    "relative_cost",
    "reliability_records",
    "deferral_table",
    "uc1_curve",
]
