"""Concept probes of a trained backbone: data, layer heads and TCAV per layer.

Glue between the probe library (`bulk`, `tcav`, `stats`) and the scripts
`train.probes` / `eval.concepts`:

* `concept_masks` turns a class-index mask (SynthAerial: 0 = background,
  c = CONCEPTS[c - 1]) into per-concept binary labels (N, K, H, W).
* `coco_probe_data` / `voc_probe_data` build the same (images, masks) from
  real annotations (`jaxcxai.data.coco`), images resized to a square side.
* `layer_head_fn` returns the network from a layer's activations to the
  logits, which TCAV differentiates. A linen backbone computes all its
  layers in one `__call__`, so the head re-runs the model with
  `nn.intercept_methods` replacing the input of the module that consumes
  the layer (`CONSUMERS`) by the given activations; everything upstream
  becomes dead code under `jit`.
* `sample_sets` draws TCAV's concept and random example sets;
  `tcav_layer` scores K concepts x R random runs of one layer against each
  concept's own target class and tests them (two-sided t-test against
  random-vs-random CAVs, Bonferroni over `num_tests`).
"""

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxcxai.checks import check_finite
from jaxcxai.concepts.probes import stats, tcav
from jaxcxai.data import coco, voc

__all__ = [
    "CONSUMERS",
    "concept_masks",
    "coco_probe_data",
    "voc_probe_data",
    "layer_head_fn",
    "linear_head",
    "sample_sets",
    "tcav_layer",
]


def _small_cnn_consumers(model) -> dict[str, tuple[str, str | None]]:
    n = len(model.widths)
    out = {f"conv{i}": (f"conv{i + 1}.conv", None) for i in range(1, n)}
    return out | {f"conv{n}": ("fc", "mean"), "pool": ("fc", None)}


def _resnet_consumers(model) -> dict[str, tuple[str, str | None]]:
    n = len(model.stage_sizes)
    out = {"maxpool": ("layer1.0", None)}
    out |= {f"layer{i}": (f"layer{i + 1}.0", None) for i in range(1, n)}
    return out | {f"layer{n}": ("fc", "mean"), "avgpool": ("fc", None)}


# Backbone class name -> model -> {layer: (top-level module that consumes the
# layer's output, transform applied on the way: None or "mean" = spatial mean)}.
CONSUMERS: dict[str, Callable] = {
    "SmallCNN": _small_cnn_consumers,
    "ResNet": _resnet_consumers,
}


def layer_head_fn(
    model: nn.Module, variables, layer: str, image_size: int
) -> Callable[[jax.Array], jax.Array]:
    """The backbone from `layer`'s activations to its logits.

    Args:
      model: a linen backbone returning `(logits, acts)` (a `CONSUMERS` kind).
      variables: its variables (eval mode: BatchNorm uses running stats, so
        examples stay independent as `tcav.directional_derivatives` needs).
      layer: an activation name of the model.
      image_size: side of the placeholder images fed to the unused upstream
        part (any size the model accepts).

    Returns:
      `head(acts (B, *S)) -> logits (B, classes)`.
    """
    kind = type(model).__name__
    if kind not in CONSUMERS:
        raise ValueError(
            f"no layer heads for backbone {kind}; supported: {sorted(CONSUMERS)}"
        )
    table = CONSUMERS[kind](model)
    if layer not in table:
        raise KeyError(f"{kind} has no probe-able layer {layer!r}; have {list(table)}")
    target, transform = table[layer]

    def head(acts):
        def intercept(next_fun, args, kwargs, context):
            if context.method_name == "__call__" and context.module.path == (target,):
                x = jnp.mean(acts, axis=(1, 2)) if transform == "mean" else acts
                args = (x,) + tuple(args[1:])
            return next_fun(*args, **kwargs)

        dummy = jnp.zeros((acts.shape[0], image_size, image_size, 3), jnp.float32)
        with nn.intercept_methods(intercept):
            return model.apply(variables, dummy, train=False)[0]

    return head


def linear_head(model: nn.Module, layer: str) -> bool:
    """Whether only (spatial mean and) the final linear layer follow `layer`.

    Then the gradient of a logit is the same for every image, so each CAV's
    TCAV score is 0 or 1 (a sign test of the CAV against that gradient).
    """
    return CONSUMERS[type(model).__name__](model)[layer][0] == "fc"


def concept_masks(class_mask: np.ndarray, concept_ids: Sequence[int]) -> np.ndarray:
    """(N, H, W) class indices -> (N, K, H, W) uint8 {0, 1}, one row per id."""
    class_mask = np.asarray(class_mask)
    if class_mask.ndim != 3:
        raise ValueError(f"class_mask must be (N, H, W), got {class_mask.shape}")
    ids = np.asarray(concept_ids).reshape(1, -1, 1, 1)
    return (class_mask[:, None] == ids).astype(np.uint8)


def _resize_pair(image: np.ndarray, masks: np.ndarray, size: int):
    """RGB image (bilinear) and (K, H, W) masks (nearest) to size x size."""
    img = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    img = np.asarray(img.resize((size, size), Image.BILINEAR))
    out = [
        np.asarray(Image.fromarray(m.astype(np.uint8)).resize((size, size), 0))
        for m in masks
    ]  # 0 = Image.NEAREST: labels stay binary
    return img, np.stack(out).astype(np.uint8)


def coco_probe_data(
    annotations: str,
    image_dir: str,
    concepts: Sequence[str],
    size: int,
    *,
    max_per_concept: int | None = None,
    variant: str = "exact",
) -> dict[str, np.ndarray]:
    """Images containing any of `concepts` with their per-concept masks.

    Images per concept follow the LoCE selection (the first `max_per_concept`
    file names, sorted, among those containing it); the union is sorted by
    file name. Every image gets a mask for every concept.

    Returns:
      {"image": (N, size, size, 3) uint8, "masks": (N, K, size, size) uint8,
      "file_name": (N,) str}.
    """
    ann = coco.load_coco(annotations)
    ids = coco.category_ids(ann, concepts)
    images = set()
    for cid in ids:
        images.update(coco.images_with_category(ann, cid, max_per_concept))
    order = sorted(images, key=lambda i: ann.images[i]["file_name"])
    if not order:
        raise ValueError(f"no image of {annotations} contains any of {concepts}")
    out_img, out_masks = [], []
    for image_id in order:
        # Pixels checked against the size the annotation file records.
        rgb = coco.read_image(ann, image_id, image_dir)
        by_id = coco.category_masks(ann, image_id, ids, variant)
        img, m = _resize_pair(rgb, np.stack([by_id[c] for c in ids]), size)
        out_img.append(img)
        out_masks.append(m)
    names = [ann.images[i]["file_name"] for i in order]
    return {"image": np.stack(out_img), "masks": np.stack(out_masks),
            "file_name": np.asarray(names)}  # fmt: skip


def voc_probe_data(
    root: str, concepts: Sequence[str], size: int, *, split: str = "train"
) -> dict[str, np.ndarray]:
    """VOC images of a segmentation split with per-concept masks.

    Void pixels (255, object borders) count as background of every concept.

    Returns:
      As `coco_probe_data`, with "file_name" the image ids; only images that
      contain at least one of `concepts` are kept.
    """
    out_img, out_masks, names = [], [], []
    for image_id in voc.read_split_ids(root, split):
        # The mask must have the photo's size (checked by the loader).
        rgb, index = voc.read_image_and_mask(root, image_id)
        masks, _ = voc.class_binary_masks(index, concepts)
        if not masks.any():
            continue
        img, m = _resize_pair(rgb, masks, size)
        out_img.append(img)
        out_masks.append(m)
        names.append(image_id)
    if not names:
        raise ValueError(f"no {split} image under {root} contains any of {concepts}")
    return {"image": np.stack(out_img), "masks": np.stack(out_masks),
            "file_name": np.asarray(names)}  # fmt: skip


def sample_sets(
    present: np.ndarray, num_concept: int, num_random: int, num_sets: int, seed: int
) -> dict[str, np.ndarray]:
    """TCAV example sets: concept images and random images, as row indices.

    Args:
      present: (N, K) bool, concept k visible in image n.
      num_concept: images per concept set (lowered to the rarest kept
        concept's count so the sets stack).
      num_random: images per random set (drawn from all N rows).
      num_sets: R random sets.
      seed: NumPy seed.

    Returns:
      {"concepts": (K',) kept concept columns (at least 2 images each),
      "concept_rows": (K', n_c), "random_rows": (R, n_r)}.
    """
    present = np.asarray(present, bool)
    n = present.shape[0]
    rng = np.random.default_rng(seed)
    counts = present.sum(0)
    kept = np.flatnonzero(counts >= 2)
    n_c = int(min([num_concept] + [counts[k] for k in kept]))
    rows = [rng.choice(np.flatnonzero(present[:, k]), n_c, replace=False) for k in kept]
    n_r = min(num_random, n)
    rand = [rng.choice(n, n_r, replace=False) for _ in range(num_sets)]
    return {"concepts": kept, "concept_rows": np.asarray(rows, np.int64).reshape(len(kept), n_c),
            "random_rows": np.asarray(rand, np.int64)}  # fmt: skip


def tcav_layer(
    head_fn: Callable,
    class_acts: np.ndarray,
    class_targets: np.ndarray,
    targets: Sequence[int],
    directions: np.ndarray,
    random_directions: np.ndarray,
    *,
    num_tests: int,
    alpha: float = 0.05,
) -> dict[str, np.ndarray]:
    """TCAV scores and significance of K concepts, each for its own class.

    All class examples go through one backward pass (each example's
    gradient is that of its own class logit), and every CAV is scored on the
    examples of its concept's class only.

    Args:
      head_fn: layer activations -> logits (`layer_head_fn`).
      class_acts: (N, *S) activations of the images of all target classes.
      class_targets: (N,) the class index of each of those images.
      targets: (K,) class index per concept (each must occur in class_targets).
      directions: (K, R, d) concept CAVs (unit).
      random_directions: (R2, d) random-vs-random CAVs.
      num_tests: hypotheses of the study (Bonferroni).
      alpha: family-wise level.

    Returns:
      {"scores": (K, R), "random_scores": (K, R2)} plus (K,) `mean`, `std`,
      `random_mean`, `t`, `p`, `p_corrected`, `significant`.

    Raises:
      NonFiniteError: the activations, the CAVs or the derivatives (the
        head's gradient) hold NaN or inf; a NaN would otherwise count as a
        negative derivative.
    """
    k, r = directions.shape[:2]
    class_targets = np.asarray(class_targets)
    missing = sorted(set(int(t) for t in targets) - set(class_targets.tolist()))
    if missing:
        raise ValueError(f"no class examples for target classes {missing}")
    class_acts = jnp.asarray(class_acts)
    check_finite({"class_acts": class_acts, "directions": directions,
                  "random_directions": random_directions})  # fmt: skip
    dirs = np.concatenate([directions.reshape(k * r, -1), random_directions])
    deriv = tcav._derivatives(head_fn, class_acts, class_targets, dirs, None)
    positive = np.asarray(tcav._checked_derivatives(deriv)) > 0  # (K R + R2, N)
    scores = np.zeros((k, r))
    rand = np.zeros((k, random_directions.shape[0]))
    for i, t in enumerate(targets):
        mine = class_targets == int(t)
        scores[i] = positive[i * r : (i + 1) * r][:, mine].mean(-1)
        rand[i] = positive[k * r :][:, mine].mean(-1)
    sig = stats.tcav_significance(scores, rand, alpha=alpha, num_tests=num_tests)
    return {"scores": scores, "random_scores": rand, **sig}
