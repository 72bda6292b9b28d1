"""PASCAL VOC 2012 segmentation masks (`SegmentationClass/*.png`).

The masks are palette ("P") PNGs whose pixel values are class indices:
0 = background, 1..20 = the classes of `VOC_CLASSES`, 255 = void (object
boundaries and difficult regions, excluded from every class).
"""

import os

import numpy as np
from PIL import Image

__all__ = [
    "VOC_CLASSES",
    "VOID",
    "class_binary_masks",
    "read_class_mask",
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


def read_class_mask(path: str) -> np.ndarray:
    """(H, W) uint8 class-index mask of one VOC segmentation PNG.

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: the image is not single-channel ("P" or "L"); an RGB
        rendering loses the indices and must be converted first.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"VOC mask not found: {path}")
    with Image.open(path) as img:
        if img.mode not in ("P", "L"):
            raise ValueError(
                f"{path}: mode {img.mode!r}; VOC class masks are palette ('P') "
                "images whose values are class indices"
            )
        return np.asarray(img, dtype=np.uint8).copy()


def write_class_mask(path: str, mask: np.ndarray) -> None:
    """Writes a (H, W) class-index mask as a VOC-palette PNG, atomically."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.min(initial=0) < 0 or mask.max(initial=0) > 255:
        raise ValueError(f"mask must be 2-D with values in 0..255, got {mask.shape}")
    height, width = mask.shape
    img = Image.frombytes("P", (width, height), mask.astype(np.uint8).tobytes())
    img.putpalette(voc_palette().reshape(-1).tolist())
    tmp = f"{path}.tmp{os.getpid()}.png"
    img.save(tmp)
    os.replace(tmp, path)


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
    if not os.path.isfile(path):
        raise FileNotFoundError(f"VOC split file not found: {path}")
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]
