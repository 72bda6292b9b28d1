"""UCM-style captions generated from a SynthAerial scene graph.

Five captions per image, tokenised like the UCM caption file (space before ``.`` and
``,``). Every caption names every object concept present in the image and no other:
scene and background phrases never contain a concept noun. Counts, sub-concept
adjectives (colour, size), the supporting background and a nearest-neighbour spatial
relation ("parked near the building") come from the scene graph.
"""

from __future__ import annotations

import numpy as np

from jaxcxai.data import shapes as sh
from jaxcxai.data import textures as tx

NUMBERS = (
    "no one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
).split()
NOUNS = {
    sh.AIRPLANE: (("airplane", "airplanes"), ("plane", "planes")),
    sh.CAR: (("car", "cars"),),
    sh.TRUCK: (("truck", "trucks"),),
    sh.BOAT: (("boat", "boats"),),
    sh.STORAGE_TANK: (("storage tank", "storage tanks"),),
    sh.TREE: (("tree", "trees"),),
    sh.BUILDING: (("building", "buildings"), ("house", "houses")),
    sh.TENNIS_COURT: (("tennis court", "tennis courts"),),
}
ADJECTIVES = {
    sh.AIRPLANE: ("large", "small"),
    sh.CAR: ("red", "white"),
    sh.TRUCK: ("red", "white"),
    sh.BOAT: ("small", "large"),
    sh.STORAGE_TANK: ("small", "big"),
    sh.TREE: ("green", "dark"),
    sh.BUILDING: ("red-roofed", "grey-roofed"),
    sh.TENNIS_COURT: ("green", "blue"),
}
VERBS = {
    sh.AIRPLANE: ("parked", "stopped"),
    sh.CAR: ("parked", "driving"),
    sh.TRUCK: ("parked", "driving"),
    sh.BOAT: ("docked", "moored"),
    sh.STORAGE_TANK: ("standing", "built"),
    sh.TREE: ("growing", "planted"),
    sh.BUILDING: ("standing", "built"),
    sh.TENNIS_COURT: ("lying", "built"),
}
SUPPORT = {
    tx.GRASS: ("on the lawn", "on the grass"),
    tx.FOREST: ("in the forest",),
    tx.WATER: ("on the water", "in the water"),
    tx.SAND: ("on the sand", "on the bare ground"),
    tx.ROAD: ("on the road", "on the asphalt"),
    tx.URBAN: ("among the roofs", "in the urban area"),
    tx.FIELD: ("in the field", "on the farmland"),
    tx.SNOW: ("in the snow", "on the snow"),
}
SUPPORT_OVERRIDE = {
    ("airport", tx.ROAD): ("on the apron", "on the tarmac"),
    ("parking_lot", tx.ROAD): ("in the parking spaces", "on the asphalt"),
    ("river", tx.WATER): ("on the river", "in the river"),
}
# (noun phrases, place phrases, background detail) per scene; no concept nouns.
SCENE_TEXT = {
    "airport": (("an airport", "an airport apron"), ("at the airport",), "a taxi line"),
    "parking_lot": (("a parking lot",), ("in the parking lot",), "white parking lines"),
    "freeway": (("a freeway", "a highway"), ("on the freeway",), "white lane marks"),
    "harbor": (("a harbor", "a port"), ("at the harbor", "in the port"), "calm water"),
    "river": (("a river", "a river area"), ("along the river",), "winding water"),
    "beach": (("a beach", "a sandy beach"), ("on the beach",), "white waves"),
    "dense_residential": (
        ("a dense residential area",),
        ("in the dense residential area",),
        "crowded roofs",
    ),
    "sparse_residential": (
        ("a sparse residential area",),
        ("in the sparse residential area",),
        "green lawns",
    ),
    "forest": (("a forest", "a dense forest"), ("in the forest",), "a dark canopy"),
    "farmland": (("a piece of farmland",), ("in the farmland",), "crops in stripes"),
    "tennis_court": (("a sports area", "a sports ground"), ("in the sports area",), ""),
    "storage_tanks": (
        ("an industrial area", "an industrial site"),
        ("in the industrial area",),
        "bare ground",
    ),
    "snowfield": (("a snowfield", "a snowy area"), ("in the snow",), "white snow"),
}


def _num(n: int, next_word: str, rng) -> str:
    if n == 1:
        if rng.random() < 0.3:
            return "one"
        return "an" if next_word[0] in "aeiou" else "a"
    return NUMBERS[n] if n < len(NUMBERS) else "many"


def _group(rng, cls: int, subs: np.ndarray, style: int, scene: str) -> str:
    """Noun phrase for all instances of one concept, e.g. 'two red cars'.

    Styles: 0 exact counts split by sub-concept, 1 exact total count, 2 vague.
    """
    alts = NOUNS[cls]
    if cls == sh.BUILDING and "residential" not in scene:
        alts = alts[:1]
    sing, plur = alts[rng.integers(len(alts))]
    n = len(subs)
    if n == 1:
        adj = ADJECTIVES[cls][int(subs[0])]
        if style == 0 or (style == 1 and rng.random() < 0.5):
            return f"{_num(1, adj, rng)} {adj} {sing}"
        return f"{_num(1, sing, rng)} {sing}"
    if style == 2 or (style == 1 and n > 8):
        if n >= 6:
            return f"{('many', 'lots of')[rng.integers(2)]} {plur}"
        return f"{('some', 'a few', 'several')[rng.integers(3)]} {plur}"
    counts = [int((subs == k).sum()) for k in (0, 1)]
    adj = ADJECTIVES[cls]
    if style == 0 and n <= 12:
        if min(counts) == 0:
            return f"{NUMBERS[n]} {adj[int(np.argmax(counts))]} {plur}"
        return f"{NUMBERS[counts[0]]} {adj[0]} and {NUMBERS[counts[1]]} {adj[1]} {plur}"
    return f"{_num(n, plur, rng)} {plur}"


def _location(centers: np.ndarray, size: int, rng) -> str:
    if len(centers) > 3 and centers.std(0).max() > 0.22 * size:
        return ("scattered across the image", "all over the image")[rng.integers(2)]
    cy, cx = centers.mean(0) / size
    v = ("top", "middle", "bottom")[min(int(cy * 3), 2)]
    h = ("left", "middle", "right")[min(int(cx * 3), 2)]
    if v == h == "middle":
        return "in the middle of the image"
    if v == "middle" or h == "middle":
        return f"on the {h if v == 'middle' else v} side of the image"
    return f"in the {v} {h} corner"


def _be(phrase: str) -> str:
    """Verb agreement: a phrase is singular only if it starts with a/an/one."""
    singular = phrase.split()[0] in ("a", "an", "one") and " and " not in phrase
    return "is" if singular and not phrase.startswith("a few") else "are"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return " , ".join(items[:-1]) + " and " + items[-1]


def make_captions(
    rng: np.random.Generator,
    scene: str,
    obj_class: np.ndarray,
    obj_sub: np.ndarray,
    obj_center: np.ndarray,
    obj_background: np.ndarray,
    backgrounds_present: set[int],
    size: int,
    concept_order: tuple[int, ...] = (),
) -> list[str]:
    """Five UCM-style captions for one image.

    Args:
        rng: generator for template and wording choices (its own stream).
        scene: scene name (key of SCENE_TEXT).
        obj_class, obj_sub, obj_background: (n,) per-object concept id (1..K),
            sub-concept index and texture family under the object.
        obj_center: (n, 2) object centres (y, x) in pixels.
        backgrounds_present: texture families present in the image.
        size: image side in pixels.
        concept_order: concept ids in order of importance for the scene.

    Returns:
        Five caption strings ending in " .".
    """
    nps, places, detail = SCENE_TEXT[scene]
    # The scene's defining concept (first in `concept_order`) leads every caption.
    rank = {c: i for i, c in enumerate(concept_order)}
    classes = sorted(set(obj_class.tolist()), key=lambda c: rank.get(c, len(rank)))
    bg_extra = []
    if detail:
        bg_extra.append(detail)
    if tx.ROAD in backgrounds_present and scene not in ("airport", "parking_lot"):
        bg_extra.append("a road")
    if not classes:
        np_ = [nps[rng.integers(len(nps))] for _ in range(5)]
        with_bg = f" with {_join(bg_extra)}" if bg_extra else ""
        return [
            f"There is {np_[0]} .",
            f"It is {np_[1]}{with_bg} .",
            f"{np_[2].capitalize()}{with_bg} .",
            f"This is {np_[3]} .",
            f"{np_[4].capitalize()} with nothing else{with_bg and ' but ' + _join(bg_extra)} .",
        ]

    def describe(style):
        groups = [
            _group(rng, c, obj_sub[obj_class == c], style, scene) for c in classes
        ]
        return groups

    def relation(cls):
        """Support phrase, or 'near the X' from nearest other-class neighbours."""
        sel = obj_class == cls
        others = ~sel
        if others.any() and rng.random() < 0.6:
            d = np.linalg.norm(
                obj_center[sel, None] - obj_center[None, others], axis=-1
            )
            near = obj_class[others][d.argmin(1)]
            best = int(np.bincount(near).argmax())
            if np.median(d.min(1)) < 0.3 * size:
                n_best = int((obj_class == best).sum())
                noun = NOUNS[best][0][0 if n_best == 1 else 1]
                return f"near the {noun}"
        bg = int(np.bincount(obj_background[sel]).argmax())
        opts = SUPPORT_OVERRIDE.get((scene, bg), SUPPORT[bg])
        return opts[rng.integers(len(opts))]

    main = classes[0]
    verb = VERBS[main][rng.integers(2)]
    loc = _location(obj_center[obj_class == main], size, rng)
    templates = rng.permutation(6)[:5]
    out = []
    for t in templates:
        g = describe(int(rng.integers(3)))
        rest = _join(g[1:])
        np_ = nps[rng.integers(len(nps))]
        place = places[rng.integers(len(places))]
        if t == 0:
            tail = f" and {rest}" if rest else ""
            rel = relation(main)
            place = "" if rel == place else f" {place}"
            text = f"There {_be(g[0])} {g[0]} {verb} {rel}{tail}{place} ."
        elif t == 1:
            text = f"{np_.capitalize()} with {_join(g)} ."
        elif t == 2:
            tail = f" and {rest} beside" if rest else ""
            text = f"It is {np_} with {g[0]} {loc}{tail} ."
        elif t == 3:
            tail = f" with {rest} beside" if rest else ""
            text = f"{g[0].capitalize()} {_be(g[0])} {verb} {relation(main)}{tail} ."
        elif t == 4:
            be = _be(g[0]) if len(g) == 1 else "are"
            text = f"{_join(g).capitalize()} {be} {place} ."
        else:
            tail = f" while {rest} can be seen" if rest else ""
            text = f"{np_.capitalize()} where {g[0]} {_be(g[0])} {loc}{tail} ."
        out.append(text)
    return out
