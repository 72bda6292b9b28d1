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

The cache reader and writers live in ``jaxcxai.feature_cache``; this module
holds the extraction loop and the batching of the input.
"""

import dataclasses
import functools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from tqdm.auto import tqdm

from jaxcxai import checks, parallel
from jaxcxai.checks import NonFiniteError
from jaxcxai.feature_cache import FeatureCache as FeatureCache
from jaxcxai.feature_cache import _CacheWriter, _Hosts, _MemoryWriter
from jaxcxai.feature_cache import pooled_name as pooled_name

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


def _check_shape(x, what: str) -> None:
    """Raises unless ``x`` is shaped (N, H, W, C); reads none of its data."""
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) != 4:
        raise ValueError(
            f"{what} must be a 4-D batch of images (N, H, W, C); got {shape}"
        )


def _check_batch(x, what: str) -> np.ndarray:
    _check_shape(x, what)
    return np.asarray(x)


class _DistributedHosts(_Hosts):
    """Every `jax.distributed` process, for the cache writer."""

    def __init__(self):
        self.index, self.count = jax.process_index(), jax.process_count()

    def sync(self, name: str) -> None:
        multihost_utils.sync_global_devices(name)

    def allgather(self, values) -> np.ndarray:
        mine = np.asarray(values, np.int64)
        return np.asarray(multihost_utils.process_allgather(mine))


@functools.cache
def _replicator(mesh: jax.sharding.Mesh) -> Callable:
    """Jitted identity that makes a pytree fully replicated over ``mesh``.

    One all-gather program per batch's tree of outputs (what
    ``multihost_utils.process_allgather`` does leaf by leaf, one program
    each); cached per mesh so repeated extractions reuse its compilations.
    """
    return jax.jit(lambda tree: tree, out_shardings=parallel.replicated_sharding(mesh))


def _gather_to_every_host(tree, mesh: jax.sharding.Mesh):
    """NumPy copies of a pytree of (cross-host) arrays, the same on every host."""
    full = _replicator(mesh)(tree)
    return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), full)


def _mesh_processes(mesh: jax.sharding.Mesh) -> int:
    """How many processes `mesh` spans; a multi-host mesh must span all.

    Raises:
      ValueError: the mesh spans several processes but not every one.
    """
    procs = {d.process_index for d in mesh.devices.flat}
    if len(procs) > 1 and len(procs) != jax.process_count():
        raise ValueError(
            f"the mesh spans processes {sorted(procs)} of {jax.process_count()}; "
            "a multi-host mesh must include devices of every process"
        )
    return len(procs)


def _host_rows(
    images, start: int, batch_size: int, n_dev: int, nproc: int
) -> Iterator[tuple[np.ndarray, int, int]]:
    """This host's rows of each global batch of an array-like, read lazily.

    The global batch of ``b`` real rows is zero-padded to ``padded``, a
    multiple of the device count, and the host reads only the real rows of
    its ``host_slice(padded)`` (none, for a host whose slice is padding).

    Yields:
      ``(x, b, num_real)``: x (padded / nproc, H, W, C), the global batch's
      real size, and how many of x's rows are real (the first ones).
    """
    num = images.shape[0]
    dtype = getattr(images, "dtype", np.float32)
    for i in range(start, num, batch_size):
        b = min(batch_size, num - i)
        padded = -(-b // n_dev) * n_dev
        rows = _my_rows(padded, nproc)
        lo, hi = rows.start, min(rows.stop, b)
        if hi > lo:
            x = np.asarray(images[i + lo : i + hi])
        else:  # all padding: read nothing (h5py rejects empty selections)
            x = np.zeros((0, *images.shape[1:]), dtype)
        yield _pad(x, rows.stop - rows.start), b, max(hi - lo, 0)


def _host_cut(
    batches: Iterator[np.ndarray], n_dev: int, nproc: int
) -> Iterator[tuple[np.ndarray, int, int]]:
    """This host's slice of each (already read) global batch; as `_host_rows`."""
    for x in batches:
        b = len(x)
        padded = -(-b // n_dev) * n_dev
        rows = _my_rows(padded, nproc)
        real = max(min(rows.stop, b) - rows.start, 0)
        yield _pad(x[rows], rows.stop - rows.start), b, real


def _my_rows(padded: int, nproc: int) -> slice:
    """This host's rows of a padded global batch (all of them on a mesh
    of this host's devices, whatever the process count)."""
    if nproc == 1:
        return slice(0, padded)
    return parallel.host_slice(padded)


def _pad(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` zero-padded along axis 0 to ``n`` rows."""
    if len(x) == n:
        return x
    return np.concatenate([x, np.zeros((n - len(x), *x.shape[1:]), x.dtype)])


def _iter_batches(
    batches: Iterable, start: int, batch_size: int
) -> Iterator[np.ndarray]:
    """Re-cuts an iterable of batches into batch_size pieces, skipping ``start``."""
    buf, n, skip, trailing = [], 0, start, None
    for k, b in enumerate(batches):
        b = _check_batch(b, f"batch {k} of the image iterable")
        if trailing is None:
            trailing = b.shape[1:]
        elif b.shape[1:] != trailing:
            raise ValueError(
                f"batch {k} has example shape {b.shape[1:]}, expected {trailing}"
            )
        if skip:  # already cached by an earlier run: read but not recomputed
            b, skip = b[skip:], max(0, skip - len(b))
        buf.append(b)
        n += len(b)
        while n >= batch_size:
            cat = np.concatenate(buf)
            yield cat[:batch_size]
            buf, n = [cat[batch_size:]], n - batch_size
    if n:
        yield np.concatenate(buf)


def _make_step(apply_fn, layers, dtype, pool: bool, keep_acts: bool):
    def step(x, real):
        logits, acts = apply_fn(x)
        out = {}
        for layer in layers:
            if layer in acts:
                a = acts[layer]
            elif layer == "logits":
                a = logits
            else:
                raise KeyError(
                    f"layer {layer!r} not returned by apply_fn; have {list(acts)}"
                )
            if keep_acts:
                out[layer] = a.astype(dtype)
            if pool:
                axes = tuple(range(1, a.ndim - 1))
                out[pooled_name(layer)] = a.astype(jnp.float32).mean(axis=axes)
        # Non-finite counts of the real (unpadded) rows, fetched with them;
        # `real` (B,) bool is sharded like `x`, so padding may sit on any host.
        bad = {
            k: jnp.sum(~jnp.isfinite(v) & real.reshape((-1,) + (1,) * (v.ndim - 1)))
            for k, v in out.items()
        }
        return out, bad

    return jax.jit(step)


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
    nproc = _mesh_processes(mesh)
    parallel.check_batch_size(batch_size, mesh)
    chunk_size = chunk_size or batch_size * max(1, 1024 // batch_size)
    if chunk_size % batch_size:
        raise ValueError(
            f"chunk_size={chunk_size} is not a multiple of batch_size={batch_size}"
        )
    is_array = hasattr(images, "shape") and hasattr(images, "__getitem__")
    if is_array:  # lazily sliced later: a host reads only its rows
        _check_shape(images, "images")
    num = images.shape[0] if is_array else None
    config = {
        "layers": layers,
        "dtype": dtype.name,
        "pool": pool,
        "keep_acts": keep_acts,
        "chunk_size": chunk_size,
        "num_examples": num,
    }
    hosts = _DistributedHosts() if nproc > 1 else None
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
    step = _make_step(apply_fn, layers, dtype, pool, keep_acts)

    def host_batches(start) -> Iterator[tuple[np.ndarray, int, int]]:
        if is_array:
            return _host_rows(images, start, batch_size, n_dev, nproc)
        return _host_cut(_iter_batches(images, start, batch_size), n_dev, nproc)

    def put(x, real):
        real = np.arange(len(x)) < real
        if nproc == 1:
            return jax.device_put((x, real), parallel.data_sharding(mesh))
        return parallel.shard_batch((x, real), mesh)

    def fetch(pending, start) -> dict[str, np.ndarray]:
        pulled = (
            jax.device_get(pending[0])
            if nproc == 1
            else _gather_to_every_host(pending[0], mesh)
        )
        (out, bad), b = pulled, pending[1]
        for k, count in bad.items():
            if count:
                raise NonFiniteError(
                    f"apply_fn's {k!r} of images {start}..{start + b - 1}",
                    int(count), out[k][:b].size,
                    "the backbone returned them (broken or diverged weights, "
                    "NaN input, or float16 overflow: try dtype=float32)",
                )  # fmt: skip
        return {k: v[:b] for k, v in out.items()}

    def outputs() -> Iterator[dict[str, np.ndarray]]:
        # Dispatch batch i+1 before fetching batch i so host I/O overlaps compute.
        pending, start = None, writer.num_done
        for x, b, real in host_batches(writer.num_done):
            with jax.set_mesh(mesh):
                out = step(*put(x, real))
            if pending is not None:
                yield fetch(pending, start)
                start += pending[1]
            pending = (out, b)
        if pending is not None:
            yield fetch(pending, start)

    quiet = not progress or jax.process_index() != 0  # one bar per run
    bar = tqdm(total=num, initial=writer.num_done, unit="img", disable=quiet)
    chunk, in_chunk, total = [], 0, writer.num_done
    for out in outputs():
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
