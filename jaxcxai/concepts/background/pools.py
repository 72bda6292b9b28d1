"""Background pools: SynthAerial scenes without objects, procedural, user folders.

A `BackgroundPool` holds (P, H, W, 3) uint8 backgrounds with a scene group per
row, ready for `paste.make_views` (pools are built on the host, once).

* `synthaerial_pool` (the embedded default): SynthAerial scene layouts rendered
  without objects, grouped by the scene's dominant texture family. The groups
  are SynthAerial's 8 families (`SCENE_GROUPS`); `PAPER_GROUPS` maps them to
  the nearest of the paper's Places205 scene groups (a reconstruction: the
  families are aerial textures, not Places scenes).
* `synthaerial_scene_pool`: whole SynthAerial scenes, objects included, with
  the truth of which objects each holds: the stand-in for scene photos that
  may show the concept, which background filtering (`filtering`) removes.
* `synthetic_pool`: the paper's "synthetic" backgrounds stand-in: uniform
  noise and pure texture families (the paper's diffusion-generated images are
  not available offline).
* `places.load_places_folder`: a Places205-style folder of photos.

References:
  Schwalbe et al., arXiv 2504.08602, §7.2-7.3 of spec concepts.md.
"""

import dataclasses
import functools

import numpy as np

from jaxcxai.data import synthaerial
from jaxcxai.data.scenes import SCENE_SPECS
from jaxcxai.data.textures import BACKGROUNDS, TEXTURES, render_background

__all__ = [
    "BackgroundPool",
    "NOISE",
    "PAPER_GROUPS",
    "SCENE_GROUPS",
    "synthaerial_pool",
    "synthaerial_scene_pool",
    "synthetic_pool",
]

SCENE_GROUPS = BACKGROUNDS  # grass forest water sand road urban field snow
PAPER_GROUPS = {
    "water": "at_water", "road": "road", "urban": "architecture",
    "forest": "forest", "field": "field", "grass": "botanical",
    "sand": "open_lands", "snow": "snow",
}  # fmt: skip
NOISE = "uniform_noise"
_MARK_RGB = np.array([0.9, 0.9, 0.87], np.float32)  # SynthAerial's road paint


@dataclasses.dataclass(frozen=True)
class BackgroundPool:
    """Backgrounds with a scene group each.

    Attributes:
      images: (P, H, W, 3) uint8.
      groups: (P,) int32 index into `group_names`.
      group_names: the groups' names.
      sources: (P,) where each background came from (file path or generator).
      objects: (P, K) bool, which of SynthAerial's K `CONCEPTS` each
        background truly shows, or None where unknown (photos, textures).
    """

    images: np.ndarray
    groups: np.ndarray
    group_names: tuple[str, ...]
    sources: tuple[str, ...]
    objects: np.ndarray | None = None

    def take(self, rows) -> "BackgroundPool":
        """The backgrounds at `rows` (int indices), groups unchanged."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        return dataclasses.replace(
            self, images=self.images[rows], groups=self.groups[rows],
            sources=tuple(self.sources[i] for i in rows),
            objects=None if self.objects is None else self.objects[rows],
        )  # fmt: skip

    def select(self, group: str) -> "BackgroundPool":
        """The backgrounds of one group (ValueError naming an unknown group)."""
        if group not in self.group_names:
            raise ValueError(f"group {group!r} not in {self.group_names}")
        return self.take(np.flatnonzero(self.groups == self.group_names.index(group)))


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _check_groups(groups, known, arg="groups") -> tuple[str, ...]:
    groups = tuple(groups)
    bad = [g for g in groups if g not in known]
    if bad or not groups:
        raise ValueError(f"{arg} must be non-empty names from {known}, got {bad}")
    return groups


@functools.lru_cache(maxsize=1)
def _scenes_by_group() -> dict[str, tuple[int, ...]]:
    """Scene indices per dominant texture family (fixed per scene layout)."""
    out = {g: [] for g in SCENE_GROUPS}
    for i, spec in enumerate(SCENE_SPECS):
        primary = spec.layout(np.random.default_rng(0), 32).primary
        out[SCENE_GROUPS[primary]].append(i)
    return {g: tuple(v) for g, v in out.items()}


def _layout_background(seed: int, group: str, i: int, size: int):
    """Background i of `group`: a scene layout of that dominant family
    rendered without objects, and its source name."""
    scenes = _scenes_by_group()[group]
    rng = np.random.default_rng([seed, SCENE_GROUPS.index(group), i])
    spec = SCENE_SPECS[scenes[rng.integers(len(scenes))]]
    layout = spec.layout(rng, size)
    rgb = render_background(rng, layout.bg_map)
    rgb[layout.marks] = _MARK_RGB
    return _to_uint8(rgb), f"synthaerial:{spec.name}:{seed}:{i}"


def synthaerial_pool(
    n_per_group: int, *, size: int = 128, seed: int = 0, groups=SCENE_GROUPS
) -> BackgroundPool:
    """SynthAerial scene backgrounds without objects, `n_per_group` per group.

    Each background is a random scene whose dominant texture family is the
    group, rendered as SynthAerial renders it before placing objects (texture
    regions, roads, road paint). Background (group g, i) depends only on
    (seed, g, i).

    Args:
      n_per_group: backgrounds per group (>= 1).
      size: side in pixels (>= 16).
      seed: pool seed.
      groups: a subset of `SCENE_GROUPS`.
    """
    groups = _check_groups(groups, SCENE_GROUPS)
    if int(n_per_group) < 1 or int(size) < 16:
        raise ValueError(f"need n_per_group >= 1 and size >= 16, got "
                         f"{n_per_group}, {size}")  # fmt: skip
    images, labels, sources = [], [], []
    for g, name in enumerate(groups):
        for i in range(int(n_per_group)):
            img, src = _layout_background(seed, name, i, int(size))
            images.append(img)
            labels.append(g)
            sources.append(src)
    return BackgroundPool(np.stack(images), np.asarray(labels, np.int32), groups,
                          tuple(sources))  # fmt: skip


def synthaerial_scene_pool(
    n_per_group: int,
    *,
    size: int = 128,
    seed: int = 0,
    groups=SCENE_GROUPS,
    scene_fraction: float = 1.0,
) -> BackgroundPool:
    """SynthAerial scenes with their objects, `n_per_group` per group.

    Scene photos (Places205 in the paper) may show the concept itself; these
    backgrounds do the same on purpose (boats in harbours, cars on freeways),
    and `objects` records the truth, so a background filter can be scored.
    Background (g, i) is, with probability `scene_fraction` (a draw fixed by
    (seed, g, i)), a whole scene: image ``g * 1_000_000 + i`` of the
    SynthAerial stream of `seed` restricted to the scene classes whose
    dominant family is g; otherwise it is `synthaerial_pool`'s background
    (g, i), without objects. A fraction below 1 keeps every group fillable
    after filtering: every urban scene has cars.

    Args:
      n_per_group: backgrounds per group (>= 1).
      size: side in pixels (>= 16).
      seed: seed of the scenes and of the draws.
      groups: a subset of `SCENE_GROUPS`.
      scene_fraction: probability in [0, 1] that a background is a whole scene.
    """
    groups = _check_groups(groups, SCENE_GROUPS)
    if int(n_per_group) < 1 or int(size) < 16 or not 0 <= scene_fraction <= 1:
        raise ValueError(f"need n_per_group >= 1, size >= 16 and scene_fraction in "
                         f"[0, 1], got {n_per_group}, {size}, {scene_fraction}")  # fmt: skip
    n, size, k = int(n_per_group), int(size), len(synthaerial.CONCEPTS)
    images, labels, objects, sources = [], [], [], []
    for g, name in enumerate(groups):
        gi = SCENE_GROUPS.index(name)
        whole = np.random.default_rng([seed, gi, 7]).random(n) < scene_fraction
        scenes = tuple(SCENE_SPECS[j].name for j in _scenes_by_group()[name])
        for i in range(n):
            if whole[i]:
                d = synthaerial.generate(1, size=size, seed=int(seed),
                                         start=gi * 1_000_000 + i, scenes=scenes)  # fmt: skip
                img, obj = d["image"][0], d["objects_present"][0].astype(bool)
                src = f"synthaerial-scene:{seed}:{gi * 1_000_000 + i}"
            else:
                (img, src), obj = (
                    _layout_background(seed, name, i, size),
                    np.zeros(k, bool),
                )
            images.append(img)
            objects.append(obj)
            labels.append(g)
            sources.append(src)
    return BackgroundPool(np.stack(images), np.asarray(labels, np.int32), groups,
                          tuple(sources), np.stack(objects))  # fmt: skip


def synthetic_pool(
    n_per_kind: int, *, size: int = 128, seed: int = 0, kinds=(NOISE,) + BACKGROUNDS
) -> BackgroundPool:
    """Procedural backgrounds: uniform RGB noise and pure texture families.

    Args:
      n_per_kind: backgrounds per kind (>= 1).
      size: side in pixels.
      seed: pool seed; background (kind k, i) depends only on (seed, k, i).
      kinds: names from ("uniform_noise",) + SynthAerial's texture families.
    """
    known = (NOISE,) + BACKGROUNDS
    kinds = _check_groups(kinds, known, "kinds")
    if int(n_per_kind) < 1 or int(size) < 1:
        raise ValueError(f"need n_per_kind >= 1 and size >= 1, got "
                         f"{n_per_kind}, {size}")  # fmt: skip
    images, labels, sources = [], [], []
    for g, name in enumerate(kinds):
        for i in range(int(n_per_kind)):
            rng = np.random.default_rng([seed, known.index(name), i, 1])
            if name == NOISE:
                img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            else:
                img = _to_uint8(TEXTURES[BACKGROUNDS.index(name)](rng, size, size))
            images.append(img)
            labels.append(g)
            sources.append(f"synthetic:{name}:{seed}:{i}")
    return BackgroundPool(np.stack(images), np.asarray(labels, np.int32), kinds,
                          tuple(sources))  # fmt: skip
