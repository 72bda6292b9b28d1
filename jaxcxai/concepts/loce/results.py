"""LoCE results as arrays: the fit's input chunks, results, atomic files.

Per layer a fit produces the LoCE matrix (N, C), the IoU of each LoCE's own
projection on the T x T grid and at the original mask resolution, and
optionally the uint8 projections (N, T, T). An index table (image id,
concept, sub-concept, background; strings, "" when unknown) names the rows.
`save_results` writes `results.npz` and `meta.json` atomically (temporary
name, then rename); `load_results` reads them (`loce.store.fit_to_store`
writes the same files).
"""

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from jaxcxai.atomic_files import atomic_write, write_text_atomic

__all__ = ["INDEX_FIELDS", "LoceChunk", "LoceResults", "load_results", "save_results"]

INDEX_FIELDS = ("image_id", "concept", "sub_concept", "background")


class LoceChunk(NamedTuple):
    """One chunk of fitting input.

    Attributes:
      acts: (n, [V,] C, h, w) array, or {layer: array}.
      targets: (n, [V,] T, T) soft targets (or {layer: targets} for GCPV's
        native-resolution masks).
      masks: optional n original-resolution binary masks (any shapes).
      index: optional {field: n values} for `INDEX_FIELDS`.
    """

    acts: Any
    targets: Any
    masks: Sequence[np.ndarray] | None = None
    index: Mapping[str, Sequence] | None = None


@dataclasses.dataclass
class LoceResults:
    """layers: {layer: {"loce", "iou", "iou_orig"[, "proj"]}}; index: {field: (N,)}."""

    layers: dict[str, dict[str, np.ndarray]]
    index: dict[str, np.ndarray]
    meta: dict


def _write_json(path: str, obj: dict) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True))


def _flat(layers: Mapping, index: Mapping) -> dict[str, np.ndarray]:
    arrays = {
        f"layer/{name}/{k}": np.asarray(v)
        for name, d in layers.items()
        for k, v in d.items()
    }
    arrays.update({f"index/{k}": np.asarray(v) for k, v in index.items()})
    return arrays


def _unflat(arrays: Mapping[str, np.ndarray]) -> tuple[dict, dict]:
    layers: dict[str, dict[str, np.ndarray]] = {}
    index = {}
    for key, value in arrays.items():
        kind, rest = key.split("/", 1)
        if kind == "index":
            index[rest] = value
        else:
            name, field = rest.rsplit("/", 1)
            layers.setdefault(name, {})[field] = value
    return layers, index


def save_results(path: str, results: LoceResults) -> None:
    """Writes `results.npz` and `meta.json` into directory `path`, atomically."""
    os.makedirs(path, exist_ok=True)
    arrays = _flat(results.layers, results.index)
    atomic_write(os.path.join(path, "results.npz"), lambda f: np.savez(f, **arrays))
    _write_json(os.path.join(path, "meta.json"), dict(results.meta, finished=True))


def load_results(path: str) -> LoceResults:
    """Loads what `save_results` / `fit_to_store` wrote in directory `path`."""
    file = os.path.join(path, "results.npz")
    if not os.path.exists(file):
        raise FileNotFoundError(f"no LoCE results at {file} (unfinished fit?)")
    with np.load(file, allow_pickle=False) as data:
        layers, index = _unflat({k: data[k] for k in data.files})
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    return LoceResults(layers, index, meta)


def _index_columns(index, n: int) -> dict[str, np.ndarray]:
    index = dict(index or {})
    unknown = set(index) - set(INDEX_FIELDS)
    if unknown:
        raise ValueError(f"unknown index fields {sorted(unknown)}; use {INDEX_FIELDS}")
    cols = {}
    for field in INDEX_FIELDS:
        values = index.get(field, [""] * n)
        if len(values) != n:
            raise ValueError(
                f"index field {field!r} has {len(values)} values for {n} samples"
            )
        cols[field] = np.asarray([str(x) for x in values], dtype=np.str_)
    return cols
