"""Concept probes and concept embeddings.

net2vec          Net2Vec segmentation probes: objectives, embeddings
                 (normal, support, scale), ensemble aggregation
bulk             K concepts x L layers x R runs of Net2Vec in one jitted,
                 vmapped, sharded, streamed fit
bulk_state       bulk Net2Vec config, initial probes, minibatch orders
bulk_step        the jitted per-chunk optimizer scan, chunk layout on device
bulk_sources     chunk sources over arrays and feature caches
bulk_eval        segmentation KPIs of bulk-fitted probes
tcav             directional derivatives, TCAV scores, `run_tcav`
tcav_cavs        CAVs (logistic, hinge, mean-difference): fit, accuracy
tcav_solver      the span L-BFGS solver of the CAV fits
stats            TCAV significance: t-tests and Bonferroni correction
loce             per-sample local concept embeddings (LoCE, GCPV)
loce_projection  LoCE projections and the per-sample loss
loce_reference   the reference's batched fit and shared-vector baseline
loce_objectives  LoCE objectives and the shared AdamW scan
loce_store       LoCE results as arrays, atomic and resumable
loce_analysis    centroids, projection segmentation, separation, overlap,
                 retrieval, outliers
loce_clustering  hierarchical clustering and purity, GMMs selected by BIC
loce_plots       figures of the analyses
loce_summary     LoCE analysis summaries: separation with the car/truck rank,
                 sub-concept ARIs, retrieval, own-projection IoU
probe_report     probe evaluation report: aggregated probes, best layers,
                 CAV accuracy, IoU and TCAV figures, markdown tables
"""

from jaxcxai.concepts import bulk as bulk
from jaxcxai.concepts import loce as loce
from jaxcxai.concepts import loce_analysis as loce_analysis
from jaxcxai.concepts import loce_clustering as loce_clustering
from jaxcxai.concepts import loce_objectives as loce_objectives
from jaxcxai.concepts import loce_store as loce_store
from jaxcxai.concepts import net2vec as net2vec
from jaxcxai.concepts import stats as stats
from jaxcxai.concepts import tcav as tcav
from jaxcxai.concepts.bulk import Net2VecConfig as Net2VecConfig
from jaxcxai.concepts.bulk import fit_net2vec as fit_net2vec
from jaxcxai.concepts.loce import LoceConfig as LoceConfig
from jaxcxai.concepts.tcav import fit_cavs as fit_cavs
from jaxcxai.concepts.tcav import run_tcav as run_tcav

__all__ = [
    "LoceConfig",
    "Net2VecConfig",
    "bulk",
    "fit_cavs",
    "fit_net2vec",
    "loce",
    "loce_analysis",
    "loce_clustering",
    "loce_objectives",
    "loce_store",
    "net2vec",
    "run_tcav",
    "stats",
    "tcav",
]
