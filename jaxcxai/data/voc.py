"""PASCAL VOC 2012 segmentation masks (`SegmentationClass/*.png`).

The masks are palette ("P") PNGs whose pixel values are class indices:
0 = background, 1..20 = the classes of `VOC_CLASSES`, 255 = void (object
boundaries and difficult regions, excluded from every class).

Malformed files raise `DataFormatError` naming the file: truncated or corrupt
PNGs, masks that are not single-channel, class values outside 0..20 and 255,
and a mask whose size differs from its photo (`read_image_and_mask`).
"""

import os

import numpy as np
from PIL import Image

from jaxcxai.atomic_files import atomic_write
from jaxcxai.data.validate import DataFormatError, decode_image, read_text

__all__ = [
    "VOC_CLASSES",
    "VOID",
    "class_binary_masks",
    "read_class_mask",
    "read_image_and_mask",
    "read_split_ids",
    "voc_palette",
    "write_class_mask",
]

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
VOID = 255


def voc_palette() -> np.ndarray:
    """(256, 3) uint8 VOC colour map.

    Index i gets its colour from its bits: bit 3k+0/1/2 of i goes to bit
    7-k of red/green/blue (so 1 = dark red, 2 = dark green, 255 = cream).
    """
    idx = np.arange(256)
    cmap = np.zeros((256, 3), np.int64)
    for k in range(8):
        for ch in range(3):
            cmap[:, ch] |= ((idx >> (3 * k + ch)) & 1) << (7 - k)
    return cmap.astype(np.uint8)


def read_class_mask(path: str, num_classes: int = len(VOC_CLASSES)) -> np.ndarray:
    """(H, W) uint8 class-index mask of one VOC segmentation PNG.

    Args:
      path: the PNG.
      num_classes: valid values are 0..num_classes-1 and `VOID`.

    Raises:
      FileNotFoundError: `path` does not exist.
      DataFormatError: truncated or corrupt PNG; an image that is not
        single-channel ("P" or "L"; an RGB rendering loses the indices and
        must be converted first); values that are no class index.
    """

    def to_indices(img: Image.Image) -> np.ndarray:
        if img.mode not in ("P", "L"):
            raise DataFormatError(
                path, f"mode {img.mode!r}; VOC class masks are palette ('P') "
                "images whose values are class indices"
            )  # fmt: skip
        return np.asarray(img, dtype=np.uint8).copy()

    mask = decode_image(path, "VOC mask", to_indices)
    bad = (mask >= num_classes) & (mask != VOID)
    if bad.any():
        raise DataFormatError(
            path, f"{int(bad.sum())} pixels hold values {np.unique(mask[bad])[:8]} "
            f"that are neither a class index 0..{num_classes - 1} nor void {VOID}"
        )  # fmt: skip
    return mask


def read_image_and_mask(root: str, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Photo `JPEGImages/{id}.jpg` and mask `SegmentationClass/{id}.png`.

    Returns:
      `(rgb, mask)`: (H, W, 3) uint8 pixels and (H, W) uint8 class indices.

    Raises:
      FileNotFoundError: a file is missing.
      DataFormatError: a truncated or corrupt file, or a mask whose size
        differs from the photo's (names both files and sizes).
    """
    mask_path = os.path.join(root, "SegmentationClass", f"{image_id}.png")
    image_path = os.path.join(root, "JPEGImages", f"{image_id}.jpg")
    mask = read_class_mask(mask_path)
    rgb = decode_image(
        image_path, "VOC image", lambda im: np.asarray(im.convert("RGB"))
    )
    if rgb.shape[:2] != mask.shape:
        raise DataFormatError(
            mask_path, f"mask is {mask.shape[0]}x{mask.shape[1]} (height x width) "
            f"but the image {image_path} is {rgb.shape[0]}x{rgb.shape[1]}"
        )  # fmt: skip
    return rgb, mask


def write_class_mask(path: str, mask: np.ndarray) -> None:
    """Writes a (H, W) class-index mask as a VOC-palette PNG, atomically."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.min(initial=0) < 0 or mask.max(initial=0) > 255:
        raise ValueError(f"mask must be 2-D with values in 0..255, got {mask.shape}")
    height, width = mask.shape
    img = Image.frombytes("P", (width, height), mask.astype(np.uint8).tobytes())
    img.putpalette(voc_palette().reshape(-1).tolist())
    atomic_write(path, lambda f: img.save(f, format="PNG"))


def class_binary_masks(
    index_mask: np.ndarray, classes=None, void_value: int = VOID
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class binary masks from a class-index mask.

    Args:
      index_mask: (H, W) integer class indices.
      classes: class indices or names (from `VOC_CLASSES`) to return;
        default: 1..20 (all but background).
      void_value: the void index; void pixels belong to no class.

    Returns:
      `(masks, void)`: (C, H, W) bool per requested class and (H, W) bool.
    """
    index_mask = np.asarray(index_mask)
    if index_mask.ndim != 2:
        raise ValueError(f"index mask must be 2-D (H, W), got {index_mask.shape}")
    if classes is None:
        classes = range(1, len(VOC_CLASSES))
    ids = []
    for c in classes:
        if isinstance(c, str):
            if c not in VOC_CLASSES:
                raise KeyError(f"unknown VOC class {c!r}; known: {list(VOC_CLASSES)}")
            c = VOC_CLASSES.index(c)
        ids.append(int(c))
    ids = np.asarray(ids, np.int64)
    masks = index_mask[None, :, :] == ids[:, None, None]
    return masks, index_mask == void_value


def read_split_ids(root: str, split: str = "train") -> list[str]:
    """Image ids of `ImageSets/Segmentation/{split}.txt` under a VOC root."""
    path = os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt")
    text = read_text(path, "VOC split file")
    return [line.strip() for line in text.splitlines() if line.strip()]
