"""Concept-based explanations: one subpackage per method family.

probes      supervised probes in bulk: Net2Vec segmentation probes, TCAV
            (CAVs, directional derivatives, significance)
loce        local concept embeddings (LoCE / GCPV) per sample and their
            distribution analyses
discovery   unsupervised concept discovery: NMF/ICE, PCA, ICA, k-means,
            sparse autoencoders, concept importance, dictionary matching,
            reference crops
comparison  layer x layer concept similarity within and across networks,
            relative depth, linear CKA (arXiv 2305.07663)
stability   retrieval stability of 1D/2D/3D CAVs and ICE concepts,
            attribution stability with gradient smoothing (arXiv 2304.14864)
background  background randomisation (full, Voronoi, synthetic pools,
            filtering) and bias evaluation of concept embeddings
            (arXiv 2504.08602)
"""

from jaxcxai.concepts import background as background
from jaxcxai.concepts import comparison as comparison
from jaxcxai.concepts import discovery as discovery
from jaxcxai.concepts import loce as loce
from jaxcxai.concepts import probes as probes
from jaxcxai.concepts import stability as stability

__all__ = ["background", "comparison", "discovery", "loce", "probes", "stability"]
