"""Local concept embeddings (LoCE / GCPV) and their distribution analyses.

fit         per-sample LoCE fits, vmapped, micro-batched and sharded; GLoCE
objectives  LoCE / GCPV objectives as swappable pure losses, the AdamW scan
projection  LoCE projections and the per-sample loss
iou         IoUs of LoCE projections on the target grid and at the original
            resolution (the reference's stored "loss")
reference   the reference code's batched fit and the shared-vector baseline
results     LoCE results as arrays (input chunks, results, atomic files)
store       resumable fitting into an on-disk store
pipeline    per-instance LoCEs of SynthAerial scenes: instance table,
            targets, chunked fitting into a store
distances   pairwise LoCE distances, separation indices, overlap
analysis    centroids, projection segmentation, kNN / nearest-centroid,
            retrieval, outlier scores (re-exports `distances`)
clustering  hierarchical clustering and purity, GMMs selected by BIC,
            2-D embeddings
summary     summaries over plain arrays: separation with the car/truck rank,
            sub-concept ARIs, retrieval, own-projection IoU
plots       figures of the analyses
study       a LoCE study of SynthAerial object instances: settings, data,
            fitting
evaluation  analysing a fitted study and reporting it (`analyze`)
figures     the study's figures (centroid segmentation, every report PNG)
report      the study's markdown report
"""

from jaxcxai.concepts.loce import analysis as analysis
from jaxcxai.concepts.loce import clustering as clustering
from jaxcxai.concepts.loce import distances as distances
from jaxcxai.concepts.loce import fit as fit
from jaxcxai.concepts.loce import objectives as objectives
from jaxcxai.concepts.loce import pipeline as pipeline
from jaxcxai.concepts.loce import plots as plots
from jaxcxai.concepts.loce import projection as projection
from jaxcxai.concepts.loce import reference as reference
from jaxcxai.concepts.loce import store as store
from jaxcxai.concepts.loce import summary as summary
from jaxcxai.concepts.loce.fit import fit_chunks as fit_chunks
from jaxcxai.concepts.loce.fit import fit_concepts as fit_concepts
from jaxcxai.concepts.loce.fit import fit_sharded as fit_sharded
from jaxcxai.concepts.loce.objectives import BG_CONFIG as BG_CONFIG
from jaxcxai.concepts.loce.objectives import GCPV_CONFIG as GCPV_CONFIG
from jaxcxai.concepts.loce.objectives import LoceConfig as LoceConfig
from jaxcxai.concepts.loce.store import LoceResults as LoceResults
from jaxcxai.concepts.loce.store import load_results as load_results

__all__ = [
    "BG_CONFIG",
    "GCPV_CONFIG",
    "LoceConfig",
    "LoceResults",
    "analysis",
    "clustering",
    "distances",
    "fit",
    "fit_chunks",
    "fit_concepts",
    "fit_sharded",
    "load_results",
    "objectives",
    "pipeline",
    "plots",
    "projection",
    "reference",
    "store",
    "summary",
]
