"""Scene classes of SynthAerial: background layouts and object compositions.

A scene is a layout function (which texture families go where, road paint, preferred
object orientations) plus, per concept, an inclusive range of instance counts and the
probability of its first sub-concept. Scenes are grouped into super-categories for
hierarchy studies. The layout functions and `Layout` live in `layouts` (the public
ones are re-exported here).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from jaxcxai.data import shapes as sh
from jaxcxai.data.layouts import Layout as Layout
from jaxcxai.data.layouts import add_road as add_road
from jaxcxai.data.layouts import airport as airport
from jaxcxai.data.layouts import beach as beach
from jaxcxai.data.layouts import harbor as harbor
from jaxcxai.data.layouts import parking_lot as parking_lot
from jaxcxai.data.layouts import river as river
from jaxcxai.data.layouts import road_scene
from jaxcxai.data.textures import FIELD, FOREST, GRASS, SAND, SNOW, URBAN


@dataclasses.dataclass(frozen=True)
class SceneSpec:
    name: str
    super_category: str
    layout: Callable[[np.random.Generator, int], Layout]
    counts: dict[int, tuple[int, int]]  # concept id -> inclusive (min, max); the
    # first concept is the scene's defining one (it leads the captions)
    sub0_p: dict[int, float] = dataclasses.field(default_factory=dict)  # P(sub 0)


def ids(**by_name):
    """Maps concept names to concept ids: ids(car=(0, 3)) -> {CAR: (0, 3)}."""
    return {sh.CONCEPTS.index(k) + 1: v for k, v in by_name.items()}


SCENE_SPECS = (
    SceneSpec(
        "airport", "transport", airport, ids(airplane=(1, 4), car=(0, 3), truck=(0, 3))
    ),
    SceneSpec(
        "parking_lot",
        "transport",
        parking_lot,
        ids(car=(6, 24), truck=(0, 3), tree=(0, 4)),
    ),
    SceneSpec(
        "freeway",
        "transport",
        road_scene(GRASS, max_roads=2),
        ids(car=(2, 10), truck=(0, 4), tree=(0, 6)),
    ),
    SceneSpec("harbor", "water", harbor, ids(boat=(3, 12), car=(0, 3), truck=(0, 2))),
    SceneSpec("river", "water", river, ids(boat=(1, 4), tree=(2, 10), car=(0, 3))),
    SceneSpec("beach", "water", beach, ids(tree=(0, 4), building=(0, 2))),
    SceneSpec(
        "dense_residential",
        "residential",
        road_scene(URBAN, max_roads=3, grid=True),
        ids(building=(8, 16), car=(2, 8), tree=(0, 5)),
    ),
    SceneSpec(
        "sparse_residential",
        "residential",
        road_scene(GRASS, max_roads=2, grid=True),
        ids(building=(2, 6), tree=(4, 12), car=(0, 3)),
    ),
    SceneSpec(
        "forest",
        "nature",
        road_scene(FOREST, p_road=0.3),
        ids(tree=(12, 30), car=(0, 2)),
        ids(tree=0.5),
    ),
    SceneSpec(
        "farmland",
        "agriculture",
        road_scene(FIELD, p_road=0.5, grid=True),
        ids(building=(0, 2), tree=(0, 3)),
    ),
    SceneSpec(
        "tennis_court",
        "sport",
        road_scene(GRASS, grid=True),
        ids(tennis_court=(1, 3), tree=(1, 6), building=(0, 2), car=(0, 2)),
    ),
    SceneSpec(
        "storage_tanks",
        "industrial",
        road_scene(SAND, grid=True),
        ids(storage_tank=(2, 10), truck=(0, 3), building=(0, 2)),
    ),
    SceneSpec(
        "snowfield",
        "nature",
        road_scene(SNOW, p_road=0.4),
        ids(tree=(0, 8), building=(0, 2), car=(0, 2)),
        ids(tree=0.2),
    ),
)
SCENES = tuple(spec.name for spec in SCENE_SPECS)
SUPER_CATEGORIES = (
    "transport",
    "water",
    "residential",
    "nature",
    "agriculture",
    "sport",
    "industrial",
)
SCENE_SUPER = np.array(
    [SUPER_CATEGORIES.index(spec.super_category) for spec in SCENE_SPECS], np.int32
)
# Placement order: big structures first so small objects fill the gaps; boats last on
# their own random stream so that changing the bias parameter moves only boats.
PLACEMENT_ORDER = (
    sh.AIRPLANE,
    sh.TENNIS_COURT,
    sh.STORAGE_TANK,
    sh.BUILDING,
    sh.TRUCK,
    sh.CAR,
    sh.TREE,
    sh.BOAT,
)
