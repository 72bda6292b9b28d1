"""Semantic hierarchies in embeddings: explain, verify, align (Schwalbe et
al. 2026, "Explaining, Verifying, and Aligning Semantic Hierarchies in VLM
Embeddings", arXiv:2603.26798; the pipeline is a reconstruction, xai.md 3).

Trees are parent arrays (`parent (M,) int32`, -1 at the root); a class set
of n classes maps to node indices `leaves (n,)`.

ontology     building ontologies: `restrict`, trees of root paths, JSON
             ontologies, the SynthAerial scene/object taxonomy
ontology_tree  the `Ontology` type (names, ids, parent), depths, ancestors,
             leaves, concept bank (re-exported by ontology)
wordnet      WordNet hypernym paths and trees, the WordNet tree over the
             1000 ImageNet classes
wordnet_db   WordNet 3.0 noun database reader (no NLTK): `Synset`,
             data.noun and index.noun (re-exported by wordnet)
trees        parent-array utilities: walk, depths, ancestors, LCA depths,
             path distances, scipy linkage -> parent array
centroids    normalised class centroids of samples, prompt-template means
tree         agglomerative binary tree of class centroids (`Tree`), node
             embeddings and leaf sets
naming       naming internal nodes by dictionary matching to a concept bank,
             match margins, ancestor constraint, names -> ontology nodes
consistency  cophenetic correlation, edge consistency, leaf cover (and the
             triplet agreement, re-exported)
triplets     tree-level triplet agreement: exact LCA counting, sampled
             estimate, brute-force reference
uaes         tree-traversal inference with uncertainty-aware early stopping,
             metrics, threshold calibration, coverage-accuracy curve
synthetic    random hierarchies and hierarchical embeddings with image / text
             noise profiles (exact ground truth)
fuzzy        target distances from LCA depths, UMAP's fuzzy neighbourhood
             graph (umap-learn), its kernel and cross-entropy
align        ontology-guided alignment: linear / residual-MLP transform,
             loss, fit, lambda sweep (accuracy-plausibility trade-off)
heads        CLIP-style two-tower projection heads over frozen features,
             symmetric InfoNCE with a learned temperature, zero-shot
             classification with prompt ensembles
heads_training  training the heads: AdamW on the train-step contract,
             data-parallel over a mesh, scanned chunks of steps
sources      `View` (one source x modality), concept banks, the ImageNet
             views (MiniLM class names; classifier weight vectors) vs WordNet
aerial       the SynthAerial source: MobileNetV2 / MiniLM (or synthetic)
             features, the trained two-tower model's image and text views
clip_source  an imported OpenCLIP checkpoint's views (optional)
analysis     per view: extract, verify (structure, zero-shot, UAES, worst-
             placed classes) and the alignment sweep
study        settings (`HierarchyStudy`), checks and files of a study
run          the study end to end over every source and view
report       tables, the text-vs-image finding, reconstructions; figures:
             named dendrograms, coverage-accuracy curves, trade-off plot
"""

from jaxcxai.hierarchy import aerial as aerial
from jaxcxai.hierarchy import align as align
from jaxcxai.hierarchy import analysis as analysis
from jaxcxai.hierarchy import centroids as centroids
from jaxcxai.hierarchy import consistency as consistency
from jaxcxai.hierarchy import fuzzy as fuzzy
from jaxcxai.hierarchy import heads as heads
from jaxcxai.hierarchy import heads_training as heads_training
from jaxcxai.hierarchy import naming as naming
from jaxcxai.hierarchy import ontology as ontology
from jaxcxai.hierarchy import sources as sources
from jaxcxai.hierarchy import study as study
from jaxcxai.hierarchy import synthetic as synthetic
from jaxcxai.hierarchy import tree as tree
from jaxcxai.hierarchy import trees as trees
from jaxcxai.hierarchy import uaes as uaes
from jaxcxai.hierarchy import wordnet as wordnet
from jaxcxai.hierarchy.align import fit_transform as fit_transform
from jaxcxai.hierarchy.align import lambda_sweep as lambda_sweep
from jaxcxai.hierarchy.centroids import class_centroids as class_centroids
from jaxcxai.hierarchy.centroids import text_centroids as text_centroids
from jaxcxai.hierarchy.consistency import (
    cophenetic_correlation as cophenetic_correlation,
)
from jaxcxai.hierarchy.consistency import edge_consistency as edge_consistency
from jaxcxai.hierarchy.consistency import leaf_cover as leaf_cover
from jaxcxai.hierarchy.consistency import triplet_agreement as triplet_agreement
from jaxcxai.hierarchy.fuzzy import fuzzy_graph as fuzzy_graph
from jaxcxai.hierarchy.fuzzy import target_distances as target_distances
from jaxcxai.hierarchy.heads import TwoTower as TwoTower
from jaxcxai.hierarchy.heads import info_nce as info_nce
from jaxcxai.hierarchy.heads import zero_shot as zero_shot
from jaxcxai.hierarchy.naming import name_nodes as name_nodes
from jaxcxai.hierarchy.ontology import Ontology as Ontology
from jaxcxai.hierarchy.ontology import restrict as restrict
from jaxcxai.hierarchy.ontology import synthaerial_taxonomy as synthaerial_taxonomy
from jaxcxai.hierarchy.sources import View as View
from jaxcxai.hierarchy.sources import imagenet_views as imagenet_views
from jaxcxai.hierarchy.study import HierarchyStudy as HierarchyStudy
from jaxcxai.hierarchy.study import check_study as check_study
from jaxcxai.hierarchy.synthetic import (
    hierarchical_embeddings as hierarchical_embeddings,
)
from jaxcxai.hierarchy.tree import Tree as Tree
from jaxcxai.hierarchy.tree import build as build_tree
from jaxcxai.hierarchy.trees import lca_depth as lca_depth
from jaxcxai.hierarchy.uaes import Inference as Inference
from jaxcxai.hierarchy.uaes import coverage_curve as coverage_curve
from jaxcxai.hierarchy.uaes import infer as infer
from jaxcxai.hierarchy.wordnet import read_nouns as read_nouns
from jaxcxai.hierarchy.wordnet import wordnet_imagenet as wordnet_imagenet

__all__ = [
    "HierarchyStudy",
    "Inference",
    "Ontology",
    "Tree",
    "TwoTower",
    "View",
    "aerial",
    "align",
    "analysis",
    "build_tree",
    "centroids",
    "check_study",
    "class_centroids",
    "consistency",
    "cophenetic_correlation",
    "coverage_curve",
    "edge_consistency",
    "fit_transform",
    "fuzzy",
    "fuzzy_graph",
    "heads",
    "heads_training",
    "hierarchical_embeddings",
    "imagenet_views",
    "infer",
    "info_nce",
    "lambda_sweep",
    "lca_depth",
    "leaf_cover",
    "name_nodes",
    "naming",
    "ontology",
    "read_nouns",
    "restrict",
    "sources",
    "study",
    "synthaerial_taxonomy",
    "synthetic",
    "target_distances",
    "text_centroids",
    "tree",
    "trees",
    "triplet_agreement",
    "uaes",
    "wordnet",
    "wordnet_imagenet",
    "zero_shot",
]
