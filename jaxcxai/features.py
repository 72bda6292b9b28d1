"""Backbone activations over a dataset: sharded over devices, cached in chunks.

``extract`` runs a backbone ``apply_fn(images) -> (logits, {layer: act})`` over
a dataset with the batch split over the ``data`` axis of a mesh, and returns
(or caches) per requested layer the activations, stored as float16 or float32,
and their pooled features (mean over every axis between batch and channels,
i.e. H and W for (N, H, W, C) maps; always float32).

Entry names: ``layer`` for activations and ``pooled_name(layer)`` =
``"layer/pooled"`` for pooled features.

Cache layout (``cache_dir``): ``index.json`` plus one ``.npy`` per entry and
chunk. Chunk files are written to a temporary name and renamed, and the index
is rewritten (atomically) only after all files of a chunk exist, so an
interrupted run leaves only whole chunks; re-running resumes after the last
chunk the index lists, if the index's fingerprint (settings plus the caller's
``fingerprint``: weights, data, seed) matches.

Several hosts (``jax.distributed``, a mesh over every process's devices, the
default): run the same call on every host. Each host reads only its
``parallel.host_slice`` of every global batch (an array-like input is sliced
lazily; an iterable is read on every host, which keeps its slice), the batch
is assembled with ``parallel.shard_batch``, and each batch's outputs are
gathered to every host, so every host returns the complete result. With a
cache, chunk ``k`` is written by host ``k % num_hosts`` and process 0 writes
the index once a barrier has seen every host's files
(``jaxcxai.feature_cache``); the cache files do not depend on the host count,
so a cache interrupted with N hosts resumes with M, and the index's
``chunk_writers`` records which host wrote each chunk. ``cache_dir`` must be
one directory shared by every host (checked on opening). Gathering every
batch costs the transfer of the outputs to every host; it keeps the writers
simple (any host can write any chunk) and the returned value complete.

Non-finite activations: ``extract`` counts NaN / inf in what the backbone
returns, on device and fetched with the batch, and raises
``jaxcxai.checks.NonFiniteError`` naming the entry, the count and the images,
so a broken backbone's NaNs never reach a cache or a method.

The cache reader lives in ``jaxcxai.feature_cache``, its writers in
``jaxcxai.feature_writers``, the batching of the input over hosts in
``jaxcxai.feature_batches``, the jitted step and its dispatch and fetch in
``jaxcxai.feature_steps``; this module holds the extraction loop.
"""

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxcxai import checks, parallel
from jaxcxai import feature_batches as fb
from jaxcxai import feature_steps as fs
from jaxcxai.feature_cache import FeatureCache as FeatureCache
from jaxcxai.feature_cache import pooled_name as pooled_name
from jaxcxai.feature_writers import _CacheWriter, _MemoryWriter

__all__ = [
    "FeatureCache",
    "backbone_fingerprint",
    "extract",
    "pooled_name",
    "spatial_maps",
]


def backbone_fingerprint(net) -> dict:
    """What identifies a trained backbone: its weights' digest and its meta.

    Args:
      net: a `jaxcxai.training.TrainedBackbone` (anything with `variables`
        and a dataclass `meta`).

    Returns:
      {"weights": "sha256:..." of every variable's bytes, "meta": the
      `backbone.json` fields}, for `fingerprint=` arguments.
    """
    return {"weights": checks.fingerprint(net.variables),
            "meta": dataclasses.asdict(net.meta)}  # fmt: skip


def extract(
    apply_fn: Callable,
    images,
    layers: Iterable[str],
    *,
    batch_size: int,
    mesh: jax.sharding.Mesh | None = None,
    dtype=np.float16,
    pool: bool = True,
    keep_acts: bool = True,
    cache_dir: str | os.PathLike | None = None,
    chunk_size: int | None = None,
    fingerprint: Mapping | None = None,
    progress: bool = True,
) -> "dict[str, np.ndarray] | FeatureCache":
    """Runs ``apply_fn`` over a dataset and collects the requested layers.

    Args:
        apply_fn: ``images -> (logits, {layer: act})`` with variables closed over;
            it is jitted here. ``"logits"`` may be requested as a layer.
        images: (N, H, W, C) array-like (numpy, memmap, h5py: sliced lazily), or
            an iterable of (b, H, W, C) batches of any size.
        layers: names of the activations to keep.
        batch_size: global batch per call; a multiple of the mesh's ``data`` size.
            The last partial batch is zero-padded to a multiple of the device
            count and the padding dropped.
        mesh: mesh with a ``data`` axis (default ``parallel.make_mesh()``,
            every host's devices). A mesh over several processes must span
            all of them; each host then feeds its ``host_slice`` of every
            batch (module docstring).
        dtype: storage dtype of activations, float16 or float32.
        pool: also return ``pooled_name(layer)``: float32 means over the axes
            between batch and channels, (N, C).
        keep_acts: return the full activations (False keeps only pooled ones).
        cache_dir: if given, write chunks there, resume a partial cache, and
            return a ``FeatureCache``; a complete cache returns at once. On
            several hosts: one directory that every host sees.
        chunk_size: examples per cache chunk (a multiple of ``batch_size``;
            default about 1024).
        fingerprint: with ``cache_dir``, what produced the activations, e.g.
            ``{"backbone": backbone_fingerprint(net), "data": spec, "seed":
            seed}`` (``jaxcxai.checks.fingerprint_record``); recorded in
            the index, and a cache written with another one is refused.
            None records nothing beyond the settings: the caller vouches for
            the model and the data.
        progress: show a tqdm bar.

    Returns:
        ``{entry: (N, ...) array}``, or a ``FeatureCache`` when ``cache_dir``;
        on several hosts, the complete result on every host.

    Raises:
        ValueError: images not 4-D, bad dtype/batch/chunk size, a mesh over
            some but not all processes, or hosts that see different caches.
        FingerprintError: the cache was written with other settings or
            another fingerprint (names the field).
        NonFiniteError: the backbone returned NaN or inf (names the entry,
            the count and the image range; nothing of that chunk is stored).
        KeyError: unknown layer.
    """
    layers = [layers] if isinstance(layers, str) else list(layers)
    dtype = np.dtype(dtype)
    if dtype not in (np.float16, np.float32):
        raise ValueError(f"dtype must be float16 or float32, got {dtype}")
    if not layers or not (pool or keep_acts):
        raise ValueError("nothing to extract: give layers and pool or keep_acts")
    mesh = parallel.make_mesh() if mesh is None else mesh
    n_dev = mesh.shape[parallel.DATA_AXIS]
    nproc = fb.mesh_processes(mesh)
    parallel.check_batch_size(batch_size, mesh)
    chunk_size = chunk_size or batch_size * max(1, 1024 // batch_size)
    if chunk_size % batch_size:
        raise ValueError(
            f"chunk_size={chunk_size} is not a multiple of batch_size={batch_size}"
        )
    is_array = hasattr(images, "shape") and hasattr(images, "__getitem__")
    if is_array:  # lazily sliced later: a host reads only its rows
        fb.check_shape(images, "images")
    num = images.shape[0] if is_array else None
    config = {
        "layers": layers,
        "dtype": dtype.name,
        "pool": pool,
        "keep_acts": keep_acts,
        "chunk_size": chunk_size,
        "num_examples": num,
    }
    hosts = fb.DistributedHosts() if nproc > 1 else None
    writer = (
        _CacheWriter(Path(cache_dir), config, fingerprint or {}, hosts)
        if cache_dir
        else _MemoryWriter()
    )
    if cache_dir and writer.index["complete"]:
        cache = FeatureCache(cache_dir)
        if num is not None and len(cache) != num:
            raise ValueError(
                f"cache {cache_dir} holds {len(cache)} examples, input has {num}"
            )
        return cache
    step = fs.make_step(apply_fn, layers, dtype, pool, keep_acts)

    def host_batches(start) -> Iterator[tuple[np.ndarray, int, int]]:
        if is_array:
            return fb.host_rows(images, start, batch_size, n_dev, nproc)
        return fb.host_cut(fb.iter_batches(images, start, batch_size), n_dev, nproc)

    quiet = not progress or jax.process_index() != 0  # one bar per run
    bar = tqdm(total=num, initial=writer.num_done, unit="img", disable=quiet)
    chunk, in_chunk, total = [], 0, writer.num_done
    outputs = fs.run_steps(
        step, host_batches(writer.num_done), mesh, nproc, writer.num_done
    )
    for out in outputs:
        n = len(next(iter(out.values())))
        chunk.append(out)
        bar.update(n)
        in_chunk, total = in_chunk + n, total + n
        if in_chunk == chunk_size:
            writer.write({k: np.concatenate([c[k] for c in chunk]) for k in out})
            chunk, in_chunk = [], 0
    if chunk:
        writer.write({k: np.concatenate([c[k] for c in chunk]) for k in chunk[0]})
    bar.close()
    if total == 0:
        raise ValueError("no images to extract features from")
    return writer.finish()


def spatial_maps(
    apply_fn: Callable,
    images,
    layers: Iterable[str],
    *,
    batch_size: int,
    progress: bool = False,
    who: str = "this study",
) -> dict[str, np.ndarray]:
    """{layer: (N, h, w, C) float32} activation maps, in memory, sharded over
    the default mesh (`extract` without pooling or a cache).

    Raises:
      ValueError: a layer's activations are not spatial (N, h, w, C),
        naming the layer, its shape and `who` needs them.
    """
    layers = list(layers)
    acts = extract(
        apply_fn, images, layers, batch_size=batch_size, mesh=parallel.make_mesh(),
        dtype=np.float32, pool=False, progress=progress,
    )  # fmt: skip
    for name in layers:
        if acts[name].ndim != 4:
            raise ValueError(
                f"layer {name!r} has shape {acts[name].shape}; {who} needs "
                "spatial (N, h, w, C) activations"
            )
    return {name: np.asarray(acts[name], np.float32) for name in layers}
