"""Background pools: SynthAerial scenes without objects, procedural, user folders.

A `BackgroundPool` holds (P, H, W, 3) uint8 backgrounds with a scene group per
row, ready for `paste.make_views` (pools are built on the host, once).

* `synthaerial_pool` (the embedded default): SynthAerial scene layouts rendered
  without objects, grouped by the scene's dominant texture family. The groups
  are SynthAerial's 8 families (`SCENE_GROUPS`); `PAPER_GROUPS` maps them to
  the nearest of the paper's Places205 scene groups (a reconstruction: the
  families are aerial textures, not Places scenes).
* `synthetic_pool`: the paper's "synthetic" backgrounds stand-in: uniform
  noise and pure texture families (the paper's diffusion-generated images are
  not available offline).
* `load_places_folder`: a Places205-style folder ``<category>/<file>.jpg``
  grouped by a JSON table ``{group: [category, ...]}`` (the reference code's
  `PLACES_SUBSETS` form), resized with `paste.fit_background`.

References:
  Gesina et al., arXiv 2504.08602, §7.2-7.3 of spec concepts.md.
"""

import dataclasses
import functools
import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

from jaxcxai.concepts.background import paste
from jaxcxai.data.scenes import SCENE_SPECS
from jaxcxai.data.textures import BACKGROUNDS, TEXTURES, render_background

__all__ = [
    "BackgroundPool",
    "NOISE",
    "PAPER_GROUPS",
    "SCENE_GROUPS",
    "load_places_folder",
    "synthaerial_pool",
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
_EXTENSIONS = (".jpg", ".jpeg")


@dataclasses.dataclass(frozen=True)
class BackgroundPool:
    """Backgrounds with a scene group each.

    Attributes:
      images: (P, H, W, 3) uint8.
      groups: (P,) int32 index into `group_names`.
      group_names: the groups' names.
      sources: (P,) where each background came from (file path or generator).
    """

    images: np.ndarray
    groups: np.ndarray
    group_names: tuple[str, ...]
    sources: tuple[str, ...]

    def select(self, group: str) -> "BackgroundPool":
        """The backgrounds of one group (ValueError naming an unknown group)."""
        if group not in self.group_names:
            raise ValueError(f"group {group!r} not in {self.group_names}")
        keep = np.flatnonzero(self.groups == self.group_names.index(group))
        return dataclasses.replace(
            self, images=self.images[keep], groups=self.groups[keep],
            sources=tuple(self.sources[i] for i in keep),
        )  # fmt: skip


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
        scenes = _scenes_by_group()[name]
        for i in range(int(n_per_group)):
            rng = np.random.default_rng([seed, SCENE_GROUPS.index(name), i])
            spec = SCENE_SPECS[scenes[rng.integers(len(scenes))]]
            layout = spec.layout(rng, int(size))
            rgb = render_background(rng, layout.bg_map)
            rgb[layout.marks] = _MARK_RGB
            images.append(_to_uint8(rgb))
            labels.append(g)
            sources.append(f"synthaerial:{spec.name}:{seed}:{i}")
    return BackgroundPool(np.stack(images), np.asarray(labels, np.int32), groups,
                          tuple(sources))  # fmt: skip


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


def _read_table(table) -> dict[str, list[str]]:
    """{group: [category, ...]} from a JSON path or a mapping, validated."""
    where = "table"
    if isinstance(table, str | os.PathLike):
        where = os.fspath(table)
        try:
            with open(where) as f:
                table = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read the group table {where}: {e}") from e
    if not isinstance(table, Mapping) or not table:
        raise ValueError(f"{where} must be a non-empty {{group: [category, ...]}}")
    out, seen = {}, {}
    for group, cats in table.items():
        ok = isinstance(cats, Sequence) and not isinstance(cats, str)
        if not ok or not all(isinstance(c, str) for c in cats) or not cats:
            raise ValueError(f"{where}[{group!r}] must be a non-empty list of "
                             f"category names, got {cats!r}")  # fmt: skip
        for c in cats:
            if c in seen:
                raise ValueError(f"{where}: category {c!r} is in groups "
                                 f"{seen[c]!r} and {group!r}")  # fmt: skip
            seen[c] = group
        out[str(group)] = list(cats)
    return out


def _load_rgb(path: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as e:  # PIL.UnidentifiedImageError is an OSError
        raise ValueError(f"cannot read background image {path}: {e}") from e


def load_places_folder(
    root, table, *, size=(256, 256), resize: str = "cover", max_per_category=None
) -> BackgroundPool:
    """Loads a Places205-style folder ``root/<category>/<file>.jpg`` by group.

    Args:
      root: folder with one sub-folder per category.
      table: JSON file path or mapping ``{group: [category, ...]}``; folders of
        categories not in the table are ignored.
      size: (H, W) of the pool (Places205 images are 256 x 256).
      resize: "cover" or "squash" (see `paste.fit_background`).
      max_per_category: keep the first files (sorted by name) of each category.

    Returns:
      A `BackgroundPool` with groups in table order, files sorted by name.

    Raises:
      FileNotFoundError: the root, or a category of the table, is missing.
      ValueError: a bad table (naming the group / category), an empty
        category folder or an unreadable image (naming the file).
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"background folder root {root!r} does not exist")
    groups = _read_table(table)
    h, w = int(size[0]), int(size[1])
    images, labels, sources = [], [], []
    for g, (group, cats) in enumerate(groups.items()):
        for cat in cats:
            folder = os.path.join(root, cat)
            if not os.path.isdir(folder):
                raise FileNotFoundError(f"category {cat!r} of group {group!r} has "
                                        f"no folder {folder}")  # fmt: skip
            names = sorted(f for f in os.listdir(folder)
                           if f.lower().endswith(_EXTENSIONS))  # fmt: skip
            if not names:
                raise ValueError(f"category folder {folder} holds no .jpg files")
            for name in names[:max_per_category]:
                path = os.path.join(folder, name)
                rgb = paste.fit_background(_load_rgb(path), (h, w), resize=resize)
                images.append(np.asarray(np.clip(np.round(rgb), 0, 255), np.uint8))
                labels.append(g)
                sources.append(path)
    return BackgroundPool(np.stack(images), np.asarray(labels, np.int32),
                          tuple(groups), tuple(sources))  # fmt: skip
