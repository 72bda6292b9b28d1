"""COCO instance annotations -> per-category concept masks (concepts.md §1.3).

Mask of (image, category) = union of the instance masks of that category,
decoded from polygons, uncompressed RLE or compressed RLE (crowd included).
Two noisy-mask variants use non-crowd instances only: "rectangle" (union of
the bounding boxes) and "ellipse" (union of the ellipses inscribed in them).

Pixel convention: pixel (row r, col c) covers [c, c+1) x [r, r+1) in COCO's
continuous coordinates and is sampled at its center (c + 0.5, r + 0.5).
Polygons use the even-odd rule with half-open edges, so an axis-aligned
square from (x0, y0) to (x1, y1) with integer corners covers exactly
(x1-x0)*(y1-y0) pixels; bounding boxes `[x, y, w, h]` cover centers in
[x, x+w) x [y, y+h); ellipses cover centers with
((cx - x - w/2) / (w/2))^2 + ((cy - y - h/2) / (h/2))^2 <= 1. pycocotools
rasterizes polygons on a 5x supersampled grid instead, so boundary pixels can
differ from it by one pixel.
"""

import dataclasses
import json
import os

import numpy as np

from jaxcxai.data.coco_rle import rle_to_mask

__all__ = [
    "CocoAnnotations",
    "annotation_mask",
    "category_ids",
    "category_masks",
    "images_with_category",
    "load_coco",
    "polygon_mask",
]

MASK_VARIANTS = ("exact", "rectangle", "ellipse")


@dataclasses.dataclass(frozen=True)
class CocoAnnotations:
    """Index over a COCO instances JSON.

    Attributes:
      images: image id -> image record (`file_name`, `height`, `width`, ...).
      categories: category id -> name.
      anns_by_image: image id -> list of annotation records.
    """

    images: dict[int, dict]
    categories: dict[int, str]
    anns_by_image: dict[int, list[dict]]


def load_coco(path: str) -> CocoAnnotations:
    """Reads a COCO instances JSON (`images`, `annotations`, `categories`)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(f"{path}: missing top-level key {key!r}")
    images = {int(im["id"]): im for im in data["images"]}
    anns: dict[int, list[dict]] = {i: [] for i in images}
    for ann in data["annotations"]:
        image_id = int(ann["image_id"])
        if image_id not in anns:
            raise ValueError(
                f"{path}: annotation {ann.get('id')} names unknown image {image_id}"
            )
        anns[image_id].append(ann)
    categories = {int(c["id"]): c["name"] for c in data["categories"]}
    return CocoAnnotations(images, categories, anns)


def category_ids(coco: CocoAnnotations, names) -> list[int]:
    """Category ids for `names`, in the given order.

    Raises:
      KeyError: a name is unknown; the message lists the valid names.
    """
    by_name = {name: cid for cid, name in coco.categories.items()}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise KeyError(f"unknown COCO categories {unknown}; known: {sorted(by_name)}")
    return [by_name[n] for n in names]


def images_with_category(
    coco: CocoAnnotations, category_id: int, limit: int | None = 500
) -> list[int]:
    """Ids of images containing `category_id`, sorted by file name, first `limit`.

    This is the LoCE selection: the first 500 file names (sorted) among the
    images that contain the category.
    """
    if category_id not in coco.categories:
        raise KeyError(f"unknown category id {category_id}")
    ids = [
        i
        for i, anns in coco.anns_by_image.items()
        if any(a["category_id"] == category_id for a in anns)
    ]
    ids.sort(key=lambda i: coco.images[i]["file_name"])
    return ids if limit is None else ids[:limit]


def polygon_mask(polygon, height: int, width: int) -> np.ndarray:
    """Rasterizes one polygon `[x0, y0, x1, y1, ...]` to a (H, W) bool mask.

    Even-odd rule at pixel centers (module docstring). A scanline fill: each
    edge toggles the parity of all pixels right of its crossing with the row
    center, which is vectorized as a scatter-add plus a cumulative sum.
    """
    flat = np.asarray(polygon, np.float64).reshape(-1)
    if flat.size % 2:
        raise ValueError(f"polygon needs x, y pairs, got {flat.size} coordinates")
    pts = flat.reshape(-1, 2)
    if pts.shape[0] < 3:
        return np.zeros((height, width), bool)
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    yc = np.arange(height) + 0.5
    # Half-open in y (min <= yc < max) so a vertex on a scanline counts once.
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    hit = (lo[None, :] <= yc[:, None]) & (yc[:, None] < hi[None, :])  # (H, E)
    rows, edges = np.nonzero(hit)
    t = (yc[rows] - y0[edges]) / (y1[edges] - y0[edges])
    xs = x0[edges] + t * (x1[edges] - x0[edges])
    # The crossing toggles pixel c when its center c + 0.5 >= x.
    first = np.clip(np.ceil(xs - 0.5), 0, width).astype(np.int64)
    toggles = np.zeros((height, width + 1), np.int32)
    np.add.at(toggles, (rows, first), 1)
    return (np.cumsum(toggles[:, :width], axis=1) % 2).astype(bool)


def _bbox_mask(bbox, height: int, width: int, ellipse: bool) -> np.ndarray:
    x, y, w, h = (float(v) for v in bbox)
    xc = np.arange(width) + 0.5
    yc = np.arange(height) + 0.5
    if w <= 0 or h <= 0:
        return np.zeros((height, width), bool)
    if not ellipse:
        in_x = (x <= xc) & (xc < x + w)
        in_y = (y <= yc) & (yc < y + h)
        return in_y[:, None] & in_x[None, :]
    dx = (xc - (x + w / 2)) / (w / 2)
    dy = (yc - (y + h / 2)) / (h / 2)
    return dy[:, None] ** 2 + dx[None, :] ** 2 <= 1.0


def annotation_mask(ann: dict, height: int, width: int) -> np.ndarray:
    """Exact (H, W) bool mask of one instance annotation.

    `segmentation` is a list of polygons (their union, as COCO merges the
    parts of one instance), or an RLE dict with list or string `counts`.
    """
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        mask = np.zeros((height, width), bool)
        for poly in seg:
            mask |= polygon_mask(poly, height, width)
        return mask
    if isinstance(seg, dict):
        mask = rle_to_mask(seg)
        if mask.shape != (height, width):
            raise ValueError(
                f"annotation {ann.get('id')}: RLE size {list(mask.shape)} differs "
                f"from the image size {[height, width]}"
            )
        return mask
    raise ValueError(
        f"annotation {ann.get('id')}: unsupported segmentation {seg!r:.80}"
    )


def category_masks(
    coco: CocoAnnotations,
    image_id: int,
    category_ids=None,
    variant: str = "exact",
) -> dict[int, np.ndarray]:
    """Per-category union masks of one image at the image size.

    Args:
      coco: the loaded annotations.
      image_id: the image.
      category_ids: categories to return (default: all present in the
        image); a requested category absent from the image gets an empty mask.
      variant: "exact" (all instances, crowd included), "rectangle" or
        "ellipse" (non-crowd instances only, from their `bbox`).

    Returns:
      Dict category id -> (H, W) bool mask.
    """
    if variant not in MASK_VARIANTS:
        raise ValueError(
            f"unknown mask variant {variant!r}; use one of {MASK_VARIANTS}"
        )
    if image_id not in coco.images:
        raise KeyError(f"unknown image id {image_id}")
    image = coco.images[image_id]
    height, width = int(image["height"]), int(image["width"])
    anns = coco.anns_by_image[image_id]
    if category_ids is None:
        category_ids = sorted({a["category_id"] for a in anns})
    unknown = [c for c in category_ids if c not in coco.categories]
    if unknown:
        raise KeyError(
            f"unknown category ids {unknown}; known: {sorted(coco.categories)}"
        )
    masks = {c: np.zeros((height, width), bool) for c in category_ids}
    for ann in anns:
        cid = ann["category_id"]
        if cid not in masks:
            continue
        if variant == "exact":
            masks[cid] |= annotation_mask(ann, height, width)
        elif not ann.get("iscrowd", 0):
            masks[cid] |= _bbox_mask(ann["bbox"], height, width, variant == "ellipse")
    return masks
