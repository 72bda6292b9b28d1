"""A concept-based comparison study of several networks: settings, networks, files.

`CompareStudy` holds every setting of the study that `eval.compare` and the
main job's `comparison` stage run (the fields of `configs/compare.py`, one
dataclass per section; defined in `settings`, re-exported here with its
sections). The networks are the trained backbone(s)
(`jaxcxai.training.load_trained`) and packaged ImageNet networks
(`jaxcxai.models.load_pretrained`), all fed the same SynthAerial scenes,
each resized to its own input size inside its compiled forward pass. Per
network, `num_layers` blocks evenly spaced over its depth (`BLOCKS`) are
compared, unless `layers` names them. `run` builds the scenes and runs it.

Files of a study workdir:
  data.npz              held-out images (N, S, S, 3) uint8, their concept
                        masks (N, K, S, S) uint8 and the concept names
  outputs.npz           per network: "<net>.masks" (L, K, N, G, G) bool Net2Vec
                        masks on the common grid, "<net>.projections"
                        (L, K', N) CAV signed distances (`outputs`)
  similarity.npz        per pair "<a>|<b>|<kind>" (La, Lb), kind in iou,
                        pearson, cka; "...|per_concept" (La, Lb, K) for iou
                        and pearson
  compare_results.json, compare_report.md and PNG figures (`report`)
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxcxai.concepts.comparison.settings import CHOICES as CHOICES
from jaxcxai.concepts.comparison.settings import CavSettings as CavSettings
from jaxcxai.concepts.comparison.settings import CheckSettings as CheckSettings
from jaxcxai.concepts.comparison.settings import CompareData as CompareData
from jaxcxai.concepts.comparison.settings import CompareStudy as CompareStudy
from jaxcxai.concepts.comparison.settings import (
    Net2VecSettings as Net2VecSettings,
)
from jaxcxai.data import synthaerial
from jaxcxai.metric_writers import read_npz, write_npz_atomic
from jaxcxai.models.pretrained import PRETRAINED, load_pretrained
from jaxcxai.training.backbone import (
    META_FILE,
    BackboneMeta,
    TrainedBackbone,
    load_trained,
    preprocess_fn,
)

__all__ = ["BLOCKS", "CHOICES", "DATA", "OUTPUTS", "REPORT", "RESULTS", "SIMILARITY",
           "CavSettings", "CheckSettings", "CompareData", "CompareStudy",
           "Net2VecSettings", "Network", "check_study",
           "choose_layers", "load_networks", "load_npz", "save_npz"]  # fmt: skip

DATA, OUTPUTS, SIMILARITY = "data.npz", "outputs.npz", "similarity.npz"
RESULTS, REPORT = "compare_results.json", "compare_report.md"

# Model name -> its blocks in depth order (spatial (N, h, w, C) outputs), the
# candidates `choose_layers` spaces evenly (the models' docstrings list them).
BLOCKS = {
    "small_cnn": ("conv1", "conv2", "conv3"),
    "resnet18": ("maxpool", "layer1", "layer2", "layer3", "layer4"),
    "resnet50": ("maxpool", "layer1", "layer2", "layer3", "layer4"),
    "mobilenet_v2": tuple(f"features.{i}" for i in range(19)),
    "efficientnet_lite0": ("_conv_stem", *(f"_blocks.{i}" for i in range(16)),
                           "_conv_head"),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Network:
    """One compared network.

    Attributes:
      name: its label in files and the report (the model name).
      kind: "trained" (SynthAerial backbone) or "imagenet" (packaged weights).
      source: the backbone workdir or the weight file's package.
      net: `apply(uint8 scenes) -> (logits, {layer: act})`, resizing inside.
      input_size: the side the network sees.
      layers: compared layers, in depth order.
    """

    name: str
    kind: str
    source: str
    net: TrainedBackbone
    input_size: int
    layers: tuple[str, ...]


def _overrides(st: CompareStudy) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for entry in st.layers:
        net, sep, layer = entry.partition(":")
        if not sep or not net or not layer:
            raise ValueError(f"layers entry {entry!r} is not 'network:layer'")
        out.setdefault(net, []).append(layer)
    return {k: tuple(v) for k, v in out.items()}


def check_study(st: CompareStudy) -> None:
    """Rejects settings the study would fail on late, naming the field."""
    unknown = [c for c in st.concepts if c not in synthaerial.CONCEPTS]
    if unknown or not st.concepts:
        raise ValueError(f"concepts must be a non-empty subset of "
                         f"{synthaerial.CONCEPTS}, got unknown {unknown}")  # fmt: skip
    bad = [p for p in st.pretrained if p not in PRETRAINED]
    if bad or len(set(st.pretrained)) != len(st.pretrained):
        raise ValueError(f"pretrained must be distinct names of {list(PRETRAINED)}, "
                         f"got {list(st.pretrained)}")  # fmt: skip
    if st.pretrained_size % 32:
        raise ValueError(f"pretrained_size={st.pretrained_size} must be a multiple "
                         "of 32 (the ImageNet networks downsample by 32)")  # fmt: skip
    if st.num_layers < 2:
        raise ValueError(f"num_layers must be >= 2, got {st.num_layers}")
    _overrides(st)
    for field, allowed in CHOICES.items():
        section, name = field.split(".")
        value = getattr(getattr(st, section), name)
        if value not in allowed:
            raise ValueError(f"{field} must be one of {allowed}, got {value!r}")


def choose_layers(model: str, num_layers: int) -> tuple[str, ...]:
    """`num_layers` of the model's `BLOCKS`, evenly spaced, first and last
    included (all of them when it has fewer)."""
    if model not in BLOCKS:
        raise ValueError(f"no block list for model {model!r} (have {sorted(BLOCKS)}); "
                         f"name its layers in `layers` ('{model}:<layer>')")  # fmt: skip
    blocks = BLOCKS[model]
    idx = np.round(np.linspace(0, len(blocks) - 1, min(num_layers, len(blocks))))
    return tuple(blocks[i] for i in sorted(set(idx.astype(int).tolist())))


def _resizing(model: str, size: int):
    """uint8 (N, S, S, 3) -> the model's normalised input at `size` (bilinear,
    anti-aliased when shrinking), inside the jitted forward pass."""
    norm = preprocess_fn(model)

    def fn(images):
        x = jnp.asarray(images)
        if x.shape[1:3] != (size, size):
            x = jax.image.resize(x.astype(jnp.float32) / 255.0,
                                 (x.shape[0], size, size, 3), "linear", antialias=True)  # fmt: skip
            x = jnp.clip(x, 0.0, 1.0)
        return norm(x)

    return fn


def _check_layers(net: Network, size: int) -> None:
    probe = jax.ShapeDtypeStruct((1, size, size, 3), jnp.uint8)
    shapes = jax.eval_shape(net.net.apply, probe)[1]
    spatial = sorted(k for k, v in shapes.items() if len(v.shape) == 4)
    bad = [n for n in net.layers if n not in spatial]
    if bad:
        raise ValueError(f"{net.name} has no spatial (N, h, w, C) layers {bad}; "
                         f"it has {spatial}")  # fmt: skip


def load_networks(st: CompareStudy) -> tuple[list[Network], list[str], int]:
    """The compared networks (trained first), the skipped backbone workdirs
    and the side S of the scenes they are fed (`data.image_size`, or the
    trained backbone's training size).

    Raises:
      ValueError: a `layers` entry names an unknown network or layer.
      MissingWeightsError: a packaged network's pip package is missing.
    """
    nets, skipped = [], []
    over = _overrides(st)
    used: set[str] = set()

    def add(kind, source, model, variables, meta, input_size):
        name, i = model, 1
        while name in used:  # two backbones of one model: small_cnn, small_cnn_2
            name, i = f"{model}_{i + 1}", i + 1
        used.add(name)
        net = TrainedBackbone(model=variables[0], variables=variables[1], meta=meta,
                              preprocess=_resizing(model, input_size))  # fmt: skip
        layers = over.get(name) or choose_layers(model, st.num_layers)
        nets.append(Network(name, kind, source, net, input_size, layers))

    for i, path in enumerate((st.backbone,) + tuple(st.backbones)):
        if i and not os.path.isfile(os.path.join(path, META_FILE)):
            skipped.append(path)
            continue
        tb = load_trained(path)
        add("trained", path, tb.meta.model, (tb.model, tb.variables), tb.meta,
            tb.image_size)  # fmt: skip
    for name in st.pretrained:
        model, variables = load_pretrained(name)
        meta = BackboneMeta(model=name, outputs=(), num_classes=1000,
                            image_size=st.pretrained_size, dataset="imagenet",
                            lr=0.0, steps=0, weight_decay=0.0)  # fmt: skip
        add("imagenet", PRETRAINED[name].package, name, (model, variables), meta,
            st.pretrained_size)  # fmt: skip
    unknown = sorted(set(over) - {n.name for n in nets})
    if unknown:
        raise ValueError(f"layers names networks {unknown} that are not compared; "
                         f"have {[n.name for n in nets]}")  # fmt: skip
    size = int(st.data.image_size or nets[0].input_size)
    for net in nets:
        _check_layers(net, size)
    return nets, skipped, size


def save_npz(path: str, arrays: dict) -> None:
    """`np.savez_compressed` to a temporary name, then renamed."""
    write_npz_atomic(path, arrays)


def load_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of an `.npz` file of the study, loaded into memory."""
    return read_npz(path, "run `python -m eval.compare`")
