"""Explanation metrics: pure, batched, jittable functions (no plots).

rank          Kendall tau-b and Spearman rho on |phi| ranks (scipy's tie
              handling; the reference's ordering variant as a flag), top-k
              intersection and Jaccard
ssim          SSIM of min-max normalised maps with scikit-image's defaults
faithfulness  log-odds removal shift (median replacement), deletion and
              insertion curves and their AUC
sanity        signal mass, noise features in the top-d, model-parameter
              randomisation (cascading or independent)
localisation  relevance mass (energy in mask), relevance rank accuracy,
              pointing game against ground-truth masks
"""

from jaxcxai.metrics.explanations.faithfulness import curve_auc as curve_auc
from jaxcxai.metrics.explanations.faithfulness import deletion_curve as deletion_curve
from jaxcxai.metrics.explanations.faithfulness import feature_ranks as feature_ranks
from jaxcxai.metrics.explanations.faithfulness import insertion_curve as insertion_curve
from jaxcxai.metrics.explanations.faithfulness import log_odds as log_odds
from jaxcxai.metrics.explanations.faithfulness import removal_inputs as removal_inputs
from jaxcxai.metrics.explanations.faithfulness import removal_shift as removal_shift
from jaxcxai.metrics.explanations.localisation import pointing_game as pointing_game
from jaxcxai.metrics.explanations.localisation import relevance_mass as relevance_mass
from jaxcxai.metrics.explanations.localisation import (
    relevance_rank_accuracy as relevance_rank_accuracy,
)
from jaxcxai.metrics.explanations.rank import average_ranks as average_ranks
from jaxcxai.metrics.explanations.rank import kendall_tau as kendall_tau
from jaxcxai.metrics.explanations.rank import spearman_rho as spearman_rho
from jaxcxai.metrics.explanations.rank import top_k_intersection as top_k_intersection
from jaxcxai.metrics.explanations.rank import top_k_jaccard as top_k_jaccard
from jaxcxai.metrics.explanations.sanity import gaussian_reinit as gaussian_reinit
from jaxcxai.metrics.explanations.sanity import noise_in_top as noise_in_top
from jaxcxai.metrics.explanations.sanity import (
    parameter_randomization as parameter_randomization,
)
from jaxcxai.metrics.explanations.sanity import randomize_layers as randomize_layers
from jaxcxai.metrics.explanations.sanity import signal_mass as signal_mass
from jaxcxai.metrics.explanations.ssim import minmax_normalize as minmax_normalize
from jaxcxai.metrics.explanations.ssim import ssim as ssim

__all__ = [
    "average_ranks",
    "curve_auc",
    "deletion_curve",
    "feature_ranks",
    "gaussian_reinit",
    "insertion_curve",
    "kendall_tau",
    "log_odds",
    "minmax_normalize",
    "noise_in_top",
    "parameter_randomization",
    "pointing_game",
    "randomize_layers",
    "relevance_mass",
    "relevance_rank_accuracy",
    "removal_inputs",
    "removal_shift",
    "signal_mass",
    "spearman_rho",
    "ssim",
    "top_k_intersection",
    "top_k_jaccard",
]
