"""Object concepts of SynthAerial: sizes, top-down shapes and colours.

Every object is described in its own frame: ``u`` runs along its length (towards the
front), ``v`` across it. A shape function maps (u, v) pixel-centre coordinates to a
part id (0 outside, 1 body, 2 detail, 3 highlight); a per-(concept, sub-concept)
palette turns parts into colours. Car and truck share shape, width, palette and the
position of every detail relative to the front: they differ only in length
(truck = 2 x car), the planted confusable pair.
"""

from __future__ import annotations

import numpy as np

from jaxcxai.data.textures import FIELD, FOREST, GRASS, ROAD, SAND, SNOW, URBAN, WATER

CONCEPTS = (
    "airplane",
    "car",
    "truck",
    "boat",
    "storage_tank",
    "tree",
    "building",
    "tennis_court",
)
AIRPLANE, CAR, TRUCK, BOAT, STORAGE_TANK, TREE, BUILDING, TENNIS_COURT = range(1, 9)

SUBCONCEPTS = {
    "airplane": ("large", "small"),
    "car": ("red", "white"),
    "truck": ("red", "white"),
    "boat": ("small", "large"),
    "storage_tank": ("small", "large"),
    "tree": ("broadleaf", "conifer"),
    "building": ("red_roof", "grey_roof"),
    "tennis_court": ("green", "blue"),
}
# Concept super-categories, for hierarchy studies on the object side.
CONCEPT_GROUPS = {
    "vehicle": ("airplane", "car", "truck", "boat"),
    "structure": ("storage_tank", "building", "tennis_court"),
    "vegetation": ("tree",),
}
# Backgrounds an object may stand on (boats are handled by the bias parameter).
ALLOWED_BACKGROUNDS = {
    AIRPLANE: (ROAD,),
    CAR: (ROAD,),
    TRUCK: (ROAD,),
    BOAT: (WATER, ROAD),
    STORAGE_TANK: (SAND, GRASS, URBAN, SNOW),
    TREE: (GRASS, FOREST, SAND, FIELD, SNOW, URBAN),
    BUILDING: (GRASS, SAND, FIELD, SNOW, URBAN),
    TENNIS_COURT: (GRASS, URBAN),
}
# Objects standing tall enough to cast a shadow.
CASTS_SHADOW = (AIRPLANE, STORAGE_TANK, TREE, BUILDING)

_P = np.array  # (body, detail, highlight) RGB in [0, 1]
PALETTES = {
    (AIRPLANE, 0): _P([(0.86, 0.87, 0.88), (0.55, 0.56, 0.60), (0.97, 0.97, 0.97)]),
    (AIRPLANE, 1): _P([(0.86, 0.87, 0.88), (0.55, 0.56, 0.60), (0.97, 0.97, 0.97)]),
    (CAR, 0): _P([(0.74, 0.10, 0.09), (0.10, 0.10, 0.13), (0.86, 0.30, 0.28)]),
    (CAR, 1): _P([(0.91, 0.91, 0.89), (0.10, 0.10, 0.13), (1.00, 1.00, 1.00)]),
    (BOAT, 0): _P([(0.94, 0.94, 0.95), (0.42, 0.33, 0.24), (1.00, 1.00, 1.00)]),
    (BOAT, 1): _P([(0.24, 0.30, 0.46), (0.85, 0.85, 0.85), (0.95, 0.95, 0.95)]),
    (STORAGE_TANK, 0): _P([(0.88, 0.88, 0.86), (0.60, 0.60, 0.60), (0.97, 0.97, 0.96)]),
    (STORAGE_TANK, 1): _P([(0.88, 0.88, 0.86), (0.60, 0.60, 0.60), (0.97, 0.97, 0.96)]),
    (TREE, 0): _P([(0.24, 0.47, 0.16), (0.16, 0.33, 0.11), (0.36, 0.60, 0.25)]),
    (TREE, 1): _P([(0.07, 0.24, 0.13), (0.04, 0.15, 0.08), (0.12, 0.33, 0.18)]),
    (BUILDING, 0): _P([(0.66, 0.28, 0.20), (0.48, 0.20, 0.15), (0.78, 0.40, 0.30)]),
    (BUILDING, 1): _P([(0.64, 0.64, 0.66), (0.45, 0.45, 0.48), (0.78, 0.78, 0.80)]),
    (TENNIS_COURT, 0): _P([(0.20, 0.42, 0.28), (0.30, 0.60, 0.37), (0.97, 0.97, 0.97)]),
    (TENNIS_COURT, 1): _P([(0.16, 0.28, 0.50), (0.23, 0.40, 0.70), (0.97, 0.97, 0.97)]),
}
PALETTES[(TRUCK, 0)] = PALETTES[(CAR, 0)]
PALETTES[(TRUCK, 1)] = PALETTES[(CAR, 1)]


def sample_dims(
    rng: np.random.Generator, concept: int, sub: int, scale: float
) -> tuple[float, float]:
    """Draws (length, width) in pixels for one object; ``scale`` = image size / 128."""
    u = rng.uniform
    if concept == AIRPLANE:
        length = u(30, 40) if sub == 0 else u(14, 20)
        dims = (length, length * u(0.9, 1.0))  # width = wing span
    elif concept in (CAR, TRUCK):
        dims = (u(7.0, 8.5), u(3.4, 4.0))
    elif concept == BOAT:
        length = u(7, 11) if sub == 0 else u(16, 24)
        dims = (length, length * (u(0.35, 0.42) if sub == 0 else u(0.28, 0.34)))
    elif concept == STORAGE_TANK:
        dims = (2 * (u(3, 5) if sub == 0 else u(7, 10)),) * 2
    elif concept == TREE:
        dims = (2 * (u(3.2, 5.5) if sub == 0 else u(2.2, 3.5)),) * 2
    elif concept == BUILDING:
        length = u(11, 20)
        dims = (length, min(length, u(8, 13)))
    elif concept == TENNIS_COURT:
        length = u(22, 27)
        dims = (length, length * u(0.5, 0.56))
    else:
        raise ValueError(f"unknown concept id {concept}")
    length, width = (max(1.2, d * scale) for d in dims)
    if concept == TRUCK:  # the planted confusable pair: only the length differs
        length *= 2.0
    return length, width


def _shape(concept: int, sub: int, u, v, length: float, width: float) -> np.ndarray:
    hl, hw = length / 2, width / 2
    part = np.zeros(u.shape, np.uint8)
    av = np.abs(v)
    if concept in (CAR, TRUCK, BUILDING, TENNIS_COURT):
        part[(np.abs(u) <= hl) & (av <= hw)] = 1
        body = part == 1
        if concept in (CAR, TRUCK):  # windshield at a fixed distance from the front
            part[body & (u > hl - 0.9 * width) & (u < hl - 0.5 * width)] = 2
        elif concept == BUILDING and sub == 0:  # gable roof: one dark half, ridge
            part[body & (v > 0)] = 2
            part[body & (av < 0.5)] = 3
        elif concept == BUILDING:
            part[body & ((np.abs(u) > hl - 1) | (av > hw - 1))] = 2
        else:
            cu, cv = 0.42 * length, 0.36 * width
            court = body & (np.abs(u) <= cu) & (av <= cv)
            part[court] = 2
            line = (np.abs(u) > cu - 0.8) | (av > cv - 0.8) | (np.abs(u) < 0.4)
            line |= (np.abs(np.abs(u) - 0.23 * length) < 0.4) | (
                (av < 0.4) & (np.abs(u) < 0.23 * length)
            )
            part[court & line] = 3
    elif concept == AIRPLANE:
        le = 0.12 * length - 0.35 * av  # swept leading edge
        chord = 0.2 * length - 0.13 * length * av / hw
        part[(av <= hw) & (u <= le) & (u >= le - chord)] = 1
        le_t = -0.33 * length - 0.3 * av
        chord_t = 0.1 * length - 0.2 * av
        part[(av <= 0.2 * length) & (u <= le_t) & (u >= le_t - chord_t)] = 1
        taper = np.sqrt(np.clip(1 - ((u - 0.38 * length) / (0.12 * length)) ** 2, 0, 1))
        half = np.maximum(0.055 * length, 0.6) * np.where(u > 0.38 * length, taper, 1)
        part[(np.abs(u) <= hl) & (av <= half)] = 3
    elif concept == BOAT:
        un = u / hl
        bow = np.sqrt(np.clip(1 - ((un - 0.3) / 0.7) ** 2, 0, 1))
        half = hw * np.where(un > 0.3, bow, 1.0)
        part[(un >= -1) & (un <= 1) & (av <= half)] = 1
        lo, hi = (-0.75, 0.35) if sub == 0 else (-0.6, 0.0)
        part[(part == 1) & (av < 0.3 * width) & (un > lo) & (un < hi)] = 2
    elif concept in (STORAGE_TANK, TREE):
        r = np.hypot(u, v)
        if concept == TREE:  # lobed crown, kept inside radius hl
            radius = hl * (1 + 0.12 * np.sin(5 * np.arctan2(v, u))) / 1.12
            part[r <= radius] = 1
            part[(r > 0.75 * radius) & (part == 1)] = 2
            part[np.hypot(u + 0.3 * hl, v + 0.3 * hl) < 0.4 * hl] = 3
            part[r > radius] = 0
        else:
            part[r <= hl] = 1
            part[(r > 0.55 * hl) & (r < 0.7 * hl)] = 2
            part[r < 0.2 * hl] = 3
    return part


def footprint(
    concept: int,
    sub: int,
    length: float,
    width: float,
    angle: float,
    cy: float,
    cx: float,
    size: int,
) -> tuple[int, int, np.ndarray] | None:
    """Rasterizes one object at pixel centres.

    Args:
        concept, sub: concept id (1..K) and sub-concept index (0 or 1).
        length, width: extent along / across the object axis in pixels.
        angle: direction of the length axis in radians (x right, y down).
        cy, cx: centre in pixel coordinates (pixel p covers [p, p + 1)).
        size: image side; the object must lie fully inside the image.

    Returns:
        ``(y0, x0, part)`` with ``part`` an (h, w) uint8 window of part ids whose
        top-left pixel is (y0, x0), or None if the object leaves the image or covers
        no pixel centre.
    """
    c, s = np.cos(angle), np.sin(angle)
    hu, hv = length / 2, width / 2
    ey, ex = abs(s) * hu + abs(c) * hv, abs(c) * hu + abs(s) * hv
    y0, x0 = int(np.ceil(cy - ey - 0.5)), int(np.ceil(cx - ex - 0.5))
    y1, x1 = int(np.floor(cy + ey - 0.5)) + 1, int(np.floor(cx + ex - 0.5)) + 1
    if y0 < 0 or x0 < 0 or y1 > size or x1 > size or y1 <= y0 or x1 <= x0:
        return None
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - cy
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - cx
    u = dx * c + dy * s
    v = -dx * s + dy * c
    part = _shape(concept, sub, u, v, length, width)
    if not part.any():
        return None
    return y0, x0, part
