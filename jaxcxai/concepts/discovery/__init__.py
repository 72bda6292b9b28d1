"""Unsupervised concept discovery: factorizations, importance, matching, quality.

common      `Factorization` (components (k, d), codes (N, k), losses, mean)
            and the input checks shared by every method
nmf         NMF math: MU (Lee & Seung 2001), HALS (Cichocki & Phan 2009),
            semi-NMF (Ding et al. 2010), random/NNDSVD init, code transform
bulk        NMF entry points: one fit, seeds vmapped, ranks padded, layers
            one program per shape (or padded), rows sharded over a mesh
pca         PCA by exact or randomized SVD (Halko et al. 2011)
ica         FastICA, parallel/symmetric, logcosh, PCA whitening
            (Hyvarinen 1999)
kmeans      k-means++ seeding (Arthur & Vassilvitskii 2007) and Lloyd
sae         TopK sparse autoencoder: params, encode/decode, train step
            (Makhzani & Frey 2013; Gao et al. 2024)
sae_stream  SAE training streamed over chunks (feature caches), seeds vmapped
ice         ICE: NMF concepts of spatial activations, presence maps,
            explanation fidelity (Zhang et al. 2021)
importance  concept importance: code gradients, CRAFT total Sobol indices
            (Fel et al. 2023)
matching    Hungarian matching of dictionaries on cosine, seed/subset
            stability, matching against supervised vectors
quality     reconstruction R^2, sparsity, dead codes, NetDissect-style
            localization IoU against concept masks, recovered concepts
references  top-n reference images/crops per concept with presence maps
plots       reference grids (one PNG per layer), component-vs-concept IoU
            heatmaps
study       settings (`DiscoveryStudy`), data and files of a discovery study
run         a study end to end: NMF and SAE dictionaries x layers x seeds
evaluation  R^2, seed stability, localisation IoU, CAV match, scene fidelity
report      the study's tables, reference-crop grids and IoU heatmaps
"""

from jaxcxai.concepts.discovery import bulk as bulk
from jaxcxai.concepts.discovery import common as common
from jaxcxai.concepts.discovery import evaluation as evaluation
from jaxcxai.concepts.discovery import ica as ica
from jaxcxai.concepts.discovery import ice as ice
from jaxcxai.concepts.discovery import importance as importance
from jaxcxai.concepts.discovery import kmeans as kmeans
from jaxcxai.concepts.discovery import matching as matching
from jaxcxai.concepts.discovery import nmf as nmf
from jaxcxai.concepts.discovery import pca as pca
from jaxcxai.concepts.discovery import plots as plots
from jaxcxai.concepts.discovery import quality as quality
from jaxcxai.concepts.discovery import references as references
from jaxcxai.concepts.discovery import report as report
from jaxcxai.concepts.discovery import run as run
from jaxcxai.concepts.discovery import sae as sae
from jaxcxai.concepts.discovery import sae_stream as sae_stream
from jaxcxai.concepts.discovery import study as study
from jaxcxai.concepts.discovery.bulk import fit_nmf as fit_nmf
from jaxcxai.concepts.discovery.bulk import fit_semi_nmf as fit_semi_nmf
from jaxcxai.concepts.discovery.bulk import nmf_layers as nmf_layers
from jaxcxai.concepts.discovery.bulk import nmf_ranks as nmf_ranks
from jaxcxai.concepts.discovery.bulk import nmf_seeds as nmf_seeds
from jaxcxai.concepts.discovery.common import Factorization as Factorization
from jaxcxai.concepts.discovery.ica import fastica as fastica
from jaxcxai.concepts.discovery.ice import Ice as Ice
from jaxcxai.concepts.discovery.ice import fit_ice as fit_ice
from jaxcxai.concepts.discovery.ice import ice_fidelity as ice_fidelity
from jaxcxai.concepts.discovery.ice import ice_presence as ice_presence
from jaxcxai.concepts.discovery.ice import presence_maps as presence_maps
from jaxcxai.concepts.discovery.importance import code_gradients as code_gradients
from jaxcxai.concepts.discovery.importance import concept_sobol as concept_sobol
from jaxcxai.concepts.discovery.importance import (
    gradient_importance as gradient_importance,
)
from jaxcxai.concepts.discovery.importance import sobol_indices as sobol_indices
from jaxcxai.concepts.discovery.kmeans import fit_kmeans as fit_kmeans
from jaxcxai.concepts.discovery.kmeans import kmeans_plusplus as kmeans_plusplus
from jaxcxai.concepts.discovery.matching import Match as Match
from jaxcxai.concepts.discovery.matching import cosine_matrix as cosine_matrix
from jaxcxai.concepts.discovery.matching import match as match
from jaxcxai.concepts.discovery.matching import match_stats as match_stats
from jaxcxai.concepts.discovery.matching import (
    match_to_reference as match_to_reference,
)
from jaxcxai.concepts.discovery.matching import stability as stability
from jaxcxai.concepts.discovery.pca import fit_pca as fit_pca
from jaxcxai.concepts.discovery.pca import randomized_svd as randomized_svd
from jaxcxai.concepts.discovery.plots import plot_iou_heatmap as plot_iou_heatmap
from jaxcxai.concepts.discovery.plots import plot_references as plot_references
from jaxcxai.concepts.discovery.plots import (
    save_layer_references as save_layer_references,
)
from jaxcxai.concepts.discovery.quality import best_concepts as best_concepts
from jaxcxai.concepts.discovery.quality import dead_codes as dead_codes
from jaxcxai.concepts.discovery.quality import localization_iou as localization_iou
from jaxcxai.concepts.discovery.quality import r2 as r2
from jaxcxai.concepts.discovery.quality import (
    recovered_concepts as recovered_concepts,
)
from jaxcxai.concepts.discovery.quality import sparsity as sparsity
from jaxcxai.concepts.discovery.references import References as References
from jaxcxai.concepts.discovery.references import (
    reference_samples as reference_samples,
)
from jaxcxai.concepts.discovery.references import vector_presence as vector_presence
from jaxcxai.concepts.discovery.run import discover as discover
from jaxcxai.concepts.discovery.sae import create_sae_state as create_sae_state
from jaxcxai.concepts.discovery.sae import make_sae_train_step as make_sae_train_step
from jaxcxai.concepts.discovery.sae import sae_factorization as sae_factorization
from jaxcxai.concepts.discovery.sae_stream import fit_sae as fit_sae
from jaxcxai.concepts.discovery.study import DiscoveryStudy as DiscoveryStudy

__all__ = [
    "DiscoveryStudy",
    "discover",
    "evaluation",
    "recovered_concepts",
    "report",
    "run",
    "study",
    "Factorization",
    "Ice",
    "Match",
    "References",
    "best_concepts",
    "bulk",
    "code_gradients",
    "common",
    "concept_sobol",
    "cosine_matrix",
    "create_sae_state",
    "dead_codes",
    "fastica",
    "fit_ice",
    "fit_kmeans",
    "fit_nmf",
    "fit_pca",
    "fit_sae",
    "fit_semi_nmf",
    "gradient_importance",
    "ica",
    "ice",
    "ice_fidelity",
    "ice_presence",
    "importance",
    "kmeans",
    "kmeans_plusplus",
    "localization_iou",
    "make_sae_train_step",
    "match",
    "match_stats",
    "match_to_reference",
    "matching",
    "nmf",
    "nmf_layers",
    "nmf_ranks",
    "nmf_seeds",
    "pca",
    "plot_iou_heatmap",
    "plot_references",
    "plots",
    "presence_maps",
    "quality",
    "r2",
    "randomized_svd",
    "reference_samples",
    "references",
    "sae",
    "sae_factorization",
    "sae_stream",
    "save_layer_references",
    "sobol_indices",
    "sparsity",
    "stability",
    "vector_presence",
]
