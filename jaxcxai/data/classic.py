"""Small classic image sets: Fashion-MNIST IDX files and scikit-learn's bundle.

IDX format (LeCun's MNIST page): a 4-byte magic `0x00 0x00 <type> <ndim>`,
then `ndim` big-endian uint32 dimensions, then the values big-endian in C
order. Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64. Files may be gzip-compressed (`.gz`).

Every loader returns `(images, labels)`: images (N, H, W, C) float32 in
[0, 1] (NHWC, as the Flax models take them) and labels (N,) int32.

A malformed IDX file (bad magic, unknown type, header or payload cut short,
corrupt gzip stream, images that are not uint8, labels outside 0..9 or a
count that differs from the images') raises `DataFormatError` naming the file.
"""

import gzip
import math
import os
import zlib

import numpy as np

from jaxcxai.atomic_files import atomic_write
from jaxcxai.data.validate import DataFormatError

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "load_fashion_mnist",
    "load_sklearn_images",
    "read_idx",
    "write_idx",
]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_IDX_TYPES = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def _open(path: str, mode: str, compress: bool):
    return gzip.open(path, mode) if compress else open(path, mode)


def read_idx(path: str) -> np.ndarray:
    """Reads an IDX file (optionally `.gz`) into a native-endian array.

    Raises:
      FileNotFoundError: `path` does not exist.
      DataFormatError: corrupt or truncated gzip stream, bad magic, unknown
        type code, a header cut short, or a payload whose size does not match
        the header's dimensions.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"IDX file not found: {path}")
    try:
        with _open(path, "rb", path.endswith(".gz")) as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError.
        raise DataFormatError(
            path, f"corrupt or truncated gzip stream ({type(e).__name__}: {e})"
        ) from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataFormatError(path, f"not an IDX file (magic {raw[:4].hex()})")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise DataFormatError(path, f"unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(
            path, f"header of {ndim} dimensions needs {header} bytes, file has "
            f"{len(raw)}"
        )  # fmt: skip
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], ">u4"))
    dtype = np.dtype(_IDX_TYPES[code])
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        cut = "truncated: " if len(raw) - header < expected else ""
        raise DataFormatError(
            path, f"{cut}header shape {shape} needs {expected} bytes of data, "
            f"found {len(raw) - header}"
        )  # fmt: skip
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str, array: np.ndarray) -> None:
    """Writes `array` as an IDX file (gzip if `path` ends in `.gz`), atomically."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, codes[native], array.ndim])
    header += np.asarray(array.shape, ">u4").tobytes()
    body = array.astype(array.dtype.newbyteorder(">")).tobytes()

    def write(f):
        if path.endswith(".gz"):
            with gzip.GzipFile(fileobj=f, mode="wb") as z:
                z.write(header + body)
        else:
            f.write(header + body)

    atomic_write(path, write)


def load_fashion_mnist(
    split: str = "train", root: str = FASHION_MNIST_DIR
) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST from its IDX gz files (Debian `dataset-fashion-mnist`).

    Args:
      split: "train" (60 000) or "test" (10 000).
      root: folder with `{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`.

    Returns:
      images (N, 28, 28, 1) float32 in [0, 1], labels (N,) int32.

    Raises:
      FileNotFoundError: a file is missing.
      DataFormatError: a malformed file (see `read_idx`), images that are not
        (N, H, W) uint8, or labels that do not match them or lie outside 0..9.
    """
    prefixes = {"train": "train", "test": "t10k"}
    if split not in prefixes:
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    pre = os.path.join(root, prefixes[split])
    image_path = f"{pre}-images-idx3-ubyte.gz"
    label_path = f"{pre}-labels-idx1-ubyte.gz"
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataFormatError(
            image_path, f"images must be (N, H, W) uint8, got {images.shape} "
            f"{images.dtype}"
        )  # fmt: skip
    if labels.ndim != 1 or len(images) != len(labels):
        raise DataFormatError(
            label_path, f"labels {labels.shape} do not match the {len(images)} "
            f"images of {image_path}"
        )  # fmt: skip
    bad = (labels < 0) | (labels >= len(FASHION_MNIST_CLASSES))
    if bad.any():
        raise DataFormatError(
            label_path, f"{int(bad.sum())} labels outside 0..9, e.g. "
            f"{labels[bad][:3].tolist()}"
        )  # fmt: skip
    images = images[..., None].astype(np.float32) / np.float32(255)
    return images, labels.astype(np.int32)


def load_sklearn_images(name: str = "digits") -> tuple[np.ndarray, np.ndarray]:
    """Image sets bundled with scikit-learn (no download).

    Args:
      name: "digits" (1797 images 8x8x1, values 0..16, 10 classes) or
        "sample_images" (china.jpg and flower.jpg, 427x640x3; label = index).

    Returns:
      images (N, H, W, C) float32 in [0, 1], labels (N,) int32.
    """
    import sklearn.datasets as skd  # imported lazily: ~1 s import time

    if name == "digits":
        d = skd.load_digits()
        images = (d.images / 16.0).astype(np.float32)[..., None]
        return images, d.target.astype(np.int32)
    if name == "sample_images":
        d = skd.load_sample_images()
        images = np.stack(d.images).astype(np.float32) / np.float32(255)
        return images, np.arange(len(d.images), dtype=np.int32)
    raise ValueError(
        f"unknown scikit-learn image set {name!r}; use 'digits' or 'sample_images'"
    )
