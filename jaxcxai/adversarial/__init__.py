"""Adversarial attacks and their concept-based dissection (Mikriukov,
Schwalbe, Motzkus & Bade 2024, arXiv 2403.16782; a reconstruction).

core           `AttackResult`, default objectives, input checks, norms, ASR
attacks        FGSM, BIM, PGD, MI-FGSM (l-inf / l2, targeted), `ATTACKS`,
               `over_targets` (vmapped over target classes)
iterates       the step loop of the gradient attacks (host-looped chunks)
cw             Carlini & Wagner l2 with a binary search over c
latent         latent perturbations A_l(x_adv) - A_l(x), GAP, activation
               patching (`patched_logits`)
decomposition  global components of stacked perturbations (PCA, NMF of the
               positive/negative parts, ICA), projections (F2)
ablation       success as components are removed / only added (F2)
specificity    run similarity of Hungarian-matched components, the
               same-target gap and its permutation test (F3)
composition    ICE/NMF concepts of clean source, adversarial and clean target
               activations compared (F1)
study          settings (`AdversarialStudy`), checks and files of the study
models         the model sources: SynthAerial backbone, packaged ImageNet
               networks on bundled photos, a digits / Fashion-MNIST CNN
dissection     F1-F3 of one model's successful examples per layer
probing        TCAV / Net2Vec of SynthAerial concepts on clean vs adversarial
               images, the planted boat/harbor check
run            the study end to end (`adversarial`)
report         verdicts on F1-F3, markdown tables, `RECONSTRUCTIONS`
figures        ASR bars, examples, explained variance, ablation, specificity
"""

from jaxcxai.adversarial import ablation as ablation
from jaxcxai.adversarial import attacks as attacks
from jaxcxai.adversarial import composition as composition
from jaxcxai.adversarial import core as core
from jaxcxai.adversarial import cw as cw
from jaxcxai.adversarial import decomposition as decomposition
from jaxcxai.adversarial import dissection as dissection
from jaxcxai.adversarial import figures as figures
from jaxcxai.adversarial import iterates as iterates
from jaxcxai.adversarial import latent as latent
from jaxcxai.adversarial import models as models
from jaxcxai.adversarial import probing as probing
from jaxcxai.adversarial import report as report
from jaxcxai.adversarial import run as run
from jaxcxai.adversarial import specificity as specificity
from jaxcxai.adversarial import study as study
from jaxcxai.adversarial.ablation import ablation_curve as ablation_curve
from jaxcxai.adversarial.ablation import add_only_curve as add_only_curve
from jaxcxai.adversarial.ablation import gradient_order as gradient_order
from jaxcxai.adversarial.attacks import ATTACKS as ATTACKS
from jaxcxai.adversarial.attacks import bim as bim
from jaxcxai.adversarial.attacks import fgsm as fgsm
from jaxcxai.adversarial.attacks import iterative as iterative
from jaxcxai.adversarial.attacks import mifgsm as mifgsm
from jaxcxai.adversarial.attacks import over_targets as over_targets
from jaxcxai.adversarial.attacks import pgd as pgd
from jaxcxai.adversarial.composition import concept_change as concept_change
from jaxcxai.adversarial.core import AttackResult as AttackResult
from jaxcxai.adversarial.core import perturbation_norms as perturbation_norms
from jaxcxai.adversarial.core import success_rate as success_rate
from jaxcxai.adversarial.core import targeted_objective as targeted_objective
from jaxcxai.adversarial.core import untargeted_objective as untargeted_objective
from jaxcxai.adversarial.cw import cw_l2 as cw_l2
from jaxcxai.adversarial.decomposition import Components as Components
from jaxcxai.adversarial.decomposition import fit_components as fit_components
from jaxcxai.adversarial.decomposition import project as project
from jaxcxai.adversarial.latent import gap as gap
from jaxcxai.adversarial.latent import latent_perturbation as latent_perturbation
from jaxcxai.adversarial.latent import patched_logits as patched_logits
from jaxcxai.adversarial.models import Source as Source
from jaxcxai.adversarial.run import adversarial as adversarial
from jaxcxai.adversarial.specificity import (
    component_similarity as component_similarity,
)
from jaxcxai.adversarial.specificity import mean_direction as mean_direction
from jaxcxai.adversarial.specificity import specificity_gap as specificity_gap
from jaxcxai.adversarial.study import AdversarialStudy as AdversarialStudy
from jaxcxai.adversarial.study import check_study as check_study

__all__ = [
    "ATTACKS",
    "AdversarialStudy",
    "AttackResult",
    "Components",
    "Source",
    "ablation",
    "ablation_curve",
    "add_only_curve",
    "adversarial",
    "attacks",
    "bim",
    "check_study",
    "component_similarity",
    "composition",
    "concept_change",
    "core",
    "cw",
    "cw_l2",
    "decomposition",
    "dissection",
    "fgsm",
    "figures",
    "fit_components",
    "gap",
    "gradient_order",
    "iterates",
    "iterative",
    "latent",
    "latent_perturbation",
    "mean_direction",
    "mifgsm",
    "models",
    "over_targets",
    "patched_logits",
    "perturbation_norms",
    "pgd",
    "probing",
    "project",
    "report",
    "run",
    "specificity",
    "specificity_gap",
    "study",
    "success_rate",
    "targeted_objective",
    "untargeted_objective",
]
