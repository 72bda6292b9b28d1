"""Maps PyTorch state dicts onto linen variables, strictly.

The backbones name their modules so that the module path of a linen variable,
joined with ``"."``, is the PyTorch module name. Each linen leaf then has exactly
one PyTorch counterpart:

===============================  ===============================  =================
linen leaf                       PyTorch key                      transform
===============================  ===============================  =================
``params/.../kernel`` (4-D)      ``<module>.weight``              OIHW -> HWIO
``params/.../kernel`` (2-D)      ``<module>.weight``              (out, in) -> (in, out)
``params/.../scale``             ``<module>.weight``              (BN / LayerNorm)
``params/.../bias``              ``<module>.bias``
``batch_stats/.../mean``         ``<module>.running_mean``
``batch_stats/.../var``          ``<module>.running_var``
``params/.../<other>``           ``<module>.<other>``             (e.g. ``cls_token``)
===============================  ===============================  =================

A depthwise conv's torch weight (C, 1, kh, kw) becomes (kh, kw, 1, C), which is
what ``nn.Conv(feature_group_count=C)`` holds. ``num_batches_tracked`` is dropped.
"""

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from flax import traverse_util

from jaxcxai.models.weight_checks import WeightFileError

__all__ = [
    "WeightFileError",
    "WeightMismatchError",
    "check_finite_weights",
    "linen_to_torch",
    "torch_to_linen",
]

_IGNORED_SUFFIXES = ("num_batches_tracked",)


class WeightMismatchError(ValueError):
    """A state dict does not fit a model: lists every missing, unexpected and
    mis-shaped key at once."""


def check_finite_weights(
    state_dict: Mapping[str, np.ndarray], source: str = "state dict"
) -> None:
    """Rejects NaN/inf in any floating tensor (a corrupt or diverged file).

    Raises:
      WeightFileError: ``source`` and every bad tensor with its count, e.g.
        ``"w.pth: 1 tensor(s) hold non-finite values: bn.running_var (2 of 4)"``.
    """
    bad = []
    for key, value in state_dict.items():
        value = np.asarray(value)
        n = 0
        # kind "V": the ml_dtypes floats (bfloat16, float8), which isfinite knows.
        if np.issubdtype(value.dtype, np.inexact) or value.dtype.kind == "V":
            n = int(value.size - np.count_nonzero(np.isfinite(value)))
        if n:
            bad.append(f"{key} ({n} of {value.size})")
    if bad:
        raise WeightFileError(
            f"{source}: {len(bad)} tensor(s) hold non-finite values: "
            + ", ".join(bad[:10])
            + (f" (+{len(bad) - 10} more)" if len(bad) > 10 else "")
        )


def _torch_key(collection: str, path: tuple[str, ...]) -> str:
    *modules, leaf = path
    if collection == "batch_stats":
        leaf = {"mean": "running_mean", "var": "running_var"}[leaf]
    elif leaf in ("kernel", "scale"):
        leaf = "weight"
    return ".".join([*modules, leaf])


def _torch_shape(leaf: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if leaf == "kernel" and len(shape) == 4:
        return (shape[3], shape[2], shape[0], shape[1])
    if leaf == "kernel" and len(shape) == 2:
        return (shape[1], shape[0])
    return tuple(shape)


def _to_torch_layout(leaf: str, value: np.ndarray) -> np.ndarray:
    if leaf == "kernel" and value.ndim == 4:
        return np.transpose(value, (3, 2, 0, 1))  # HWIO -> OIHW
    if leaf == "kernel" and value.ndim == 2:
        return value.T
    return value


def _from_torch_layout(leaf: str, value: np.ndarray) -> np.ndarray:
    if leaf == "kernel" and value.ndim == 4:
        return np.transpose(value, (2, 3, 1, 0))  # OIHW -> HWIO
    if leaf == "kernel" and value.ndim == 2:
        return value.T
    return value


def _flat_leaves(variables: Mapping[str, Any]):
    for collection, tree in variables.items():
        for path, leaf in traverse_util.flatten_dict(dict(tree)).items():
            yield collection, path, leaf


def torch_to_linen(
    state_dict: Mapping[str, np.ndarray],
    abstract_variables: Mapping[str, Any],
    *,
    source: str = "state dict",
) -> dict[str, Any]:
    """Converts a PyTorch-layout state dict into linen variables.

    Args:
      state_dict: name -> array (torch layout), e.g. from
        :func:`jaxcxai.models.torch_io.read_state_dict`.
      abstract_variables: the model's variables or their shapes, e.g.
        ``jax.eval_shape(model.init, key, images)``; fixes the expected keys, shapes
        and dtypes.
      source: how to name the state dict in error messages (a file path).

    Returns:
      ``{collection: nested dict of np.ndarray}`` with the same structure as
      ``abstract_variables`` (``params`` and, for BN models, ``batch_stats``).

    Raises:
      WeightMismatchError: listing all missing, unexpected and mis-shaped keys.
      WeightFileError: a tensor the model uses holds NaN or inf.
    """
    used, missing, misshaped = set(), [], []
    out: dict[str, dict] = {}
    for collection, path, leaf in _flat_leaves(abstract_variables):
        key = _torch_key(collection, path)
        expected = _torch_shape(path[-1], tuple(leaf.shape))
        if key not in state_dict:
            missing.append(f"{key} {expected}")
            continue
        used.add(key)
        value = np.asarray(state_dict[key])
        if value.shape != expected:
            misshaped.append(f"{key}: file {value.shape}, model expects {expected}")
            continue
        value = _from_torch_layout(path[-1], value).astype(leaf.dtype)
        # ascontiguousarray promotes 0-d arrays to 1-d: reshape back.
        out.setdefault(collection, {})[path] = np.ascontiguousarray(value).reshape(
            leaf.shape
        )
    unexpected = [
        f"{k} {tuple(np.shape(v))}"
        for k, v in state_dict.items()
        if k not in used and not k.endswith(_IGNORED_SUFFIXES)
    ]
    if missing or unexpected or misshaped:
        lines = [f"{source} does not match the model:"]
        for title, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("mis-shaped", misshaped),
        ):
            if items:
                lines.append(f"  {len(items)} {title} key(s):")
                lines.extend(f"    {item}" for item in items)
        raise WeightMismatchError("\n".join(lines))
    check_finite_weights(
        {_torch_key(c, p): v for c, tree in out.items() for p, v in tree.items()},
        source,
    )
    return {c: traverse_util.unflatten_dict(tree) for c, tree in out.items()}


def linen_to_torch(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Inverse of :func:`torch_to_linen`: linen variables -> torch-layout state dict."""
    variables = jax.device_get(variables)
    return {
        _torch_key(collection, path): np.ascontiguousarray(
            _to_torch_layout(path[-1], np.asarray(leaf))
        )
        for collection, path, leaf in _flat_leaves(variables)
    }
