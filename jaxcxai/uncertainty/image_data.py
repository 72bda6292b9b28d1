"""The image sets of the image experiment (E8) and their split.

Mikriukov, Montavon & Hoehne (arXiv:2603.29915, section 5; reference code
comrados/uq-xai `experiments_images/`) split each image set 70/15/15 within
each class; `image.train_cnn` and `image.image_experiment` take the
`ImageSplits` returned here.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from jaxcxai.data import classic

__all__ = ["ImageSplits", "load_images"]


@dataclasses.dataclass(frozen=True)
class ImageSplits:
    """Train/val/test images (N, H, W, C) float32 in [-1, 1], labels int32."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    name: str


def _fashion(root: str) -> tuple[np.ndarray, np.ndarray]:
    for name in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3",
                 "t10k-labels-idx1"):  # fmt: skip
        if not os.path.exists(path := os.path.join(root, f"{name}-ubyte.gz")):
            raise FileNotFoundError(
                f"Fashion-MNIST file {path} not found; install the Debian "
                "package dataset-fashion-mnist or pass root="
            )
    (xa, ya), (xb, yb) = (
        classic.load_fashion_mnist(s, root) for s in ("train", "test")
    )
    return np.concatenate([xa, xb]), np.concatenate([ya, yb])


def load_images(
    source: str = "digits",
    *,
    seed: int = 42,
    root: str | None = None,
    max_per_class: int | None = None,
) -> ImageSplits:
    """An image set split 70/15/15 within each class (the paper's protocol).

    Each class is shuffled (`np.random.default_rng(seed)`) and cut at
    int(0.7 n) and int(0.7 n) + int(0.15 n), as the reference; each split is
    then shuffled, so `x_test[:100]` are "100 shuffled test images".

    Args:
      source: "digits" (scikit-learn, 1797 images 8x8x1) or "fashion_mnist"
        (70 000 images 28x28x1, train and test files pooled).
      seed: the split seed (42).
      root: Fashion-MNIST folder (default: the Debian package's).
      max_per_class: keep at most this many images per class.

    Returns:
      `ImageSplits` scaled to [-1, 1].

    Raises:
      FileNotFoundError: a Fashion-MNIST file is absent (names it).
    """
    if source == "digits":
        x, y = classic.load_sklearn_images("digits")
        names = tuple(str(k) for k in range(10))
    elif source == "fashion_mnist":
        x, y = _fashion(root or classic.FASHION_MNIST_DIR)
        names = classic.FASHION_MNIST_CLASSES
    else:
        raise ValueError(f"source must be 'digits' or 'fashion_mnist', got {source!r}")
    rng = np.random.default_rng(seed)
    cuts = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))[:max_per_class]
        n_tr, n_va = int(0.7 * len(idx)), int(0.15 * len(idx))
        cuts.append(np.split(idx, [n_tr, n_tr + n_va]))
    out = []
    for part in zip(*cuts):  # train, val, test
        idx = rng.permutation(np.concatenate(part))
        out += [(2.0 * x[idx] - 1.0).astype(np.float32), y[idx].astype(np.int32)]
    return ImageSplits(*out, class_names=tuple(names), name=source)
