"""COCO instance annotations -> per-category concept masks (as in the LoCE code).

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

Malformed files raise `DataFormatError` naming the file and the record
(validation in `coco_schema`). Geometry reaching outside its image is clipped
to it (polygons by sampling only the pixel centres inside the image, boxes by
intersecting them with the image, so an ellipse is inscribed in the visible
part of its box), and `load_coco` warns once with the count of such
annotations (`ClippedGeometryWarning`). `read_image` checks the recorded image
size against the real file.
"""

import dataclasses
import os
import warnings

import numpy as np

from jaxcxai.data.coco_rle import rle_to_mask
from jaxcxai.data.coco_schema import check_image_size, parse_coco
from jaxcxai.data.validate import ClippedGeometryWarning, DataFormatError, decode_image

__all__ = [
    "CocoAnnotations",
    "annotation_mask",
    "category_ids",
    "category_masks",
    "images_with_category",
    "load_coco",
    "polygon_mask",
    "read_image",
]

MASK_VARIANTS = ("exact", "rectangle", "ellipse")


@dataclasses.dataclass(frozen=True)
class CocoAnnotations:
    """Index over a COCO instances JSON.

    Attributes:
      images: image id -> image record (`file_name`, `height`, `width`, ...).
      categories: category id -> name.
      anns_by_image: image id -> list of annotation records.
      path: the JSON file (named in errors).
      clipped: positions (in the file's `annotations` list) of the
        annotations whose geometry reaches outside their image.
    """

    images: dict[int, dict]
    categories: dict[int, str]
    anns_by_image: dict[int, list[dict]]
    path: str = "COCO annotations"
    clipped: tuple[int, ...] = ()


def load_coco(path: str) -> CocoAnnotations:
    """Reads and validates a COCO instances JSON.

    Warns (`ClippedGeometryWarning`, once, with the count) when annotations
    reach outside their image; their masks are clipped to it.

    Raises:
      FileNotFoundError: `path` does not exist.
      DataFormatError: truncated or invalid JSON, non-UTF-8 text, a missing
        key, a wrong type, a duplicate id or an unknown image/category
        reference (the message names the file and the record).
    """
    images, categories, anns, clipped = parse_coco(path)
    if clipped:
        warnings.warn(
            f"{path}: {len(clipped)} annotation(s) reach outside their image and "
            f"are clipped to it (annotations{list(clipped[:5])}"
            f"{' ...' if len(clipped) > 5 else ''})",
            ClippedGeometryWarning,
            stacklevel=2,
        )
    return CocoAnnotations(images, categories, anns, path, clipped)


def read_image(coco: CocoAnnotations, image_id: int, image_dir: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of one image, checked against its record.

    Raises:
      KeyError: unknown `image_id`.
      FileNotFoundError: the image file is missing.
      DataFormatError: truncated or corrupt image, or a real size that
        differs from the `height`/`width` the annotation file records (the
        message names both files and both sizes).
    """
    if image_id not in coco.images:
        raise KeyError(f"unknown image id {image_id}")
    record = coco.images[image_id]
    path = os.path.join(image_dir, record["file_name"])
    rgb = decode_image(path, "COCO image", lambda im: np.asarray(im.convert("RGB")))
    check_image_size(coco.path, record, path, *rgb.shape[:2])
    return rgb


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
    # Clip the box to the image first (module docstring).
    x0, y0 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x1, y1 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    x, y, w, h = x0, y0, x1 - x0, y1 - y0
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
            try:
                masks[cid] |= annotation_mask(ann, height, width)
            except ValueError as e:  # A corrupt RLE string or run lengths.
                raise DataFormatError(coco.path, str(e)) from e
        elif not ann.get("iscrowd", 0):
            masks[cid] |= _bbox_mask(ann["bbox"], height, width, variant == "ellipse")
    return masks
