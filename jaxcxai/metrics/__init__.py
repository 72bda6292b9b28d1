"""Metrics as pure functions (no plots, no I/O).

retrieval     Hamming-ranking retrieval: mAP@K, P@K, PR curves, radius
              precision, chunked cross-modal evaluation, reference loops
segmentation  concept segmentation: set/sample IoU, IoU vs threshold,
              calibration

Explanation metrics (rank stability, SSIM, faithfulness, deletion and
insertion, randomisation and localisation checks) join as `explanations`
with the attribution layer.
"""

from jaxcxai.metrics import retrieval as retrieval
from jaxcxai.metrics import segmentation as segmentation

__all__ = ["retrieval", "segmentation"]
