"""Metrics as pure functions: retrieval and concept segmentation.

Retrieval (public API re-exported by `retrieval`): `hamming` (code packing,
Hamming distances, relevance), `ranking` (per-query ranking statistics),
`retrieval_eval` (chunked evaluation of one or four directions), `map_at_k`
(AP@K, mAP@K), `precision` (P@K, PR curve, precision within radius) and
`retrieval_reference` (per-query reference loops, the test oracle).
Segmentation (`segmentation`): set/sample IoU, IoU-vs-threshold, calibration.
"""

from jaxcxai.metrics import segmentation as segmentation
from jaxcxai.metrics.retrieval import DIRECTIONS as DIRECTIONS
from jaxcxai.metrics.retrieval import REFERENCE_PK_KS as REFERENCE_PK_KS
from jaxcxai.metrics.retrieval import REFERENCE_RADII as REFERENCE_RADII
from jaxcxai.metrics.retrieval import average_precision as average_precision
from jaxcxai.metrics.retrieval import cross_modal_metrics as cross_modal_metrics
from jaxcxai.metrics.retrieval import hamming_distance as hamming_distance
from jaxcxai.metrics.retrieval import (
    mean_average_precision as mean_average_precision,
)
from jaxcxai.metrics.retrieval import pack_codes as pack_codes
from jaxcxai.metrics.retrieval import pr_curve as pr_curve
from jaxcxai.metrics.retrieval import precision_at_k as precision_at_k
from jaxcxai.metrics.retrieval import (
    precision_within_radius as precision_within_radius,
)
from jaxcxai.metrics.retrieval import relevance as relevance
from jaxcxai.metrics.retrieval import retrieval_metrics as retrieval_metrics

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
    "segmentation",
]
