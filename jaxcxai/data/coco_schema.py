"""Validation of a COCO instances JSON: record types, references and geometry.

Every record is checked once at load time, so mask code downstream can trust
it: image records need an int ``id``, a ``file_name`` and positive int
``height``/``width``; categories an int ``id`` and a ``name`` (both unique);
annotations an int ``image_id`` and ``category_id`` that exist, a ``bbox`` of
four finite numbers with non-negative size, and a ``segmentation`` that is a
list of polygons (even-length lists of finite numbers) or an RLE dict whose
``size`` equals its image's recorded size. Failures are
:class:`~jaxcxai.data.validate.DataFormatError` naming the file and the record.

Geometry reaching outside ``[0, width] x [0, height]`` is not an error: masks
are rasterised at the pixel centres inside the image and boxes are intersected
with it, so it is clipped; :func:`parse_coco` returns the ids of such
annotations so the loader can warn with their count.
"""

import math
from typing import Any

from jaxcxai.data.validate import DataFormatError, field, read_json

__all__ = ["check_image_size", "parse_coco"]


def _image(rec: Any, i: int, path: str) -> tuple[int, dict]:
    where = f"images[{i}]"
    image_id = field(rec, "id", "int", path, where)
    field(rec, "file_name", "str", path, where)
    for key in ("height", "width"):
        if field(rec, key, "int", path, where) <= 0:
            raise DataFormatError(path, f"{where} (id {image_id}): {key} must be > 0")
    return image_id, rec


def _numbers(values: list) -> bool:
    """All finite JSON numbers (no bools, strings or NaN literals)."""
    # map() keeps this fast on the ~10^7 coordinates of COCO train.
    return set(map(type, values)) <= {int, float} and all(map(math.isfinite, values))


def _polygons(seg: list, where: str, path: str) -> None:
    for j, poly in enumerate(seg):
        if not (isinstance(poly, list) and len(poly) % 2 == 0 and _numbers(poly)):
            raise DataFormatError(
                path, f"{where}: polygon {j} is not an even-length list of finite "
                f"numbers: {poly!r:.60}"
            )  # fmt: skip


def _rle(seg: dict, where: str, path: str, image: dict) -> None:
    size = field(seg, "size", "list", path, f"{where} RLE")
    counts = seg.get("counts")
    if not isinstance(counts, (str, list)):
        raise DataFormatError(path, f"{where}: RLE counts must be a list or string")
    if size != [image["height"], image["width"]]:
        raise DataFormatError(
            path, f"{where}: RLE size {size!r:.40} (height, width) differs from the "
            f"image record {[image['height'], image['width']]} of image {image['id']}"
        )  # fmt: skip


def _outside(ann: dict, image: dict) -> bool:
    """Whether the bbox or a polygon vertex leaves [0, width] x [0, height]."""
    height, width = image["height"], image["width"]
    x, y, w, h = ann["bbox"]
    if x < 0 or y < 0 or x + w > width or y + h > height:
        return True
    seg = ann["segmentation"]
    for poly in seg if isinstance(seg, list) else []:
        xs, ys = poly[0::2], poly[1::2]
        if xs and (min(xs) < 0 or max(xs) > width or min(ys) < 0 or max(ys) > height):
            return True
    return False


def _annotation(rec: Any, i: int, path: str, images: dict, categories: dict):
    where = f"annotations[{i}]"
    ann_id = field(rec, "id", "int", path, where, default=None)
    where = f"{where} (id {ann_id})" if ann_id is not None else where
    image_id = field(rec, "image_id", "int", path, where)
    if image_id not in images:
        raise DataFormatError(path, f"{where}: names unknown image {image_id}")
    if field(rec, "category_id", "int", path, where) not in categories:
        raise DataFormatError(
            path, f"{where}: names unknown category {rec['category_id']}"
        )
    if field(rec, "iscrowd", "int", path, where, default=0) not in (0, 1):
        raise DataFormatError(path, f"{where}: iscrowd must be 0 or 1")
    bbox = field(rec, "bbox", "list", path, where)
    if len(bbox) != 4 or not _numbers(bbox) or bbox[2] < 0 or bbox[3] < 0:
        raise DataFormatError(
            path, f"{where}: bbox {bbox!r:.60} is not [x, y, w >= 0, h >= 0]"
        )
    seg = rec.get("segmentation")
    if isinstance(seg, list):
        _polygons(seg, where, path)
    elif isinstance(seg, dict):
        _rle(seg, where, path, images[image_id])
    else:
        raise DataFormatError(
            path, f"{where}: segmentation must be a polygon list or an RLE dict, "
            f"got {type(seg).__name__}"
        )  # fmt: skip
    return image_id, rec


def parse_coco(path: str):
    """Reads and validates a COCO instances JSON (see the module docstring).

    Returns:
      ``(images, categories, anns_by_image, clipped)``: image id -> record,
      category id -> name, image id -> annotation records, and the indices
      (positions in ``annotations``) of annotations reaching outside their image.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      DataFormatError: truncated/invalid JSON, non-UTF-8 text, a missing key, a
        wrong type, a duplicate id, a dangling reference or an RLE whose size
        differs from its image record.
    """
    data = read_json(path, "COCO annotation file")
    for key in ("images", "annotations", "categories"):
        field(data, key, "list", path, "top level")
    images: dict[int, dict] = {}
    for i, rec in enumerate(data["images"]):
        image_id, rec = _image(rec, i, path)
        if images.setdefault(image_id, rec) is not rec:
            raise DataFormatError(path, f"images[{i}]: duplicate image id {image_id}")
    categories: dict[int, str] = {}
    for i, rec in enumerate(data["categories"]):
        cid = field(rec, "id", "int", path, f"categories[{i}]")
        name = field(rec, "name", "str", path, f"categories[{i}]")
        if cid in categories or name in categories.values():
            raise DataFormatError(
                path, f"categories[{i}]: duplicate category id {cid} or name {name!r}"
            )
        categories[cid] = name
    anns: dict[int, list[dict]] = {i: [] for i in images}
    clipped = []
    for i, rec in enumerate(data["annotations"]):
        image_id, ann = _annotation(rec, i, path, images, categories)
        anns[image_id].append(ann)
        if _outside(ann, images[image_id]):
            clipped.append(i)
    return images, categories, anns, tuple(clipped)


def check_image_size(
    annotations: str, image: dict, image_path: str, height: int, width: int
) -> None:
    """The annotation file's recorded size of an image must equal the real one.

    Raises:
      DataFormatError: naming both files and both sizes (path = the image).
    """
    recorded = (image["height"], image["width"])
    if recorded != (height, width):
        raise DataFormatError(
            image_path, f"image is {height}x{width} (height x width) but "
            f"{annotations} records {recorded[0]}x{recorded[1]} for image id "
            f"{image['id']}; masks would be misaligned"
        )  # fmt: skip
