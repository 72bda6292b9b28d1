"""Hamming-ranking retrieval metrics: mAP@K (two AP definitions), P@K, PR curves.

Relevance: item j is relevant to query q when their multi-hot labels share at
least one class (L_q . L_j > 0). R_q is the number of relevant items.

Two AP@K definitions (both reported, as "map@K" and "map_trunc@K"):
  * reference (DUCH/CHNR `calc_map_k`): T = min(K, R_q); AP = (1/T)
    sum_{m<=T} m / p_m, with p_m the rank of the m-th relevant item in the
    full ranked list (not truncated at K); 0 when R_q = 0.
  * standard (truncated AP@K): AP = (1/Z) sum_{i<=K, rel_i} P@i, with
    Z = min(K, R_q) (`normalize="min_k_r"`) or Z = relevant items in the top
    K (`normalize="hits"`, 0 when there are none); undefined (NaN per
    query) when R_q = 0.
P@K = (relevant items in the top k) / k, k = min(K, N). K = None means N.

Ties. b-bit distances take only b + 1 values, so most items are tied, and
every rank metric depends on the order inside a tie group. `ties=`:
  * "expected" (default of `retrieval_metrics`, `cross_modal_metrics`,
    `mean_average_precision`, `precision_at_k`, `average_precision`,
    `query_precision`): the mean of the metric over all orders of every tie
    group (McSherry & Najork 2008), for both AP definitions and P@K, from
    per-query histograms of items and relevant items per distance, in
    closed form per group (`ties`). Independent of the database order.
  * "index": ties ranked by database index (a stable counting sort; NumPy's
    stable argsort of uint8/uint16 keys is a radix sort, O(N) per query).
  * "reference": the reference code's protocol as `reference` ports it:
    index order (the original `torch.sort` is unstable, its tie order
    arbitrary) and queries with no relevant item counted as 0. Callers that
    reproduce the reference numbers pass it explicitly.
The PR curve and precision within radius depend only on the histograms and
are the same under every tie rule.

Queries with no relevant item, `no_relevant=`: "zero" (they add 0 and count
in the mean, as the reference code and DeepHash-pytorch do), "exclude"
(means over the other queries), or None, the default: "zero" for map@K, P@K
and the PR curve, "exclude" for map_trunc@K.

Under "index" and "reference", per-query values are computed in the same
floating-point order as the per-query loop in `reference` (pairwise sums per
query, sequential sums over queries), so they agree with it bit for bit.

The modules, one line each:
  hamming     code packing, Hamming distances (JAX and packed), relevance
  ranking     per-query ranking statistics of one query chunk (index order)
  ties        tie-aware expected AP@K and P@K from per-distance histograms
  evaluation  chunked evaluation: `retrieval_metrics`, `cross_modal_metrics`
  map_at_k    per-query AP@K and mAP@K
  precision   P@K (mean and per query), PR curve, precision within radius
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
from jaxcxai.metrics.retrieval.precision import query_precision as query_precision
from jaxcxai.metrics.retrieval.reference import REFERENCE_PK_KS as REFERENCE_PK_KS
from jaxcxai.metrics.retrieval.reference import REFERENCE_RADII as REFERENCE_RADII
from jaxcxai.metrics.retrieval.ties import NO_RELEVANT as NO_RELEVANT
from jaxcxai.metrics.retrieval.ties import TIES as TIES

__all__ = [
    "DIRECTIONS",
    "NO_RELEVANT",
    "REFERENCE_PK_KS",
    "REFERENCE_RADII",
    "TIES",
    "average_precision",
    "cross_modal_metrics",
    "hamming_distance",
    "mean_average_precision",
    "pack_codes",
    "pr_curve",
    "precision_at_k",
    "precision_within_radius",
    "query_precision",
    "relevance",
    "retrieval_metrics",
]
