"""The three model sources of the adversarial study, in one contract.

A `Source` bundles a linen model and its variables with the images it is
attacked on, in pixel space [0, 1] (the attacks' data range), the target
classes, clean images of each target class (the F1 comparison set) and the
layers dissected. `Source.apply(x)` is the attacks' model contract:
(B, S, S, c) in [0, 1] -> (logits (B, K) of the single-label block,
{layer: NHWC activation}); `to_input` maps pixels to the model's own input
(its normalisation), which `latent.patched_logits` takes.

* `synthaerial_source`: a backbone trained by `train.classifier` on
  SynthAerial (targets: scene classes; its `has_<concept>` outputs are
  dropped) on scenes of an unseen seed, `per_class` per source scene.
* `photo_source`: the packaged ImageNet MobileNetV2 / EfficientNet-Lite0
  (`jaxcxai.models.load_pretrained`) on the photos bundled with scikit-image
  and scikit-learn, in up to 4 views each (whole, mirrored, centre crop, its
  mirror). Reconstruction: no ImageNet images are available offline, so a
  photo's class is the network's clean top-1 on its whole view, and the
  targets are the classes of the configured target photos.
* `digits_source`: a SmallCNN trained here on scikit-learn digits (8 x 8,
  bilinearly upsampled) or Fashion-MNIST (Debian `dataset-fashion-mnist`;
  digits when it is not installed), inputs 2x - 1.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcxai.adversarial.study import AdversarialStudy
from jaxcxai.concepts.probes import pipeline
from jaxcxai.data import classic, synthaerial
from jaxcxai.models.cnn import SmallCNN
from jaxcxai.models.preprocess import preprocess, resize
from jaxcxai.models.zoo import host_init
from jaxcxai.training.state import TrainState, make_train_step

__all__ = [
    "Source",
    "digits_source",
    "load_photo",
    "photo_source",
    "synthaerial_source",
]


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity (jit static)
class Source:
    """A model with the images it is attacked on.

    Attributes:
      name: the model source ("synthaerial", "mobilenet_v2", "digits", ...).
      model, variables: the linen module and its variables.
      to_input: (B, S, S, c) pixels in [0, 1] -> the model's input.
      num_classes: K, the single-label block of the logits (the first K).
      class_names: {class index: name} of every class used.
      images: (N, S, S, c) float32 source images in [0, 1].
      labels: (N,) their class (true; photos: the clean top-1).
      groups: (N,) source name per image (scene, digit, photo).
      targets: (T,) target classes.
      target_images: {target class: (M, S, S, c)} clean images of it.
      layers: the dissected layers.
      info: model facts for the report (accuracy, size, fallbacks).
      concept_masks: (N, K, S, S) uint8 SynthAerial concept masks of the
        source images (`synthaerial.CONCEPTS` order), or None.
    """

    name: str
    model: Any
    variables: Any
    to_input: Callable
    num_classes: int
    class_names: dict
    images: np.ndarray
    labels: np.ndarray
    groups: tuple
    targets: np.ndarray
    target_images: dict
    layers: tuple
    info: dict
    concept_masks: Any = None

    def apply(self, x):
        """(B, S, S, c) in [0, 1] -> (logits (B, K), {layer: (B, h, w, C)})."""
        logits, acts = self.model.apply(self.variables, self.to_input(x),
                                        train=False, layers=self.layers)  # fmt: skip
        return logits[:, : self.num_classes], acts

    @functools.cached_property
    def forward(self) -> Callable:
        """Jitted `x -> {layer: activation}` (compiled once per shape)."""
        return jax.jit(lambda x: self.apply(x)[1])


def _floats(images) -> np.ndarray:
    return np.asarray(images, np.float32) / np.float32(255)


def synthaerial_source(st: AdversarialStudy, net) -> Source:
    """Scenes of `scenes.sources` (attacked) and `scenes.targets` (clean).

    Args:
      st: the study settings.
      net: a `TrainedBackbone` whose first `meta.num_classes` outputs are
        the SynthAerial scenes.
    """
    s, nc = st.scenes, net.meta.num_classes
    names = tuple(net.outputs[:nc])
    missing = [c for c in s.sources + s.targets if c not in names]
    if missing:
        raise ValueError(f"scenes {missing} are not outputs of the backbone {names}")
    images, labels, groups, tgt, masks = [], [], [], {}, []
    ids = range(1, len(synthaerial.CONCEPTS) + 1)
    for i, scene in enumerate(s.sources + s.targets):
        # One stream, disjoint index ranges: no scene is drawn twice.
        g = synthaerial.generate(s.per_class, size=net.image_size, seed=s.seed,
                                 start=i * s.per_class, scenes=(scene,))  # fmt: skip
        c = names.index(scene)
        if scene in s.targets:
            tgt[c] = _floats(g["image"])
            continue
        images.append(_floats(g["image"]))
        masks.append(pipeline.concept_masks(g["class_mask"], ids))
        labels += [c] * s.per_class
        groups += [scene] * s.per_class
    return Source(
        "synthaerial", net.model, net.variables, net.preprocess, nc,
        dict(enumerate(names)), np.concatenate(images), np.asarray(labels, np.int32),
        tuple(groups), np.asarray([names.index(t) for t in s.targets], np.int32),
        tgt, tuple(s.layers),
        {"model": net.meta.model, "image_size": net.image_size,
         "classes": "SynthAerial scenes", "data": f"SynthAerial seed {s.seed}"},
        np.concatenate(masks),
    )  # fmt: skip


def load_photo(name: str) -> np.ndarray:
    """A bundled photo, (H, W, 3) uint8 (`study.PHOTOS`)."""
    if name in ("china", "flower"):
        import sklearn.datasets as skd  # imported lazily: ~1 s

        return np.asarray(skd.load_sample_image(f"{name}.jpg"), np.uint8)
    import skimage.data

    if name == "motorcycle":
        return np.asarray(skimage.data.stereo_motorcycle()[0], np.uint8)
    return np.asarray(getattr(skimage.data, name)(), np.uint8)


def _views(image: np.ndarray, n: int, size: int) -> np.ndarray:
    """(n, size, size, 3) uint8: whole, mirrored, centre 80 % crop, mirrored."""
    h, w = image.shape[:2]
    dh, dw = h // 10, w // 10
    crop = image[dh : h - dh, dw : w - dw]
    whole, centre = resize(image, size), resize(crop, size)
    return np.stack([whole, whole[:, ::-1], centre, centre[:, ::-1]][:n])


def photo_source(st: AdversarialStudy, name: str) -> Source:
    """A packaged ImageNet network on the bundled photos.

    Raises:
      ValueError: two target photos get the same clean class (naming them).
      MissingWeightsError: the weight package is not installed.
    """
    from jaxcxai.models.pretrained import imagenet_class_name, load_pretrained

    p = st.photos
    model, variables = load_pretrained(name)
    to_input = functools.partial(preprocess, name)
    images = np.concatenate([_floats(_views(load_photo(ph), p.views, p.image_size))
                             for ph in p.photos])  # fmt: skip
    logits, _ = jax.jit(lambda x: model.apply(variables, to_input(x), layers=()))(
        images[:: p.views]
    )
    top1 = np.asarray(jnp.argmax(logits, -1), np.int32)  # per photo
    by_photo = dict(zip(p.photos, top1.tolist(), strict=True))
    targets = [by_photo[t] for t in p.targets]
    if len(set(targets)) < len(targets):
        raise ValueError(f"target photos {p.targets} share clean classes {targets}; "
                         "choose photos of distinct classes")  # fmt: skip
    labels = np.repeat(top1, p.views)
    layers = p.mobilenet_layers if name == "mobilenet_v2" else p.efficientnet_layers
    tgt = {c: images[i * p.views : (i + 1) * p.views]
           for i, (ph, c) in enumerate(by_photo.items()) if ph in p.targets}  # fmt: skip
    names = {int(c): imagenet_class_name(int(c)) for c in set(top1.tolist())}
    return Source(
        name, model, variables, to_input, 1000, names, images, labels,
        tuple(ph for ph in p.photos for _ in range(p.views)),
        np.asarray(targets, np.int32), tgt, tuple(layers),
        {"model": name, "image_size": p.image_size, "classes": "ImageNet-1k",
         "data": f"{len(p.photos)} bundled photos x {p.views} views",
         "photo_classes": {ph: names[c] for ph, c in by_photo.items()}},
    )  # fmt: skip


def _digit_images(name: str, size: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(N, size, size, 1) in [0, 1], labels, the set actually used."""
    if name == "fashion_mnist":
        try:
            x, y = classic.load_fashion_mnist("test")
        except FileNotFoundError:
            name = "digits"  # the Debian package is absent: the bundled set
    if name == "digits":
        x, y = classic.load_sklearn_images("digits")
    x = np.asarray(x, np.float32).reshape(len(x), x.shape[1], x.shape[2], 1)
    up = jax.jit(lambda a: jax.image.resize(a, (a.shape[0], size, size, 1), "linear"))
    return np.clip(np.asarray(up(x)), 0.0, 1.0), np.asarray(y, np.int32), name


def _train(model, x, y, steps: int, batch: int, lr: float, key):
    """Adam on softmax cross-entropy; returns (variables, last loss).

    The initial weights come from `zoo.host_init` (NumPy, N(0, 1/fan_in)
    kernels): compiling `model.init` costs more CPU time than the training.
    """
    seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
    init = host_init(model, (1,) + x.shape[1:], seed=seed)
    tx = optax.adam(lr)
    state = TrainState(step=jnp.int32(0), params=init["params"],
                       batch_stats=init["batch_stats"], opt_state=tx.init(init["params"]),
                       apply_fn=model.apply, tx=tx)  # fmt: skip

    def loss_fn(params, batch_stats, b, k):
        del k
        (logits, _), upd = model.apply({"params": params, "batch_stats": batch_stats},
                                       b["x"], train=True, mutable=["batch_stats"])  # fmt: skip
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, b["y"]).mean()
        return loss, (upd["batch_stats"], {"xent": loss})

    # A jitted step called per batch: XLA:CPU runs convolutions inside a
    # `lax.scan` body about 10x slower than in a top-level program.
    step = jax.jit(make_train_step(loss_fn), donate_argnums=0)
    order = np.random.default_rng(seed).integers(0, x.shape[0], (steps, batch))
    for idx in order:
        state, metrics = step(state, {"x": x[idx], "y": y[idx]}, key)
    return state.variables(), float(metrics["loss"])


def digits_source(st: AdversarialStudy, name: str, key) -> Source:
    """A SmallCNN trained on the digits (or Fashion-MNIST) not attacked."""
    d = st.digits
    x, y, used = _digit_images(name, d.image_size)
    rng = np.random.default_rng(st.seed)
    held = {c: rng.permutation(np.flatnonzero(y == c))[: d.per_class]
            for c in d.sources + d.targets}  # fmt: skip
    train = np.setdiff1d(np.arange(len(y)), np.concatenate(list(held.values())))
    model = SmallCNN(num_classes=10, widths=tuple(d.widths))
    to_input = lambda a: 2.0 * a - 1.0  # noqa: E731
    variables, loss = _train(model, to_input(x[train]), y[train], d.train_steps,
                             d.train_batch, d.lr, key)  # fmt: skip
    rows = np.concatenate([held[c] for c in d.sources])
    names = classic.FASHION_MNIST_CLASSES if used == "fashion_mnist" else None
    class_names = {c: (names[c] if names else str(c)) for c in range(10)}
    return Source(
        name, model, variables, to_input, 10, class_names, x[rows], y[rows],
        tuple(class_names[int(c)] for c in y[rows]),
        np.asarray(d.targets, np.int32), {c: x[held[c]] for c in d.targets},
        tuple(d.layers),
        {"model": f"small_cnn {tuple(d.widths)}", "image_size": d.image_size,
         "classes": "digits 0-9" if used == "digits" else "Fashion-MNIST",
         "data": used + ("" if used == name else f" ({name} is not installed)"),
         "train_images": int(len(train)), "train_steps": d.train_steps,
         "final_loss": loss},
    )  # fmt: skip
