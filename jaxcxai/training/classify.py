"""Image classification with an optional multi-label head.

Used to train the backbones that the concept methods probe: SynthAerial
scenes have one scene class and a multi-hot vector of the object concepts
present. A model with `num_classes + num_labels` outputs gets softmax
cross-entropy on the first block and sigmoid BCE on the second.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "classification_loss_fn",
    "augment_flips",
    "predict",
    "classification_metrics",
]


def augment_flips(images: jax.Array, key: jax.Array) -> jax.Array:
    """Random horizontal and vertical flips, independently per image.

    Top-down aerial scenes have no canonical orientation, so both flips keep
    the labels valid.

    Args:
      images: (B, H, W, C).
      key: PRNG key.
    """
    kh, kv = jax.random.split(key)
    b = images.shape[0]
    fh = jax.random.bernoulli(kh, 0.5, (b, 1, 1, 1))
    fv = jax.random.bernoulli(kv, 0.5, (b, 1, 1, 1))
    images = jnp.where(fh, images[:, :, ::-1], images)
    return jnp.where(fv, images[:, ::-1], images)


def classification_loss_fn(
    apply_fn: Callable,
    preprocess_fn: Callable[[jax.Array], jax.Array],
    num_classes: int,
    multilabel_weight: float = 1.0,
    augment: bool = True,
) -> Callable:
    """Builds `loss_fn(params, batch_stats, batch, key)` for `make_train_step`.

    Args:
      apply_fn: linen `apply` of a model returning `(logits, acts)`.
      preprocess_fn: uint8 images -> model input.
      num_classes: size of the single-label block of the logits.
      multilabel_weight: weight of the BCE term (used when the batch has
        `multilabel`).
      augment: apply `augment_flips`.

    Returns:
      The loss function; its metrics are `xent`, `accuracy` and, with a
      multi-label target, `bce`.

    The batch holds `image` (B, H, W, 3) uint8, `label` (B,) int and
    optionally `multilabel` (B, K) bool.
    """

    def loss_fn(params, batch_stats, batch, key):
        images = preprocess_fn(batch["image"])
        if augment:
            images = augment_flips(images, key)
        variables = {"params": params}
        if batch_stats:
            variables["batch_stats"] = batch_stats
        (logits, _), updates = apply_fn(
            variables, images, train=True, mutable=["batch_stats"]
        )
        single = logits[:, :num_classes]
        xent = optax.softmax_cross_entropy_with_integer_labels(single, batch["label"])
        loss = xent.mean()
        metrics = {
            "xent": xent.mean(),
            "accuracy": jnp.mean(jnp.argmax(single, -1) == batch["label"]),
        }
        if "multilabel" in batch:
            target = batch["multilabel"].astype(jnp.float32)
            bce = optax.sigmoid_binary_cross_entropy(logits[:, num_classes:], target)
            metrics["bce"] = bce.mean()
            loss = loss + multilabel_weight * bce.mean()
        return loss, (updates.get("batch_stats", {}), metrics)

    return loss_fn


def predict(
    apply_fn: Callable,
    variables: dict,
    preprocess_fn: Callable,
    images: np.ndarray,
    batch_size: int = 256,
    mesh=None,
) -> np.ndarray:
    """Logits for every image, evaluated in fixed-size batches.

    The forward pass is compiled once per (apply_fn, preprocess_fn) and takes
    the variables as an argument, so repeated evaluations during training
    reuse it instead of recompiling with the weights baked in as constants.

    Args:
      images: (N, H, W, 3) uint8.
      batch_size: images per forward pass (a multiple of the mesh's devices).
      mesh: split each batch over the mesh's `data` axis. Without it, a
        batch next to variables replicated over several devices is computed
        in full on every device (once per device, for nothing).

    Returns:
      (N, num_outputs) float32 logits.
    """
    from jaxcxai import parallel

    n = len(images)
    outs = []
    for start in range(0, n, batch_size):
        chunk = images[start : start + batch_size]
        pad = batch_size - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
        if mesh is not None:  # on several hosts: each feeds its share
            chunk = parallel.shard_global_batch(chunk, mesh)
        logits = _logits(apply_fn, preprocess_fn, variables, chunk)
        outs.append(parallel.to_host(logits)[: batch_size - pad])
    return np.concatenate(outs)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _logits(apply_fn, preprocess_fn, variables, images):
    logits, _ = apply_fn(variables, preprocess_fn(images), train=False)
    return logits


def classification_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    multilabel: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy of the single-label block; mean per-label accuracy and macro F1
    of the multi-label block (threshold at logit 0).
    """
    out = {"accuracy": float(np.mean(np.argmax(logits[:, :num_classes], -1) == labels))}
    if multilabel is not None:
        pred = logits[:, num_classes:] > 0
        truth = multilabel.astype(bool)
        tp = (pred & truth).sum(0)
        fp = (pred & ~truth).sum(0)
        fn = (~pred & truth).sum(0)
        f1 = np.where(tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 1.0)
        out["label_accuracy"] = float(np.mean(pred == truth))
        out["label_macro_f1"] = float(np.mean(f1))
    return out
