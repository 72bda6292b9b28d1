"""Background pools from a Places205-style folder of scene photos.

`load_places_folder` reads ``<root>/<category>/<file>.jpg`` grouped by a JSON
table ``{group: [category, ...]}`` (the reference code's `PLACES_SUBSETS`
form) and resizes each photo with `paste.fit_background`.

References:
  Schwalbe et al., arXiv 2504.08602, §7.2 of spec concepts.md.
"""

import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

from jaxcxai.concepts.background import paste
from jaxcxai.concepts.background.pools import BackgroundPool

__all__ = ["load_places_folder"]

_EXTENSIONS = (".jpg", ".jpeg")


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
