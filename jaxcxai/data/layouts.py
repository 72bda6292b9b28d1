"""Background layouts of the SynthAerial scenes: texture maps, roads, water.

A layout function ``(rng, size) -> Layout`` decides which texture family goes
where, paints road marks and sets preferred object orientations (and, for
parking lots, slot anchors). Scene classes pair a layout with object counts
in `scenes`.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from jaxcxai.data.textures import GRASS, ROAD, SAND, WATER, smooth_noise


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


def road_scene(primary, p_road=1.0, max_roads=1, grid=False):
    """Layout function of a scene of one texture family crossed by roads.

    Args:
      primary: the scene's texture family (e.g. GRASS).
      p_road: probability that the image has roads at all.
      max_roads: up to this many roads (uniform count from 1).
      grid: roads alternate between two perpendicular directions and set
        the layout's ``grid_angle`` (structures aligned to them).
    """

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
