"""The input side of `features.extract`: batches and hosts.

Checks an image batch's shape without reading it, re-cuts an iterable of
batches into fixed-size batches, gives each host its rows of every padded
global batch (array-likes read lazily, so a host reads only its part), and
gathers a batch's outputs to every host. On one host a host's rows are the
whole batch. See `jaxcxai.features` for how `extract` uses them.
"""

import functools
from collections.abc import Callable, Iterable, Iterator

import jax
import numpy as np
from jax.experimental import multihost_utils

from jaxcxai import parallel
from jaxcxai.feature_writers import _Hosts

__all__ = [
    "DistributedHosts",
    "check_batch",
    "check_shape",
    "gather_to_every_host",
    "host_cut",
    "host_rows",
    "iter_batches",
    "mesh_processes",
    "my_rows",
    "pad",
    "replicator",
]


def check_shape(x, what: str) -> None:
    """Raises unless ``x`` is shaped (N, H, W, C); reads none of its data."""
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) != 4:
        raise ValueError(
            f"{what} must be a 4-D batch of images (N, H, W, C); got {shape}"
        )


def check_batch(x, what: str) -> np.ndarray:
    check_shape(x, what)
    return np.asarray(x)


class DistributedHosts(_Hosts):
    """Every `jax.distributed` process, for the cache writer."""

    def __init__(self):
        self.index, self.count = jax.process_index(), jax.process_count()

    def sync(self, name: str) -> None:
        multihost_utils.sync_global_devices(name)

    def allgather(self, values) -> np.ndarray:
        mine = np.asarray(values, np.int64)
        return np.asarray(multihost_utils.process_allgather(mine))


@functools.cache
def replicator(mesh: jax.sharding.Mesh) -> Callable:
    """Jitted identity that makes a pytree fully replicated over ``mesh``.

    One all-gather program per batch's tree of outputs (what
    ``multihost_utils.process_allgather`` does leaf by leaf, one program
    each); cached per mesh so repeated extractions reuse its compilations.
    """
    return jax.jit(lambda tree: tree, out_shardings=parallel.replicated_sharding(mesh))


def gather_to_every_host(tree, mesh: jax.sharding.Mesh):
    """NumPy copies of a pytree of (cross-host) arrays, the same on every host."""
    full = replicator(mesh)(tree)
    return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), full)


def mesh_processes(mesh: jax.sharding.Mesh) -> int:
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


def host_rows(
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
        rows = my_rows(padded, nproc)
        lo, hi = rows.start, min(rows.stop, b)
        if hi > lo:
            x = np.asarray(images[i + lo : i + hi])
        else:  # all padding: read nothing (h5py rejects empty selections)
            x = np.zeros((0, *images.shape[1:]), dtype)
        yield pad(x, rows.stop - rows.start), b, max(hi - lo, 0)


def host_cut(
    batches: Iterator[np.ndarray], n_dev: int, nproc: int
) -> Iterator[tuple[np.ndarray, int, int]]:
    """This host's slice of each (already read) global batch; as `host_rows`."""
    for x in batches:
        b = len(x)
        padded = -(-b // n_dev) * n_dev
        rows = my_rows(padded, nproc)
        real = max(min(rows.stop, b) - rows.start, 0)
        yield pad(x[rows], rows.stop - rows.start), b, real


def my_rows(padded: int, nproc: int) -> slice:
    """This host's rows of a padded global batch (all of them on a mesh
    of this host's devices, whatever the process count)."""
    if nproc == 1:
        return slice(0, padded)
    return parallel.host_slice(padded)


def pad(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` zero-padded along axis 0 to ``n`` rows."""
    if len(x) == n:
        return x
    return np.concatenate([x, np.zeros((n - len(x), *x.shape[1:]), x.dtype)])


def iter_batches(
    batches: Iterable, start: int, batch_size: int
) -> Iterator[np.ndarray]:
    """Re-cuts an iterable of batches into batch_size pieces, skipping ``start``."""
    buf, n, skip, trailing = [], 0, start, None
    for k, b in enumerate(batches):
        b = check_batch(b, f"batch {k} of the image iterable")
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
