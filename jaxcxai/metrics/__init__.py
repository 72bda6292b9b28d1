"""Metrics as pure functions (no plots, no I/O).

retrieval     Hamming-ranking retrieval: mAP@K, P@K, PR curves, radius
              precision, chunked cross-modal evaluation, reference loops
segmentation  concept segmentation: set/sample IoU, IoU vs threshold,
              calibration
explanations  rank stability (Kendall, Spearman, top-k), SSIM, faithfulness
              (removal shift, deletion and insertion), randomisation and
              localisation checks of attribution maps
"""

from jaxcxai.metrics import explanations as explanations
from jaxcxai.metrics import retrieval as retrieval
from jaxcxai.metrics import segmentation as segmentation

__all__ = ["explanations", "retrieval", "segmentation"]
