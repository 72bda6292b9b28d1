"""Resumable LoCE fitting into an on-disk store (results: `loce.results`).

`fit_to_store` fits chunk after chunk and writes each finished chunk as an
atomic part file (`parts/chunk_000007.npz`) before recording it in
`meta.json`; rerunning it on the same directory skips the recorded chunks, so
an interrupted fit ends with the same arrays. The last step consolidates the
parts into `results.npz` (written to a temporary name, then renamed).

Resume identity: `meta.json` records a fingerprint of what produced the rows
(the `LoceConfig`, the PRNG key, and the caller's fields: backbone weights,
instance table, data spec); a rerun with any of them changed raises
`FingerprintError` naming the field, finished or not, so a store never mixes
rows of two models. Temporary files and part files that `meta.json` does not
list (a kill mid-write or mid-cleanup) are deleted by the next run.
"""

import dataclasses
import itertools
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxcxai import parallel
from jaxcxai.atomic_files import atomic_write, is_temporary
from jaxcxai.checks import NonFiniteError, check_fingerprint, fingerprint_record
from jaxcxai.concepts.loce import fit as loce
from jaxcxai.concepts.loce import projection
from jaxcxai.concepts.loce.iou import iou_on_grid as iou_on_grid
from jaxcxai.concepts.loce.iou import iou_original as iou_original
from jaxcxai.concepts.loce.objectives import LoceConfig
from jaxcxai.concepts.loce.results import INDEX_FIELDS as INDEX_FIELDS
from jaxcxai.concepts.loce.results import LoceChunk as LoceChunk
from jaxcxai.concepts.loce.results import LoceResults as LoceResults
from jaxcxai.concepts.loce.results import (
    _flat,
    _index_columns,
    _unflat,
    _write_json,
)
from jaxcxai.concepts.loce.results import load_results as load_results
from jaxcxai.concepts.loce.results import save_results as save_results

__all__ = [
    "INDEX_FIELDS",
    "LoceChunk",
    "LoceResults",
    "fit_to_store",
    "iou_on_grid",
    "iou_original",
    "load_results",
    "save_results",
]

_PART = re.compile(r"^chunk_(\d{6})\.npz$")


def _fit_chunk(chunk: LoceChunk, config, mesh, key, with_projections) -> dict:
    acts = chunk.acts if isinstance(chunk.acts, Mapping) else {"layer": chunk.acts}
    out = {}
    for name, a in acts.items():
        t = chunk.targets[name] if isinstance(chunk.targets, Mapping) else chunk.targets
        t = np.asarray(t, np.float32)
        try:
            if mesh is None:
                v = loce.fit_batch(a, t, config=config, key=key)
            else:
                v = loce.fit_sharded(a, t, config=config, mesh=mesh, key=key)
        except NonFiniteError as e:  # name the chunk's layer
            raise NonFiniteError(f"layer {name!r} {e.name}", e.count, e.size) from None
        v = parallel.to_host(v)  # gathered: the rows may span several hosts
        grid = t.shape[-2:]
        z = jax.vmap(
            lambda v_, a_, g=grid: projection.logits(v_, a_, g, mode=config.interp)
        )(v, jnp.asarray(a))
        res = {"loce": v, "iou": np.asarray(iou_on_grid(z, t))}
        if chunk.masks is not None or with_projections:
            proj = np.asarray(
                (255.0 * jax.nn.sigmoid(jnp.clip(z, -10, 10))).astype(jnp.uint8)
            )
            if with_projections:
                res["proj"] = proj
            if chunk.masks is not None:
                single = proj if proj.ndim == 3 else proj[:, 0]  # first view
                res["iou_orig"] = iou_original(single, chunk.masks)
        res.setdefault("iou_orig", np.full(v.shape[0], np.nan, np.float32))
        out[name] = res
    return out


def fit_to_store(
    chunks: Iterable | Callable[[int], Iterable],
    directory: str,
    *,
    config=LoceConfig(),
    mesh: Mesh | None = None,
    key=None,
    with_projections: bool = False,
    fingerprint: Mapping | None = None,
) -> LoceResults:
    """Fits LoCEs chunk by chunk into `directory`, resuming where it stopped.

    Args:
      chunks: an iterable of `LoceChunk` (or `(acts, targets)` tuples), or a
        callable `start -> iterable` that starts at chunk `start` (lets a
        resumed run skip loading finished chunks; a plain iterable is skipped
        through).
      directory: output directory (`meta.json`, `parts/`, `results.npz`).
      config: the `LoceConfig`; a resumed run must use the same one.
      mesh: shard each chunk over this mesh's `data` axis (None: one device).
      key: PRNG key for random inits; chunk i uses fold_in(key, i).
      with_projections: also store the uint8 projections (N, [V,] T, T).
      fingerprint: what produced the inputs, e.g. `{"backbone":
        features.backbone_fingerprint(net), "instances": table}`
        (`jaxcxai.checks.fingerprint_record`); recorded with the config and
        the key, and checked when the directory is reused.

    Returns:
      The consolidated `LoceResults` (rows in chunk order).

    Raises:
      FingerprintError: `directory` holds a fit of other inputs (names the
        changed field; delete the directory to start afresh).
      NonFiniteError: a chunk's activations or targets hold NaN or inf
        (names the chunk, the layer and the count).
    """
    meta_path = os.path.join(directory, "meta.json")
    inputs = {
        "config": dataclasses.asdict(config),
        "with_projections": with_projections,
        "key": None if key is None else np.asarray(jax.random.key_data(key)),
        **(fingerprint or {}),
    }
    meta = {"fingerprint": fingerprint_record(inputs), "chunks_done": 0}
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            old = json.load(f)
        check_fingerprint(
            old.get("fingerprint"), inputs, path=directory,
            what=f"LoCE store {directory}", fresh=f"delete {directory}",
        )  # fmt: skip
        meta = old
    # Several hosts share `directory`: each fits every chunk with the others
    # (the mesh spans them) but process 0 alone writes. Every host must have
    # read meta.json before process 0 changes it, so all start at one chunk.
    writer = jax.process_index() == 0
    _barrier("loce_store_read")
    if not writer:
        if meta.get("finished"):
            return load_results(directory)
        _fit_chunks(chunks, directory, meta, config, mesh, key, with_projections, False)
        _barrier("loce_store_done")
        return load_results(directory)
    _remove_orphans(directory, meta)
    if meta.get("finished"):
        return load_results(directory)
    results = _fit_chunks(
        chunks, directory, meta, config, mesh, key, with_projections, True
    )
    _barrier("loce_store_done")
    return results


def _barrier(name: str) -> None:
    """Waits for every host (a no-op on one)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _fit_chunks(chunks, directory, meta, config, mesh, key, with_projections, write):
    """Fits the chunks after `meta["chunks_done"]`; with `write` stores each
    and consolidates (process 0), else only takes part in the fits."""
    meta_path = os.path.join(directory, "meta.json")
    parts = os.path.join(directory, "parts")
    if write:
        os.makedirs(parts, exist_ok=True)
    start = meta["chunks_done"]
    stream = (
        chunks(start) if callable(chunks) else itertools.islice(chunks, start, None)
    )
    for i, chunk in enumerate(stream, start=start):
        chunk = LoceChunk(*chunk)
        k = None if key is None else jax.random.fold_in(key, i)
        try:
            layers = _fit_chunk(chunk, config, mesh, k, with_projections)
        except NonFiniteError as e:
            raise NonFiniteError(f"chunk {i} {e.name}", e.count, e.size) from None
        if not write:
            continue
        n = next(iter(layers.values()))["loce"].shape[0]
        arrays = _flat(layers, _index_columns(chunk.index, n))
        atomic_write(  # `parts` was swept on open (`_remove_orphans`)
            os.path.join(parts, f"chunk_{i:06d}.npz"),
            lambda f, a=arrays: np.savez(f, **a),
            sweep=False,
        )
        meta["chunks_done"] = i + 1
        _write_json(meta_path, meta)
    if not write:
        return None
    results = _consolidate(parts, meta["chunks_done"], meta)
    save_results(directory, results)
    shutil.rmtree(parts, ignore_errors=True)
    return results


def _remove_orphans(directory: str, meta: dict) -> None:
    """Deletes what a killed run left: temporary files, unlisted part files,
    and the parts of a finished store (a kill during the final cleanup)."""
    parts = os.path.join(directory, "parts")
    if meta.get("finished"):
        shutil.rmtree(parts, ignore_errors=True)
    for folder in (directory, parts):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            m = _PART.match(name) if folder == parts else None
            if is_temporary(name) or (m and int(m[1]) >= meta["chunks_done"]):
                os.remove(os.path.join(folder, name))


def _consolidate(parts: str, n_chunks: int, meta: dict) -> LoceResults:
    pieces = []
    for i in range(n_chunks):
        with np.load(
            os.path.join(parts, f"chunk_{i:06d}.npz"), allow_pickle=False
        ) as d:
            pieces.append({k: d[k] for k in d.files})
    if not pieces:
        raise ValueError("no chunks were fitted (empty input)")
    arrays = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    layers, index = _unflat(arrays)
    meta = dict(meta, n=int(len(next(iter(index.values())))), layers=sorted(layers))
    return LoceResults(layers, index, meta)
