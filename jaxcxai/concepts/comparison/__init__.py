"""Layer x layer concept similarity within and across networks (arXiv 2305.07663).

outputs     probes' responses on shared images in a common form: Net2Vec masks
            on a G x G grid, CAV projections (thin adapters over `probes`)
similarity  set IoU, projection Pearson, binary agreement as swappable
            `Measure`s; `layer_similarity` over all (La, Lb) layer pairs
depth       relative depth i / (L - 1), each layer's best match and its
            distance from the relative-depth diagonal
cka         linear CKA of raw activations (Kornblith et al. 2019), the
            concept-free baseline, as an (La, Lb) matrix
settings    `CompareStudy`: every setting of a comparison study, one frozen
            dataclass per section
study       the settings' checks, networks (trained + packaged ImageNet),
            layer choice, data and files of a comparison study
run         a study end to end: probes per network, outputs on shared
            scenes, every pair's similarities, CKA and best matches
report      best matches both ways, the planted checks, markdown
figures     a heatmap figure per pair, best matches vs relative depth,
            probe IoU along depth

The similarity measures are a reconstruction (spec concepts.md §6.2), not
the paper's verified definitions.
"""

from jaxcxai.concepts.comparison import cka as cka
from jaxcxai.concepts.comparison import depth as depth
from jaxcxai.concepts.comparison import figures as figures
from jaxcxai.concepts.comparison import outputs as outputs
from jaxcxai.concepts.comparison import report as report
from jaxcxai.concepts.comparison import run as run
from jaxcxai.concepts.comparison import settings as settings
from jaxcxai.concepts.comparison import similarity as similarity
from jaxcxai.concepts.comparison import study as study
from jaxcxai.concepts.comparison.cka import cka_matrix as cka_matrix
from jaxcxai.concepts.comparison.cka import linear_cka as linear_cka
from jaxcxai.concepts.comparison.depth import DepthMatch as DepthMatch
from jaxcxai.concepts.comparison.depth import best_match as best_match
from jaxcxai.concepts.comparison.depth import relative_depth as relative_depth
from jaxcxai.concepts.comparison.outputs import (
    cav_layer_projections as cav_layer_projections,
)
from jaxcxai.concepts.comparison.outputs import cav_projections as cav_projections
from jaxcxai.concepts.comparison.outputs import (
    net2vec_layer_masks as net2vec_layer_masks,
)
from jaxcxai.concepts.comparison.outputs import net2vec_masks as net2vec_masks
from jaxcxai.concepts.comparison.settings import CompareStudy as CompareStudy
from jaxcxai.concepts.comparison.similarity import MEASURES as MEASURES
from jaxcxai.concepts.comparison.similarity import LayerSimilarity as LayerSimilarity
from jaxcxai.concepts.comparison.similarity import Measure as Measure
from jaxcxai.concepts.comparison.similarity import binary_agreement as binary_agreement
from jaxcxai.concepts.comparison.similarity import layer_similarity as layer_similarity
from jaxcxai.concepts.comparison.similarity import (
    projection_pearson as projection_pearson,
)
from jaxcxai.concepts.comparison.similarity import set_iou as set_iou

__all__ = [
    "DepthMatch",
    "LayerSimilarity",
    "MEASURES",
    "Measure",
    "best_match",
    "binary_agreement",
    "cav_layer_projections",
    "cav_projections",
    "cka",
    "CompareStudy",
    "figures",
    "cka_matrix",
    "depth",
    "layer_similarity",
    "linear_cka",
    "net2vec_layer_masks",
    "net2vec_masks",
    "outputs",
    "projection_pearson",
    "relative_depth",
    "report",
    "run",
    "set_iou",
    "settings",
    "similarity",
    "study",
]
