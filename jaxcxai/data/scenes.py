"""Scene classes of SynthAerial: background layouts and object compositions.

A scene is a layout function (which texture families go where, road paint, preferred
object orientations) plus, per concept, an inclusive range of instance counts and the
probability of its first sub-concept. Scenes are grouped into super-categories for
hierarchy studies.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np

from jaxcxai.data import shapes as sh
from jaxcxai.data.textures import (
    FIELD,
    FOREST,
    GRASS,
    ROAD,
    SAND,
    SNOW,
    URBAN,
    WATER,
    smooth_noise,
)


@dataclasses.dataclass
class Layout:
    """Background geometry of one image.

    Attributes:
        bg_map: (H, W) uint8 texture family per pixel (index into BACKGROUNDS).
        primary: the scene's dominant texture family.
        angle_map: (H, W) float32 preferred vehicle/boat heading, NaN where free.
        marks: (H, W) bool road paint pixels (painted white, stay part of the road).
        grid_angle: orientation of structures (buildings, courts), or None for random.
        anchors: (A, 2) preferred vehicle centres (y, x), e.g. parking slots, or None.
    """

    bg_map: np.ndarray
    primary: int
    angle_map: np.ndarray
    marks: np.ndarray
    grid_angle: float | None = None
    anchors: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class SceneSpec:
    name: str
    super_category: str
    layout: Callable[[np.random.Generator, int], Layout]
    counts: dict[int, tuple[int, int]]  # concept id -> inclusive (min, max); the
    # first concept is the scene's defining one (it leads the captions)
    sub0_p: dict[int, float] = dataclasses.field(default_factory=dict)  # P(sub 0)


@functools.lru_cache(maxsize=8)
def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x), each (size, size) float32, read-only."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + np.float32(0.5)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def _axes(size, theta, cy, cx):
    """Coordinates along (s) and across (d) a line through (cy, cx) at angle theta."""
    yy, xx = _coords(size)
    s = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    d = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    return s, d


def _new(size, primary, grid_angle=None) -> Layout:
    return Layout(
        bg_map=np.full((size, size), primary, np.uint8),
        primary=primary,
        angle_map=np.full((size, size), np.nan, np.float32),
        marks=np.zeros((size, size), bool),
        grid_angle=grid_angle,
    )


def add_road(lay, size, theta, offset, width, paint=True):
    """Straight road band through the image centre shifted by ``offset`` pixels."""
    sc = size / 128
    s, d = _axes(size, theta, size / 2, size / 2)
    d = d - offset
    band = np.abs(d) <= width / 2
    lay.bg_map[band] = ROAD
    lay.angle_map[band] = theta
    if paint:
        dash = (np.abs(d) < 0.5) & ((s % (8 * sc + 1)) < 4 * sc + 0.5)
        edge = np.abs(np.abs(d) - (width / 2 - 1.5 * sc)) < 0.5
        lay.marks |= band & (dash | (edge if width > 12 * sc else False))
    return band


def _rand_theta(rng, axis_aligned_p=0.5):
    if rng.random() < axis_aligned_p:
        return rng.integers(0, 2) * np.pi / 2 + rng.uniform(-0.08, 0.08)
    return rng.uniform(0, np.pi)


def _road_scene(primary, p_road=1.0, max_roads=1, grid=False):
    def layout(rng, size):
        sc = size / 128
        theta = _rand_theta(rng)
        lay = _new(size, primary, theta if grid else None)
        if rng.random() < p_road:
            for k in range(rng.integers(1, max_roads + 1)):
                t = theta + (np.pi / 2 if k % 2 else 0.0) if grid else theta
                off = rng.uniform(-0.3, 0.3) * size
                add_road(lay, size, t, off, rng.uniform(9, 12) * sc)
        return lay

    return layout


def airport(rng, size):
    sc = size / 128
    lay = _new(size, ROAD)
    theta = _rand_theta(rng)
    s, d = _axes(size, theta, size / 2, size / 2)
    edge = rng.uniform(0.25, 0.4) * size * rng.choice([-1, 1])
    grass = d > edge if edge > 0 else d < edge
    lay.bg_map[grass] = GRASS
    taxi = rng.uniform(-0.15, 0.15) * size  # painted taxi line on the apron
    lay.marks |= (np.abs(d - taxi) < 0.5 * max(sc, 1)) & ~grass
    return lay


def parking_lot(rng, size):
    sc = size / 128
    theta = _rand_theta(rng, 0.8)
    lay = _new(size, ROAD, theta)
    s, d = _axes(size, theta, size / 2, size / 2)
    lay.bg_map[d > rng.uniform(0.3, 0.4) * size] = GRASS
    depth, slot, aisle = 18 * sc, 6 * sc, 9 * sc
    period = depth + aisle
    off_d, off_s = rng.uniform(0, period), rng.uniform(0, slot)
    row = np.abs((d + off_d) % period - period / 2) < depth / 2
    line = np.abs((s + off_s) % slot - slot / 2) > slot / 2 - 0.5
    lay.marks |= row & line & (lay.bg_map == ROAD)
    lay.angle_map[lay.bg_map == ROAD] = theta + np.pi / 2  # park across the rows
    # Slot centres: rows at d = P/2 - off_d + kP, slots at s = slot/2 - off_s + j slot.
    k = np.arange(-size // period - 1, size // period + 2)
    j = np.arange(-size // slot - 1, size // slot + 2)
    sd = (period / 2 - off_d + k * period)[:, None] + 0 * j[None, :]
    ss = (slot / 2 - off_s + j * slot)[None, :] + 0 * k[:, None]
    c, sn = np.cos(theta), np.sin(theta)
    ay, ax = size / 2 + ss * sn + sd * c, size / 2 + ss * c - sd * sn
    anchors = np.stack([ay.ravel(), ax.ravel()], 1)
    ok = (anchors >= 0).all(1) & (anchors < size).all(1)
    anchors = anchors[ok]
    on_road = lay.bg_map[anchors[:, 0].astype(int), anchors[:, 1].astype(int)] == ROAD
    lay.anchors = anchors[on_road]
    return lay


def _water_edge(rng, size, theta, offset, wavy):
    s, d = _axes(size, theta, size / 2, size / 2)
    if wavy:
        d = d + wavy * size * smooth_noise(rng, size, size, 3)
    return d - offset


def harbor(rng, size):
    theta = _rand_theta(rng, 0.7)
    lay = _new(size, WATER)
    d = _water_edge(rng, size, theta, rng.uniform(-0.1, 0.05) * size, 0.0)
    quay = d < 0
    lay.bg_map[quay] = ROAD
    # Boats dock perpendicular to the quay; on the quay they are stored along it.
    lay.angle_map[~quay] = theta + np.pi / 2
    lay.angle_map[quay] = theta
    return lay


def river(rng, size):
    sc = size / 128
    theta = _rand_theta(rng, 0.3)
    lay = _new(size, GRASS)
    width = rng.uniform(22, 34) * sc
    d = _water_edge(rng, size, theta, rng.uniform(-0.12, 0.12) * size, 0.03)
    water = np.abs(d) <= width / 2
    # A road runs along one bank, following the river's bends.
    side = rng.choice([-1, 1])
    road = np.abs(d - side * (width / 2 + rng.uniform(4, 10) * sc + 7 * sc)) <= 7 * sc
    lay.bg_map[road] = ROAD
    lay.bg_map[water] = WATER
    lay.angle_map[road | water] = theta
    return lay


def beach(rng, size):
    sc = size / 128
    theta = _rand_theta(rng, 0.5)
    lay = _new(size, SAND)
    d = _water_edge(rng, size, theta, rng.uniform(-0.2, 0.2) * size, 0.04)
    lay.bg_map[d > 0] = WATER
    foam = (d > 0) & (d < 2.0 * sc)  # surf line, painted on the water side
    lay.marks |= foam
    return lay


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
        _road_scene(GRASS, max_roads=2),
        ids(car=(2, 10), truck=(0, 4), tree=(0, 6)),
    ),
    SceneSpec("harbor", "water", harbor, ids(boat=(3, 12), car=(0, 3), truck=(0, 2))),
    SceneSpec("river", "water", river, ids(boat=(1, 4), tree=(2, 10), car=(0, 3))),
    SceneSpec("beach", "water", beach, ids(tree=(0, 4), building=(0, 2))),
    SceneSpec(
        "dense_residential",
        "residential",
        _road_scene(URBAN, max_roads=3, grid=True),
        ids(building=(8, 16), car=(2, 8), tree=(0, 5)),
    ),
    SceneSpec(
        "sparse_residential",
        "residential",
        _road_scene(GRASS, max_roads=2, grid=True),
        ids(building=(2, 6), tree=(4, 12), car=(0, 3)),
    ),
    SceneSpec(
        "forest",
        "nature",
        _road_scene(FOREST, p_road=0.3),
        ids(tree=(12, 30), car=(0, 2)),
        ids(tree=0.5),
    ),
    SceneSpec(
        "farmland",
        "agriculture",
        _road_scene(FIELD, p_road=0.5, grid=True),
        ids(building=(0, 2), tree=(0, 3)),
    ),
    SceneSpec(
        "tennis_court",
        "sport",
        _road_scene(GRASS, grid=True),
        ids(tennis_court=(1, 3), tree=(1, 6), building=(0, 2), car=(0, 2)),
    ),
    SceneSpec(
        "storage_tanks",
        "industrial",
        _road_scene(SAND, grid=True),
        ids(storage_tank=(2, 10), truck=(0, 3), building=(0, 2)),
    ),
    SceneSpec(
        "snowfield",
        "nature",
        _road_scene(SNOW, p_road=0.4),
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
