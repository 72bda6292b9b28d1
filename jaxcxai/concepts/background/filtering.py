"""Background filtering: drop backgrounds a classifier sees the concept in.

The reference code (gesina/bg_randomized_loce, `get_random_images`) rejects a
background when the top-5 predictions of an ImageNet-pretrained transformer
contain any ImageNet class mapped from the concept (a COCO/VOC -> WordNet map;
spec concepts.md §7.2). Here the classifier and the map are arguments:
`classify(images) -> logits` is any callable (a jitted model apply), and
`class_to_concept` maps class indices to concept names. The backgrounds have no
segmentation labels, so the filter can err in both directions.

References:
  Gesina et al., arXiv 2504.08602.
"""

from collections.abc import Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.checks import check_finite

__all__ = ["filter_backgrounds", "forbidden_classes", "reject_top_k"]


def forbidden_classes(
    class_to_concept: Mapping[int, str | Iterable[str]],
    concepts: str | Iterable[str],
    n_classes: int,
) -> np.ndarray:
    """(n_classes,) bool: the classes mapped to any of `concepts`.

    Args:
      class_to_concept: {class index: concept name or names}.
      concepts: one concept name or several.
      n_classes: the classifier's number of classes.

    Raises:
      ValueError: a class index outside [0, n_classes), or a concept that no
        class maps to (the filter would silently keep everything).
    """
    wanted = {concepts} if isinstance(concepts, str) else set(concepts)
    out = np.zeros(int(n_classes), bool)
    for cls, names in class_to_concept.items():
        names = {names} if isinstance(names, str) else set(names)
        if not 0 <= int(cls) < int(n_classes):
            raise ValueError(f"class_to_concept has class {cls!r} outside "
                             f"[0, {n_classes})")  # fmt: skip
        if names & wanted:
            out[int(cls)] = True
    mapped = {n for v in class_to_concept.values()
              for n in ({v} if isinstance(v, str) else set(v))}  # fmt: skip
    missing = sorted(wanted - mapped)
    if missing:
        raise ValueError(f"concepts {missing} have no class in class_to_concept "
                         f"(known: {sorted(mapped)})")  # fmt: skip
    return out


def reject_top_k(logits, forbidden, k: int = 5) -> jax.Array:
    """(P,) bool: True where the top-`k` classes contain a forbidden one.

    Args:
      logits: (P, K) classifier scores (logits or probabilities).
      forbidden: (K,) bool, e.g. from `forbidden_classes`.
      k: how many top predictions count (5 in the reference).
    """
    logits, forbidden = jnp.asarray(logits), jnp.asarray(forbidden, bool)
    if logits.ndim != 2 or forbidden.shape != logits.shape[-1:]:
        raise ValueError(f"logits must be (P, K) and forbidden (K,), got "
                         f"{logits.shape} and {forbidden.shape}")  # fmt: skip
    if not 1 <= int(k) <= logits.shape[-1]:
        raise ValueError(f"k must be in [1, {logits.shape[-1]}], got {k}")
    _, top = jax.lax.top_k(logits, int(k))
    return forbidden[top].any(axis=-1)


def filter_backgrounds(
    images,
    classify: Callable[[jax.Array], jax.Array],
    class_to_concept: Mapping[int, str | Iterable[str]],
    concepts: str | Iterable[str],
    *,
    k: int = 5,
    batch_size: int = 64,
) -> np.ndarray:
    """Which backgrounds to keep: (P,) bool, False where the concept is seen.

    Args:
      images: (P, H, W, C) backgrounds, in whatever form `classify` expects.
      classify: images (B, H, W, C) -> logits (B, K); called per batch.
      class_to_concept: {class index: concept name(s)}.
      concepts: the concept(s) the views are made for.
      k: top-k predictions inspected (5 in the reference).
      batch_size: backgrounds per `classify` call.

    Raises:
      ValueError: bad logits shape; `NonFiniteError` for NaN / inf logits.
    """
    images = np.asarray(images)
    if images.ndim != 4 or int(batch_size) < 1:
        raise ValueError(f"images must be (P, H, W, C) and batch_size >= 1, got "
                         f"{images.shape}, {batch_size}")  # fmt: skip
    keep = []
    for start in range(0, len(images), int(batch_size)):
        batch = images[start : start + int(batch_size)]
        logits = classify(batch)
        if np.ndim(logits) != 2 or np.shape(logits)[0] != len(batch):
            raise ValueError(f"classify must return logits (B, K) for B = "
                             f"{len(batch)} images, got {np.shape(logits)}")  # fmt: skip
        check_finite({"logits": logits}, hint="from classify")
        bad = forbidden_classes(class_to_concept, concepts, np.shape(logits)[1])
        keep.append(~np.asarray(reject_top_k(logits, bad, k)))
    return np.concatenate(keep)
