"""Input preprocessing for the backbones: resizing (PIL) and normalisation.

``preprocess(name, images)`` maps uint8 images, or floats in [0, 1], of shape
(B, H, W, 3) to what backbone ``name`` was trained on: ImageNet mean/std for the
torchvision-style models, ``(x - 0.5) / 0.5`` for EfficientNet-Lite.

Resolution of the golden predictions (the recorded top-1 classes and
probabilities of the packaged ImageNet weights): they come from a plain resize
of the whole photo to 224x224 with anti-aliasing. scikit-image's
``transform.resize(image, (224, 224))`` reproduces every recorded probability to
two decimals (chelsea, coffee, motorcycle; both models); ``resize(image, 224)``
here (PIL bilinear, which also anti-aliases) is within 0.01 on chelsea and coffee.
The torchvision eval transform ``resize_center_crop`` (shorter side 256, center
crop 224) does *not* reproduce them: EfficientNet-Lite0 gives Egyptian cat 0.38
on chelsea, tied with tiger cat (tests/models/test_pretrained.py).
"""

import jax.numpy as jnp
import numpy as np
from PIL import Image

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "preprocess",
    "resize",
    "resize_center_crop",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
_IMAGENET = (IMAGENET_MEAN, IMAGENET_STD)

# Backbone name -> (mean, std) applied to images in [0, 1].
NORMALIZATION = {
    "small_cnn": _IMAGENET,
    "resnet18": _IMAGENET,
    "resnet50": _IMAGENET,
    "vgg16": _IMAGENET,
    "vgg16_bn": _IMAGENET,
    "mobilenet_v2": _IMAGENET,
    "vit_tiny": _IMAGENET,
    "vit_small": _IMAGENET,
    "efficientnet_lite0": _HALF,
    "efficientnet_lite1": _HALF,
    "efficientnet_lite2": _HALF,
}


def preprocess(name: str, images, *, normalize: bool = True) -> jnp.ndarray:
    """Normalises images for backbone ``name``.

    Args:
      name: a backbone name (see ``NORMALIZATION``).
      images: (B, H, W, 3) or (H, W, 3); uint8 in [0, 255] or float in [0, 1].
      normalize: False skips the mean/std step and returns the images in
        [0, 1]: the LoCE reference code's quirk (concepts.md §1.2: its
        ``ImageLoader`` feeds the torchvision classifiers un-normalised
        inputs), for parity with its activations.

    Returns:
      float32 array of the same shape.
    """
    if name not in NORMALIZATION:
        raise KeyError(
            f"no preprocessing for {name!r}; valid names: {list(NORMALIZATION)}"
        )
    images = jnp.asarray(images)
    if images.shape[-1] != 3:
        raise ValueError(
            f"expected RGB images (..., H, W, 3), got shape {images.shape}"
        )
    if images.dtype == jnp.uint8:
        images = images.astype(jnp.float32) / 255.0
    elif not jnp.issubdtype(images.dtype, jnp.floating):
        raise TypeError(f"images must be uint8 or float in [0, 1], got {images.dtype}")
    if not normalize:
        return images.astype(jnp.float32)
    mean, std = NORMALIZATION[name]
    # Explicit broadcast shape: callers may run with strict rank promotion.
    shape = (1,) * (images.ndim - 1) + (3,)
    mean = jnp.asarray(mean, jnp.float32).reshape(shape)
    std = jnp.asarray(std, jnp.float32).reshape(shape)
    return (images.astype(jnp.float32) - mean) / std


def _to_pil(image: np.ndarray) -> Image.Image:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected one uint8 (H, W, 3) image, got {image.dtype} {image.shape}"
        )
    return Image.fromarray(image)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a uint8 (H, W, 3) image to (size, size, 3)."""
    return np.asarray(_to_pil(image).resize((size, size), Image.BILINEAR))


def resize_center_crop(
    image: np.ndarray, crop: int = 224, resize_to: int = 256
) -> np.ndarray:
    """Resizes the shorter side to ``resize_to`` (bilinear), then center-crops.

    Args:
      image: uint8 (H, W, 3).
      crop: output side.
      resize_to: shorter side after resizing (256 for the torchvision 224 eval).

    Returns:
      uint8 (crop, crop, 3).
    """
    pil = _to_pil(image)
    w, h = pil.size
    scale = resize_to / min(w, h)
    # torchvision truncates the longer side: int(long * short_new / short).
    new_w, new_h = (
        (resize_to, int(h * scale)) if w <= h else (int(w * scale), resize_to)
    )
    pil = pil.resize((new_w, new_h), Image.BILINEAR)
    left = int(round((new_w - crop) / 2.0))
    top = int(round((new_h - crop) / 2.0))
    return np.asarray(pil.crop((left, top, left + crop, top + crop)))
