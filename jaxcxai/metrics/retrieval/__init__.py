"""Hamming-ranking retrieval metrics: mAP@K (two semantics), P@K, PR curves.

Ranking and tie rule. Every metric ranks the database by Hamming distance and
breaks ties by database index (the order a stable sort gives). b-bit
distances take only b + 1 values, so the ranking is a counting sort: NumPy's
stable argsort of uint8/uint16 keys is an LSD radix sort (one counting pass
per key byte), O(N) per query, with no comparisons. Metrics that depend only
on how many items lie within a radius (PR curve, precision within radius)
come from per-query histograms of all and of relevant items per distance.

Relevance: item j is relevant to query q when their multi-hot labels share at
least one class (L_q . L_j > 0).

Two mAP@K semantics:
  * "reference" (DUCH/CHNR `calc_map_k`): T = min(K, R_q), where R_q is the
    number of relevant items; AP = (1/T) sum_{m<=T} m / p_m, with p_m the rank
    of the m-th relevant item in the full ranked list (not truncated at K).
    A query with R_q = 0 has AP = 0 and still counts in the mean.
  * "standard" (truncated AP@K): AP = (1/Z) sum_{i<=K, rel_i} P@i, with
    Z = min(K, R_q) (`normalize="min_k_r"`) or Z = relevant items in the top
    K (`normalize="hits"`, 0 when there are none). AP is undefined for a
    query with R_q = 0: it is NaN per query and excluded from the mean.
K = None means K = N (the whole database).

Per-query values are computed in the same floating-point order as the
per-query loop in `reference` (pairwise sums per query, sequential
sums over queries), so the reference semantics agree with it bit for bit.

Modules:
  hamming     code packing, Hamming distances (JAX and packed), relevance
  ranking     per-query ranking statistics of one query chunk
  evaluation  chunked evaluation: `retrieval_metrics`, `cross_modal_metrics`
  map_at_k    per-query AP@K and mAP@K
  precision   P@K, PR curve, precision within radius
  reference   literal per-query NumPy loops of the reference code (test oracle)
"""

from jaxcxai.metrics.retrieval.evaluation import DIRECTIONS as DIRECTIONS
from jaxcxai.metrics.retrieval.evaluation import (
    cross_modal_metrics as cross_modal_metrics,
)
from jaxcxai.metrics.retrieval.evaluation import retrieval_metrics as retrieval_metrics
from jaxcxai.metrics.retrieval.hamming import hamming_distance as hamming_distance
from jaxcxai.metrics.retrieval.hamming import pack_codes as pack_codes
from jaxcxai.metrics.retrieval.hamming import relevance as relevance
from jaxcxai.metrics.retrieval.map_at_k import average_precision as average_precision
from jaxcxai.metrics.retrieval.map_at_k import (
    mean_average_precision as mean_average_precision,
)
from jaxcxai.metrics.retrieval.precision import pr_curve as pr_curve
from jaxcxai.metrics.retrieval.precision import precision_at_k as precision_at_k
from jaxcxai.metrics.retrieval.precision import (
    precision_within_radius as precision_within_radius,
)
from jaxcxai.metrics.retrieval.reference import REFERENCE_PK_KS as REFERENCE_PK_KS
from jaxcxai.metrics.retrieval.reference import REFERENCE_RADII as REFERENCE_RADII

__all__ = [
    "DIRECTIONS",
    "REFERENCE_PK_KS",
    "REFERENCE_RADII",
    "average_precision",
    "cross_modal_metrics",
    "hamming_distance",
    "mean_average_precision",
    "pack_codes",
    "pr_curve",
    "precision_at_k",
    "precision_within_radius",
    "relevance",
    "retrieval_metrics",
]
