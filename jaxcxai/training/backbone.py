"""Trained backbones on disk: what a classifier run records, and loading it.

A classifier run (`train.classifier`) writes `backbone.json` next to its Orbax
checkpoint: the model name, the number and names of its outputs, the image
size it was trained at and the optimizer settings (the checkpoint stores the
whole `TrainState`, so restoring needs the optimizer state's structure).
Every concept method that probes a trained backbone (probes, LoCE,
attribution, discovery, ...) loads it through `load_trained`, which reads
only that file and the checkpoint, never the run's config.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Sequence

import jax
import numpy as np
import optax

from jaxcxai import checkpoint, parallel
from jaxcxai.metric_writers import write_json_atomic
from jaxcxai.models.preprocess import NORMALIZATION, preprocess
from jaxcxai.models.zoo import get_model
from jaxcxai.training.state import abstract_state, create_train_state

__all__ = [
    "META_FILE",
    "BackboneMeta",
    "TrainedBackbone",
    "classifier_tx",
    "load_trained",
    "output_names",
    "preprocess_fn",
    "save_meta",
]

META_FILE = "backbone.json"


@dataclasses.dataclass(frozen=True)
class BackboneMeta:
    """What a trained backbone needs to be rebuilt and used.

    Attributes:
      model: a key of `jaxcxai.models.zoo.MODELS`.
      outputs: names of the logits, in order (SynthAerial: the scenes, then
        `has_<concept>` per object concept).
      num_classes: size of the single-label (softmax) block of `outputs`.
      image_size: side of the square uint8 images it was trained on.
      dataset: the training dataset's name.
      lr, steps, weight_decay: the AdamW cosine schedule of the run
        (`classifier_tx`), needed to restore the optimizer state.
    """

    model: str
    outputs: tuple[str, ...]
    num_classes: int
    image_size: int
    dataset: str
    lr: float
    steps: int
    weight_decay: float


@dataclasses.dataclass(frozen=True)
class TrainedBackbone:
    """A restored backbone: `apply(images)` -> `(logits, {layer: act})`.

    Attributes:
      model: the linen module.
      variables: `{'params', 'batch_stats'}` of the latest checkpoint (host).
      meta: its `BackboneMeta`.
      preprocess: uint8 images -> model input (the training normalisation).
    """

    model: object
    variables: dict
    meta: BackboneMeta
    preprocess: Callable

    @property
    def image_size(self) -> int:
        return self.meta.image_size

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.meta.outputs

    def apply(self, images):
        """(N, H, W, 3) uint8 -> (logits (N, O), {layer: NHWC activation})."""
        return self.model.apply(self.variables, self.preprocess(images), train=False)


def preprocess_fn(model_name: str, *, normalize: bool = True) -> Callable:
    """The input normalisation a backbone is trained and evaluated with.

    Backbones without an entry of their own (e.g. `small_cnn`) use ImageNet
    mean/std, as `resnet18` does. `normalize=False` gives the LoCE reference
    code's un-normalised [0, 1] inputs (see `models.preprocess.preprocess`).
    """
    return functools.partial(
        preprocess,
        model_name if model_name in NORMALIZATION else "resnet18",
        normalize=normalize,
    )


def classifier_tx(lr: float, steps: int, weight_decay: float):
    """AdamW with a cosine decay from `lr` to 0 over `steps`."""
    schedule = optax.cosine_decay_schedule(lr, steps)
    return optax.adamw(schedule, weight_decay=weight_decay)


def save_meta(workdir: str, meta: BackboneMeta) -> str:
    """Writes `workdir/backbone.json` atomically; returns its path."""
    path = os.path.join(workdir, META_FILE)
    write_json_atomic(path, dataclasses.asdict(meta))
    return path


def _read_meta(workdir: str) -> BackboneMeta:
    path = os.path.join(workdir, META_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no trained backbone at {workdir!r}: {META_FILE} is missing (train "
            "one with `python -m train.classifier`, or point the config's "
            "`backbone` field at such a workdir)"
        )
    try:
        with open(path) as f:
            raw = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    fields = {f.name for f in dataclasses.fields(BackboneMeta)}
    missing = sorted(fields - set(raw))
    if missing:
        raise ValueError(f"{path} lacks the keys {missing}")
    raw = {k: raw[k] for k in fields}
    raw["outputs"] = tuple(raw["outputs"])
    return BackboneMeta(**raw)


def load_trained(workdir: str, mesh=None) -> TrainedBackbone:
    """Restores the latest checkpoint of a classifier run.

    Args:
      workdir: the run's workdir (`backbone.json` and `ckpt/`).
      mesh: where the restored arrays are placed (default all devices);
        they are returned on the host.

    Returns:
      The `TrainedBackbone`.
    """
    meta = _read_meta(workdir)
    model = get_model(meta.model, num_classes=len(meta.outputs))
    dummy = np.zeros((1, meta.image_size, meta.image_size, 3), np.float32)
    tx = classifier_tx(meta.lr, meta.steps, meta.weight_decay)
    init = lambda key: create_train_state(model, tx, key, dummy)  # noqa: E731
    mesh = mesh or parallel.make_mesh()
    abstract = abstract_state(
        init, jax.random.key(0), parallel.replicated_sharding(mesh)
    )
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "ckpt"))
    try:
        state = ckpt.restore(abstract)
    finally:
        ckpt.close()
    if state is None:
        raise FileNotFoundError(f"no checkpoint under {workdir}/ckpt")
    return TrainedBackbone(
        model=model,
        variables=jax.device_get(state.variables()),
        meta=meta,
        preprocess=preprocess_fn(meta.model),
    )


def output_names(classes: Sequence[str], labels: Sequence[str]) -> tuple[str, ...]:
    """Output names of a scene + object-presence classifier."""
    return tuple(classes) + tuple(f"has_{c}" for c in labels)
