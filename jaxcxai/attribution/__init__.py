"""Attribution methods: vmapped over samples, one compiled program per method.

core          the shared contract: input checks, targets, per-sample scalars
batching      chunked maps and sums (in-program and host-looped), sample sharding
gradient      gradient, saliency, gradient x input, channel reduction
integrated    Integrated Gradients (Riemann and Gauss-Legendre rules),
              chunked over steps, completeness delta
noise         noise scales and sources of the noisy copies, their averaging
smooth        SmoothGrad / SquareGrad / VarGrad and SmoothIG over noisy copies
tap           gradients at a named layer of f(x) -> (logits, acts)
layer         layer gradients (optionally smoothed), concept attribution
              <gradient, CAV> for 1D, 2D and 3D CAVs
cam           Grad-CAM and Grad-CAM++ at a named layer
occlusion     occlusion of sliding windows (Zeiler & Fergus 2014)
kernel_shap   KernelSHAP: exact or paired-sampled coalitions, constrained WLS
coalitions    Shapley kernel weights, shap's budget allocation, sampling
lime          tabular LIME (quartile discretiser, exponential kernel, ridge)
lime_sampling LIME's discretiser statistics and neighbourhood sampler
lime_fit      LIME's feature selection and weighted ridge surrogate
lime_image    image LIME over scikit-image superpixels
rise          RISE: random low-resolution masks, mask-weighted class scores
tree_shap     TreeSHAP through shap's TreeExplainer, in the same contract
perturb       shared pieces of the sampling explainers (keys, batching, ridge)

An explanation study of a trained backbone (`python -m eval.explain`, the
main job's `explain` stage):
study         settings (`ExplainStudy`), the explained SynthAerial items, files
methods       the image explainers as a study runs them (one map per image)
scores        relevance mass, pointing game, deletion/insertion, randomisation,
              seed stability
tabular       scikit-learn tabular models as JAX programs and their explainers
tabular_eval  the tabular part: removal shift, agreement, randomisation
run           a study end to end (`explain`)
report, plots the study's tables and figures

Functions named like their module (`kernel_shap`, `occlusion`, `rise`,
`lime_image`, `tree_shap`) are re-exported here under that name.
"""

from jaxcxai.attribution import methods as methods
from jaxcxai.attribution import plots as plots
from jaxcxai.attribution import report as report
from jaxcxai.attribution import run as run
from jaxcxai.attribution import scores as scores
from jaxcxai.attribution import study as study
from jaxcxai.attribution import tabular as tabular
from jaxcxai.attribution import tabular_eval as tabular_eval
from jaxcxai.attribution.cam import grad_cam as grad_cam
from jaxcxai.attribution.cam import grad_cam_plus_plus as grad_cam_plus_plus
from jaxcxai.attribution.coalitions import coalition_plan as coalition_plan
from jaxcxai.attribution.core import check_chunk as check_chunk
from jaxcxai.attribution.core import check_finite as check_finite
from jaxcxai.attribution.core import check_key as check_key
from jaxcxai.attribution.core import chunked_map as chunked_map
from jaxcxai.attribution.core import chunked_sum as chunked_sum
from jaxcxai.attribution.core import host_chunked_sum as host_chunked_sum
from jaxcxai.attribution.core import logits_of as logits_of
from jaxcxai.attribution.core import map_samples as map_samples
from jaxcxai.attribution.core import prepare as prepare
from jaxcxai.attribution.core import resolve_target as resolve_target
from jaxcxai.attribution.core import scalar_output as scalar_output
from jaxcxai.attribution.gradient import gradient_x_input as gradient_x_input
from jaxcxai.attribution.gradient import gradients as gradients
from jaxcxai.attribution.gradient import reduce_channels as reduce_channels
from jaxcxai.attribution.gradient import saliency as saliency
from jaxcxai.attribution.integrated import (
    integrated_gradients as integrated_gradients,
)
from jaxcxai.attribution.integrated import quadrature as quadrature
from jaxcxai.attribution.kernel_shap import constrained_wls as constrained_wls
from jaxcxai.attribution.kernel_shap import kernel_shap as kernel_shap
from jaxcxai.attribution.layer import concept_attribution as concept_attribution
from jaxcxai.attribution.layer import layer_gradients as layer_gradients
from jaxcxai.attribution.lime import REFERENCE_TARGET as REFERENCE_TARGET
from jaxcxai.attribution.lime import lime_tabular as lime_tabular
from jaxcxai.attribution.lime_image import lime_image as lime_image
from jaxcxai.attribution.lime_image import segment_images as segment_images
from jaxcxai.attribution.lime_sampling import LimeStats as LimeStats
from jaxcxai.attribution.lime_sampling import lime_stats as lime_stats
from jaxcxai.attribution.occlusion import occlusion as occlusion
from jaxcxai.attribution.rise import rise as rise
from jaxcxai.attribution.rise import rise_masks as rise_masks
from jaxcxai.attribution.run import explain as explain
from jaxcxai.attribution.smooth import REFERENCE_SMOOTHING as REFERENCE_SMOOTHING
from jaxcxai.attribution.smooth import (
    smooth_integrated_gradients as smooth_integrated_gradients,
)
from jaxcxai.attribution.smooth import smooth_noise as smooth_noise
from jaxcxai.attribution.smooth import smoothgrad as smoothgrad
from jaxcxai.attribution.study import ExplainStudy as ExplainStudy
from jaxcxai.attribution.tap import layer_tap as layer_tap
from jaxcxai.attribution.tree_shap import tree_explainer as tree_explainer
from jaxcxai.attribution.tree_shap import tree_shap as tree_shap

__all__ = [
    "ExplainStudy",
    "explain",
    "methods",
    "plots",
    "report",
    "run",
    "scores",
    "study",
    "tabular",
    "tabular_eval",
    "kernel_shap",
    "constrained_wls",
    "coalition_plan",
    "lime_tabular",
    "REFERENCE_TARGET",
    "lime_stats",
    "LimeStats",
    "lime_image",
    "segment_images",
    "rise",
    "rise_masks",
    "occlusion",
    "tree_shap",
    "tree_explainer",
    "REFERENCE_SMOOTHING",
    "check_chunk",
    "check_finite",
    "check_key",
    "chunked_map",
    "chunked_sum",
    "concept_attribution",
    "grad_cam",
    "grad_cam_plus_plus",
    "gradient_x_input",
    "gradients",
    "integrated_gradients",
    "layer_gradients",
    "layer_tap",
    "host_chunked_sum",
    "logits_of",
    "map_samples",
    "prepare",
    "quadrature",
    "reduce_channels",
    "resolve_target",
    "saliency",
    "scalar_output",
    "smooth_integrated_gradients",
    "smooth_noise",
    "smoothgrad",
]
