"""Supervised concept probes: Net2Vec segmentation probes and TCAV, in bulk.

net2vec   Net2Vec probes: objectives, NetDissect thresholds, embeddings
          (normal, support, scale), ensemble aggregation (Fong & Vedaldi 2018)
bulk      K concepts x L layers x R runs of Net2Vec in one jitted, vmapped,
          sharded, streamed fit
state     bulk fit hyper-parameters (`Net2VecConfig`), initial probes,
          minibatch orders
step      the jitted per-chunk optimizer scan of the bulk fit
sources   chunk sources over arrays and feature caches
kpis      segmentation KPIs of bulk-fitted probes, streamed over chunks
cavs      CAVs (logistic, hinge, SGD, mean-difference): fit in bulk, accuracy
solver    the span L-BFGS solver of the CAV fits
sgd       TCAV's default classifier: scikit-learn's SGDClassifier, vmappable
shuffles  scikit-learn's SGD seeds and epoch shuffles, reproduced
tcav      directional derivatives, TCAV scores, `run_tcav` (Kim et al. 2018)
stats     TCAV significance: t-tests and Bonferroni correction
pipeline  probes of a trained backbone: concept masks, COCO/VOC data, layer
          heads, TCAV example sets and per-layer scoring
report    report pieces: aggregated probes, best layers, CAV accuracy,
          figures, markdown tables
"""

from jaxcxai.concepts.probes import bulk as bulk
from jaxcxai.concepts.probes import cavs as cavs
from jaxcxai.concepts.probes import kpis as kpis
from jaxcxai.concepts.probes import net2vec as net2vec
from jaxcxai.concepts.probes import pipeline as pipeline
from jaxcxai.concepts.probes import report as report
from jaxcxai.concepts.probes import sgd as sgd
from jaxcxai.concepts.probes import shuffles as shuffles
from jaxcxai.concepts.probes import sources as sources
from jaxcxai.concepts.probes import state as state
from jaxcxai.concepts.probes import stats as stats
from jaxcxai.concepts.probes import tcav as tcav
from jaxcxai.concepts.probes.bulk import fit_net2vec as fit_net2vec
from jaxcxai.concepts.probes.bulk import fit_net2vec_layers as fit_net2vec_layers
from jaxcxai.concepts.probes.cavs import Cavs as Cavs
from jaxcxai.concepts.probes.cavs import cav_accuracy as cav_accuracy
from jaxcxai.concepts.probes.cavs import fit_cavs as fit_cavs
from jaxcxai.concepts.probes.cavs import flatten_acts as flatten_acts
from jaxcxai.concepts.probes.kpis import evaluate_net2vec as evaluate_net2vec
from jaxcxai.concepts.probes.net2vec import Probe as Probe
from jaxcxai.concepts.probes.sources import array_source as array_source
from jaxcxai.concepts.probes.sources import cache_source as cache_source
from jaxcxai.concepts.probes.state import Net2VecConfig as Net2VecConfig
from jaxcxai.concepts.probes.tcav import (
    directional_derivatives as directional_derivatives,
)
from jaxcxai.concepts.probes.tcav import run_tcav as run_tcav
from jaxcxai.concepts.probes.tcav import tcav_scores as tcav_scores

__all__ = [
    "Cavs",
    "Net2VecConfig",
    "Probe",
    "array_source",
    "bulk",
    "cache_source",
    "cav_accuracy",
    "cavs",
    "directional_derivatives",
    "evaluate_net2vec",
    "fit_cavs",
    "fit_net2vec",
    "fit_net2vec_layers",
    "flatten_acts",
    "kpis",
    "net2vec",
    "pipeline",
    "report",
    "sgd",
    "shuffles",
    "run_tcav",
    "sources",
    "state",
    "stats",
    "tcav",
    "tcav_scores",
]
