"""Background bias of concept embeddings (Schwalbe et al., arXiv 2504.08602).

paste      foreground on random backgrounds: full, Voronoi and vanilla views,
           resize + centre crop, `make_views` (one jitted call over a batch)
voronoi    Voronoi mosaics: seed points, dummy corners, per-pixel cells
polygon_fill  the cells as PIL fills their polygons (the `edges="pil"` quirk)
pools      background pools: SynthAerial scenes without objects or with
           them (and their truth), procedural (noise, texture families)
places     Places205-style folders of scene photos
filtering  reject backgrounds a classifier sees the concept in (presence
           head or ImageNet top-5), scored against the truth
bias       test-time view IoU (80 x 80 grid, 1e-4 smoothing), group mean/std,
           embedding-shift cosine with the paper's zero-vector rule
multiview  multi-view LoCEs (view losses summed), multi-view Net2Vec, GloCE
study      settings and SynthAerial objects of the background-bias study
vectors    one concept's multi-view fits, test IoUs per group, IoU rows and
           embedding shift
run        the study: pools, per-concept vectors, results, report, figures
report     boat-on-road check and markdown; figures: IoU heatmap, sample views
"""

from jaxcxai.concepts.background import bias as bias
from jaxcxai.concepts.background import filtering as filtering
from jaxcxai.concepts.background import multiview as multiview
from jaxcxai.concepts.background import paste as paste
from jaxcxai.concepts.background import pools as pools
from jaxcxai.concepts.background import voronoi as voronoi
from jaxcxai.concepts.background.bias import cosine_matrix as cosine_matrix
from jaxcxai.concepts.background.bias import embedding_cosine as embedding_cosine
from jaxcxai.concepts.background.bias import group_stats as group_stats
from jaxcxai.concepts.background.bias import iou as iou
from jaxcxai.concepts.background.bias import project as project
from jaxcxai.concepts.background.bias import view_ious as view_ious
from jaxcxai.concepts.background.filtering import (
    IMAGENET_CONCEPTS as IMAGENET_CONCEPTS,
)
from jaxcxai.concepts.background.filtering import (
    classify_backgrounds as classify_backgrounds,
)
from jaxcxai.concepts.background.filtering import (
    filter_backgrounds as filter_backgrounds,
)
from jaxcxai.concepts.background.filtering import (
    forbidden_classes as forbidden_classes,
)
from jaxcxai.concepts.background.filtering import keep_per_group as keep_per_group
from jaxcxai.concepts.background.filtering import reject_presence as reject_presence
from jaxcxai.concepts.background.filtering import reject_top_k as reject_top_k
from jaxcxai.concepts.background.filtering import score_filter as score_filter
from jaxcxai.concepts.background.multiview import fit_gloces as fit_gloces
from jaxcxai.concepts.background.multiview import fit_loces as fit_loces
from jaxcxai.concepts.background.multiview import fit_net2vec as fit_net2vec
from jaxcxai.concepts.background.multiview import grid_targets as grid_targets
from jaxcxai.concepts.background.multiview import method_config as method_config
from jaxcxai.concepts.background.paste import KINDS as KINDS
from jaxcxai.concepts.background.paste import fit_background as fit_background
from jaxcxai.concepts.background.paste import full_plan as full_plan
from jaxcxai.concepts.background.paste import make_views as make_views
from jaxcxai.concepts.background.paste import paste as paste_foreground
from jaxcxai.concepts.background.paste import view_keys as view_keys
from jaxcxai.concepts.background.places import (
    load_places_folder as load_places_folder,
)
from jaxcxai.concepts.background.pools import SCENE_GROUPS as SCENE_GROUPS
from jaxcxai.concepts.background.pools import BackgroundPool as BackgroundPool
from jaxcxai.concepts.background.pools import synthaerial_pool as synthaerial_pool
from jaxcxai.concepts.background.pools import (
    synthaerial_scene_pool as synthaerial_scene_pool,
)
from jaxcxai.concepts.background.pools import synthetic_pool as synthetic_pool
from jaxcxai.concepts.background.voronoi import voronoi_cells as voronoi_cells
from jaxcxai.concepts.background.voronoi import voronoi_plan as voronoi_plan

__all__ = [
    "IMAGENET_CONCEPTS",
    "classify_backgrounds",
    "keep_per_group",
    "reject_presence",
    "score_filter",
    "BackgroundPool",
    "KINDS",
    "SCENE_GROUPS",
    "bias",
    "cosine_matrix",
    "embedding_cosine",
    "filter_backgrounds",
    "filtering",
    "fit_background",
    "fit_gloces",
    "fit_loces",
    "fit_net2vec",
    "forbidden_classes",
    "full_plan",
    "grid_targets",
    "group_stats",
    "iou",
    "load_places_folder",
    "make_views",
    "method_config",
    "multiview",
    "paste",
    "paste_foreground",
    "pools",
    "project",
    "reject_top_k",
    "synthaerial_pool",
    "synthaerial_scene_pool",
    "synthetic_pool",
    "view_ious",
    "view_keys",
    "voronoi",
    "voronoi_cells",
    "voronoi_plan",
]
