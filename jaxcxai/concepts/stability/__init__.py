"""Stability of concept representations (Mikriukov et al. 2023, arXiv 2304.14864).

representations  the 1D (spatial mean), 2D (channel mean) and 3D (flattened)
                 views of (N, H, W, C) activations that CAVs are fitted on
runs             R CAVs of one concept on random subsets, in one vmapped fit
sgd_runs         TCAV's SGD on many runs: block Gram matrices, loops chunked
                 and split over a mesh
retrieval        retrieval stability S = separation x consistency
                 (reconstruction), sweeps over sample counts and views, ICE
                 consistency by Hungarian matching
attribution      smoothed concept attribution <gradient, CAV> (51-gradient
                 SmoothGrad, the reference's noise quirk as a flag), repeated
                 runs over noise keys
instability      gradient instability: sign flips, coefficients of variation,
                 one-image-at-a-time vs batched layer gradients

A stability study of a trained backbone (`python -m eval.stability`, the
main job's `stability` stage):
study            settings (`StabilityStudy`), SynthAerial scenes labelled at
                 three abstraction levels, held-out rows, run subsets, files
run              a study end to end (`stability`): retrieval cells at one
                 fitting width, ICE consistency, attribution stability
report           planted checks and the markdown report
figures          S / consistency / separation vs layer, consistency vs
                 samples, attribution sign flips
"""

from jaxcxai.concepts.stability import attribution as attribution
from jaxcxai.concepts.stability import figures as figures
from jaxcxai.concepts.stability import instability as instability
from jaxcxai.concepts.stability import report as report
from jaxcxai.concepts.stability import representations as representations
from jaxcxai.concepts.stability import retrieval as retrieval
from jaxcxai.concepts.stability import run as run
from jaxcxai.concepts.stability import runs as runs
from jaxcxai.concepts.stability import sgd_runs as sgd_runs
from jaxcxai.concepts.stability import study as study
from jaxcxai.concepts.stability.attribution import (
    concept_attribution as concept_attribution,
)
from jaxcxai.concepts.stability.attribution import (
    repeated_attribution as repeated_attribution,
)
from jaxcxai.concepts.stability.attribution import smoothing as smoothing
from jaxcxai.concepts.stability.instability import Instability as Instability
from jaxcxai.concepts.stability.instability import (
    batch_instability as batch_instability,
)
from jaxcxai.concepts.stability.instability import (
    batched_gradients as batched_gradients,
)
from jaxcxai.concepts.stability.instability import (
    coefficient_of_variation as coefficient_of_variation,
)
from jaxcxai.concepts.stability.instability import compare as compare
from jaxcxai.concepts.stability.instability import sign_flip_rate as sign_flip_rate
from jaxcxai.concepts.stability.instability import (
    single_gradients as single_gradients,
)
from jaxcxai.concepts.stability.instability import variability as variability
from jaxcxai.concepts.stability.representations import DIMS as DIMS
from jaxcxai.concepts.stability.representations import represent as represent
from jaxcxai.concepts.stability.retrieval import (
    RetrievalStability as RetrievalStability,
)
from jaxcxai.concepts.stability.retrieval import combine as combine
from jaxcxai.concepts.stability.retrieval import consistency as consistency
from jaxcxai.concepts.stability.retrieval import ice_consistency as ice_consistency
from jaxcxai.concepts.stability.retrieval import (
    retrieval_stability as retrieval_stability,
)
from jaxcxai.concepts.stability.retrieval import run_consistency as run_consistency
from jaxcxai.concepts.stability.retrieval import run_separation as run_separation
from jaxcxai.concepts.stability.retrieval import separation as separation
from jaxcxai.concepts.stability.retrieval import sweep as sweep
from jaxcxai.concepts.stability.retrieval import sweep_table as sweep_table
from jaxcxai.concepts.stability.run import stability as stability
from jaxcxai.concepts.stability.runs import Runs as Runs
from jaxcxai.concepts.stability.runs import fit_runs as fit_runs
from jaxcxai.concepts.stability.runs import fit_subsets as fit_subsets
from jaxcxai.concepts.stability.study import StabilityStudy as StabilityStudy

__all__ = [
    "DIMS",
    "Instability",
    "RetrievalStability",
    "Runs",
    "StabilityStudy",
    "attribution",
    "batch_instability",
    "batched_gradients",
    "coefficient_of_variation",
    "combine",
    "compare",
    "concept_attribution",
    "consistency",
    "fit_runs",
    "figures",
    "fit_subsets",
    "instability",
    "ice_consistency",
    "repeated_attribution",
    "report",
    "represent",
    "representations",
    "retrieval",
    "retrieval_stability",
    "run",
    "run_consistency",
    "run_separation",
    "runs",
    "separation",
    "sgd_runs",
    "sign_flip_rate",
    "single_gradients",
    "smoothing",
    "stability",
    "study",
    "sweep",
    "sweep_table",
    "variability",
]
