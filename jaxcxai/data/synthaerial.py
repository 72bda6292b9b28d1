"""SynthAerial: synthetic top-down aerial scenes with planted ground truth.

The default dataset of jaxcxai (no real aerial data is available offline). Each image
is a scene class (airport, harbor, forest, ...) built from procedural background
textures and simple top-down objects, with per-pixel class and instance masks, a
per-pixel background map, per-object records and five UCM-style captions.

Planted structure, recorded per image and per object:
  * sub-concepts: two per concept (large/small airplanes, red/white cars, ...);
  * a confusable pair: car and truck differ only in length (truck = 2 x car);
  * a background correlation: each boat is placed on water with probability
    ``boat_on_water_p`` and on road otherwise; boats are placed last from their own
    random stream, so changing ``p`` moves only boats;
  * a taxonomy: scene -> super-category (SCENE_SUPER) and concept -> group
    (CONCEPT_GROUPS).

Image ``i`` depends only on ``(seed, i)``: generation can be split across hosts and
chunks (``start`` argument) and gives identical bytes.
"""

from __future__ import annotations

import numpy as np

from jaxcxai.data import shapes as sh
from jaxcxai.data.scenes import (
    PLACEMENT_ORDER,
    SCENE_SPECS,
    SCENE_SUPER,
    SCENES,
    SUPER_CATEGORIES,
)
from jaxcxai.data.shapes import CONCEPT_GROUPS, CONCEPTS, SUBCONCEPTS
from jaxcxai.data.synthaerial_captions import make_captions
from jaxcxai.data.textures import BACKGROUNDS, ROAD, WATER, render_background

__all__ = [
    "BACKGROUNDS",
    "CONCEPTS",
    "CONCEPT_GROUPS",
    "SCENES",
    "SCENE_SUPER",
    "SUBCONCEPTS",
    "SUPER_CATEGORIES",
    "MAX_OBJECTS",
    "CAPTIONS_PER_IMAGE",
    "CAPTION_DTYPE",
    "generate",
]

MAX_OBJECTS = 48
CAPTIONS_PER_IMAGE = 5
# Fixed-width caption strings so chunks and hosts produce identical dtypes (the
# longest generated caption is ~210 characters).
CAPTION_DTYPE = np.dtype("<U256")
_ATTEMPTS = 25
_STRUCTURES = (sh.BUILDING, sh.TENNIS_COURT)
_MOVERS = (sh.AIRPLANE, sh.CAR, sh.TRUCK, sh.BOAT)
_MARK_RGB = np.array([0.9, 0.9, 0.87], np.float32)
# Random streams per image: each part of an image draws from its own generator so
# that e.g. caption wording or the boat bias never shifts the pixels of anything else.
_LAYOUT, _TEXTURE, _OBJECTS, _BOATS, _CAPTIONS = range(5)


def _stream(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, index, stream])


def _dilate(mask: np.ndarray) -> np.ndarray:
    """Binary dilation by one pixel (4-neighbourhood) with a one-pixel border."""
    out = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), bool)
    out[1:-1, 1:-1] = mask
    out[:-2, 1:-1] |= mask
    out[2:, 1:-1] |= mask
    out[1:-1, :-2] |= mask
    out[1:-1, 2:] |= mask
    return out


def _place(rng, concept, sub, layout, occ, allowed, size):
    """Rejection-samples a pose whose footprint lies on allowed, unoccupied pixels."""
    free = np.isin(layout.bg_map, allowed) & ~occ
    cand = np.flatnonzero(free)
    if not len(cand):
        return None
    length, width = sh.sample_dims(rng, concept, sub, size / 128)
    anchors = layout.anchors if concept in (sh.CAR, sh.TRUCK) else None
    for _ in range(_ATTEMPTS):
        if anchors is not None and len(anchors) and rng.random() < 0.9:
            cy, cx = anchors[rng.integers(len(anchors))] + rng.uniform(-0.3, 0.3, 2)
        else:
            idx = cand[rng.integers(len(cand))]
            cy, cx = idx // size + rng.random(), idx % size + rng.random()
        pref = layout.angle_map[
            int(np.clip(cy, 0, size - 1)), int(np.clip(cx, 0, size - 1))
        ]
        if concept in _STRUCTURES and layout.grid_angle is not None:
            angle = layout.grid_angle + rng.integers(2) * np.pi / 2
        elif concept in _MOVERS and np.isfinite(pref):
            angle = pref + rng.integers(2) * np.pi + rng.uniform(-0.05, 0.05)
        else:
            angle = rng.uniform(0, 2 * np.pi)
        fp = sh.footprint(concept, sub, length, width, angle, cy, cx, size)
        if fp is None:
            continue
        y0, x0, part = fp
        h, w = part.shape
        inside = part > 0
        if not free[y0 : y0 + h, x0 : x0 + w][inside].all():
            continue
        # Keep a one-pixel gap so instances never touch (masks stay unambiguous).
        ring = _dilate(inside)
        ys = slice(max(y0 - 1, 0), min(y0 + h + 1, size))
        xs = slice(max(x0 - 1, 0), min(x0 + w + 1, size))
        ring = ring[ys.start - (y0 - 1) :, xs.start - (x0 - 1) :]
        ring = ring[: ys.stop - ys.start, : xs.stop - xs.start]
        occ[ys, xs] |= ring
        return dict(
            cls=concept, sub=sub, y0=y0, x0=x0, part=part, cy=cy, cx=cx,
            angle=float(np.mod(angle, 2 * np.pi)), length=length, width=width,
        )  # fmt: skip
    return None


def _render(index, size, seed, boat_on_water_p, scene_p):
    r_lay = _stream(seed, index, _LAYOUT)
    scene = int(r_lay.choice(len(SCENES), p=scene_p))
    spec = SCENE_SPECS[scene]
    layout = spec.layout(r_lay, size)
    r_tex = _stream(seed, index, _TEXTURE)
    rgb = render_background(r_tex, layout.bg_map)
    rgb[layout.marks] = _MARK_RGB
    grain = 1 + 0.04 * r_tex.standard_normal((size, size)).astype(np.float32)

    present = set(np.unique(layout.bg_map).tolist())
    occ = np.zeros((size, size), bool)
    objs = []
    r_obj, r_boat = _stream(seed, index, _OBJECTS), _stream(seed, index, _BOATS)
    for concept in PLACEMENT_ORDER:
        if concept not in spec.counts:
            continue
        rng = r_boat if concept == sh.BOAT else r_obj
        lo, hi = spec.counts[concept]
        for _ in range(rng.integers(lo, hi + 1)):
            sub = 0 if rng.random() < spec.sub0_p.get(concept, 0.5) else 1
            if concept == sh.BOAT:
                allowed = (WATER,) if rng.random() < boat_on_water_p else (ROAD,)
            else:
                allowed = tuple(
                    b for b in sh.ALLOWED_BACKGROUNDS[concept] if b in present
                )
            tint = rng.uniform(0.92, 1.08, 3).astype(np.float32)
            if len(objs) == MAX_OBJECTS:  # unreachable with the shipped scene specs
                break
            obj = _place(rng, concept, sub, layout, occ, allowed, size)
            if obj is not None:
                obj["tint"] = tint
                objs.append(obj)

    class_mask = np.zeros((size, size), np.uint8)
    instance_mask = np.zeros((size, size), np.int32)
    shadow = np.zeros((size, size), bool)
    k = max(1, round(2 * size / 128))
    for j, o in enumerate(objs):
        h, w = o["part"].shape
        win = (slice(o["y0"], o["y0"] + h), slice(o["x0"], o["x0"] + w))
        inside = o["part"] > 0
        class_mask[win][inside] = o["cls"]
        instance_mask[win][inside] = j + 1
        if o["cls"] in sh.CASTS_SHADOW:
            sy, sx = (
                slice(o["y0"] + k, o["y0"] + h + k),
                slice(o["x0"] + k, o["x0"] + w + k),
            )
            cut = inside[: size - sy.start, : size - sx.start]
            shadow[sy, sx][: cut.shape[0], : cut.shape[1]] |= cut
    rgb[shadow & (class_mask == 0)] *= 0.55
    for o in objs:
        h, w = o["part"].shape
        win = (slice(o["y0"], o["y0"] + h), slice(o["x0"], o["x0"] + w))
        inside = o["part"] > 0
        colors = sh.PALETTES[(o["cls"], o["sub"])].astype(np.float32) * o["tint"]
        rgb[win][inside] = colors[o["part"][inside] - 1] * grain[win][inside, None]

    n = len(objs)
    rec = {
        "obj_class": np.zeros(MAX_OBJECTS, np.uint8),
        "obj_subconcept": np.full(MAX_OBJECTS, -1, np.int8),
        "obj_bbox": np.zeros((MAX_OBJECTS, 4), np.int32),
        "obj_center": np.zeros((MAX_OBJECTS, 2), np.float32),
        "obj_angle": np.zeros(MAX_OBJECTS, np.float32),
        "obj_length": np.zeros(MAX_OBJECTS, np.float32),
        "obj_width": np.zeros(MAX_OBJECTS, np.float32),
        "obj_background": np.full(MAX_OBJECTS, -1, np.int8),
    }
    for j, o in enumerate(objs):
        inside = o["part"] > 0
        rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
        y0, x0 = o["y0"], o["x0"]
        under = layout.bg_map[y0 : y0 + inside.shape[0], x0 : x0 + inside.shape[1]]
        rec["obj_class"][j] = o["cls"]
        rec["obj_subconcept"][j] = o["sub"]
        rec["obj_bbox"][j] = (
            y0 + rows[0],
            x0 + cols[0],
            y0 + rows[-1] + 1,
            x0 + cols[-1] + 1,
        )
        rec["obj_center"][j] = (o["cy"], o["cx"])
        rec["obj_angle"][j] = o["angle"]
        rec["obj_length"][j] = o["length"]
        rec["obj_width"][j] = o["width"]
        rec["obj_background"][j] = np.bincount(under[inside]).argmax()

    captions = make_captions(
        _stream(seed, index, _CAPTIONS),
        SCENES[scene],
        rec["obj_class"][:n],
        rec["obj_subconcept"][:n],
        rec["obj_center"][:n],
        rec["obj_background"][:n].astype(np.int64),
        present,
        size,
        tuple(spec.counts),
    )
    counts = np.bincount(rec["obj_class"][:n], minlength=len(CONCEPTS) + 1)[1:]
    image = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    return dict(
        image=image, class_mask=class_mask, instance_mask=instance_mask,
        background_map=layout.bg_map, background=layout.primary, scene=scene,
        super_category=SCENE_SUPER[scene], object_counts=counts,
        objects_present=counts > 0, num_objects=n, captions=captions, index=index,
        **rec,
    )  # fmt: skip


def generate(
    num: int,
    *,
    size: int = 128,
    seed: int = 0,
    start: int = 0,
    boat_on_water_p: float = 0.9,
    scenes: tuple[str, ...] | None = None,
) -> dict[str, np.ndarray]:
    """Generates images ``start .. start + num - 1`` of the SynthAerial stream.

    Args:
        num: number of images.
        size: image side in pixels (128 default; 32 or 64 for tests).
        seed: dataset seed; image i depends only on (seed, i).
        start: global index of the first image (for chunked / per-host generation).
        boat_on_water_p: probability that a boat is placed on water (else on road).
        scenes: restrict the scene classes to these names (uniform among them);
            None draws uniformly from all SCENES.

    Returns:
        Dict of arrays with leading axis N = num:
            image (N, H, W, 3) uint8; class_mask (N, H, W) uint8 (0 background,
            c = CONCEPTS[c - 1]); instance_mask (N, H, W) int32 (0 background,
            j + 1 = object j); background_map (N, H, W) uint8 (BACKGROUNDS id per pixel);
            background, scene, super_category, num_objects (N,) int32; index (N,)
            int64; object_counts (N, K) int32; objects_present (N, K) bool;
            captions (N, 5) CAPTION_DTYPE; per-object records padded to MAX_OBJECTS = M:
            obj_class (N, M) uint8 (0 = padding), obj_subconcept (N, M) int8 (index
            into SUBCONCEPTS[concept], -1 padding), obj_bbox (N, M, 4) int32
            (y0, x0, y1, x1, half-open, tight), obj_center (N, M, 2) float32 (y, x),
            obj_angle (N, M) float32 (radians, length axis), obj_length,
            obj_width (N, M) float32 pixels, obj_background (N, M) int8 (majority
            BACKGROUNDS id under the object; for boats the whole footprint).
    """
    if num < 1:
        raise ValueError(f"num must be at least 1, got {num}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    if not 0.0 <= boat_on_water_p <= 1.0:
        raise ValueError(f"boat_on_water_p must be in [0, 1], got {boat_on_water_p}")
    scene_p = np.full(len(SCENES), 1.0 / len(SCENES))
    if scenes is not None:
        unknown = [s for s in scenes if s not in SCENES]
        if unknown:
            raise ValueError(f"unknown scenes {unknown}; choose from {SCENES}")
        scene_p = np.array([s in scenes for s in SCENES], float) / len(set(scenes))
    per = [_render(start + i, size, seed, boat_on_water_p, scene_p) for i in range(num)]
    dtypes = {
        "background": np.int32, "scene": np.int32, "super_category": np.int32,
        "num_objects": np.int32, "index": np.int64, "object_counts": np.int32,
    }  # fmt: skip
    out = {}
    for key in per[0] if per else ():
        if key == "captions":
            longest = max(len(c) for p in per for c in p[key])
            if longest > CAPTION_DTYPE.itemsize // 4:
                raise ValueError(
                    f"caption of {longest} characters exceeds {CAPTION_DTYPE}"
                )
            out[key] = np.array([p[key] for p in per], dtype=CAPTION_DTYPE)
        else:
            out[key] = np.stack([np.asarray(p[key], dtypes.get(key)) for p in per])
    return out
