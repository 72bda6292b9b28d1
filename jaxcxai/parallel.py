"""Device meshes and batch sharding (multi-host start-up: `distributed`).

jaxcxai is data-parallel through `jax.jit` over global arrays (no pmap): the
batch is split over the `data` axis of a mesh, parameters are replicated, and
XLA inserts the collectives. Losses that need every negative (contrastive,
hashing) are therefore written over the *global* batch and stay exact under
sharding.

Multi-host: call `initialize_distributed()` (from `jaxcxai.distributed`,
re-exported here) at the top of a script on every
host (a no-op on one host), then build the mesh over `jax.devices()` (all
hosts) and feed each host's share of the batch with `shard_batch`, which
assembles the global array from process-local data.

    # host i of N, same command on every host:
    python -m train.hashing --config configs/duch.py:ucm --workdir gs://... \\
        --coordinator=10.0.0.1:1234 --num_processes=N --process_id=i
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxcxai.distributed import DistributedInitError as DistributedInitError
from jaxcxai.distributed import initialize_distributed as initialize_distributed

DATA_AXIS = "data"
MODEL_AXIS = "model"

__all__ = [
    "DATA_AXIS",
    "MODEL_AXIS",
    "make_mesh",
    "data_sharding",
    "replicated_sharding",
    "shard_batch",
    "shard_global_batch",
    "to_host",
    "replicate",
    "host_slice",
    "check_batch_size",
    "vary_like",
    "initialize_distributed",
    "DistributedInitError",
]


def make_mesh(num_model: int = 1, devices: Sequence[Any] | None = None) -> Mesh:
    """Builds a `('data',)` or `('data', 'model')` mesh over all devices.

    Axes are `AxisType.Auto` so `with_sharding_constraint` and ordinary jit
    sharding propagation work (jax >= 0.10 defaults `make_mesh` to Explicit).

    Args:
      num_model: size of the optional `model` axis; 1 gives a 1-D data mesh.
      devices: devices to use (default: `jax.devices()`, every host's).

    Returns:
      A `Mesh` with axis `data` of size `n_devices // num_model`.

    Raises:
      ValueError: if the device count does not divide by `num_model`.
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if num_model < 1 or n % num_model:
        raise ValueError(
            f"num_model={num_model} must be >= 1 and divide the device count {n}."
        )
    if num_model == 1:
        return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))
    grid = np.asarray(devices).reshape(n // num_model, num_model)
    return Mesh(grid, (DATA_AXIS, MODEL_AXIS), axis_types=(AxisType.Auto,) * 2)


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding that splits the leading (batch) axis over `data`."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding that keeps a full copy on every device."""
    return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """Rejects a global batch that does not split evenly over `data`.

    Raises:
      ValueError: naming the batch size and the number of data shards.
    """
    n = mesh.shape[DATA_AXIS]
    if batch_size % n:
        raise ValueError(
            f"Global batch size {batch_size} is not divisible by the number of "
            f"data-parallel devices {n}; choose a multiple of {n}."
        )


def host_slice(
    global_size: int,
    process_index: int | None = None,
    process_count: int | None = None,
) -> slice:
    """The contiguous part of a global batch that this host feeds.

    Args:
      global_size: global batch size (must divide by the process count).
      process_index: defaults to `jax.process_index()`.
      process_count: defaults to `jax.process_count()`.
    """
    i = jax.process_index() if process_index is None else process_index
    n = jax.process_count() if process_count is None else process_count
    if global_size % n:
        raise ValueError(
            f"Global batch size {global_size} is not divisible by the number "
            f"of hosts {n}."
        )
    per = global_size // n
    return slice(i * per, (i + 1) * per)


def shard_batch(tree: Any, mesh: Mesh) -> Any:
    """Places a batch pytree with its leading axis split over `data`.

    On one host the leaves are the global batch. On several hosts each host
    passes its own contiguous share (see `host_slice`) and the global array is
    assembled from process-local data.

    Args:
      tree: pytree of arrays with a common leading batch dimension.
      mesh: mesh with a `data` axis.

    Returns:
      The same pytree of `jax.Array`s sharded as `P('data')`.

    Raises:
      ValueError: if a leaf has no batch axis or the global batch does not
        divide by the number of data shards.
    """
    sharding = data_sharding(mesh)
    nproc = jax.process_count()

    def put(x):
        x = np.asarray(x) if not isinstance(x, jax.Array) else x
        if x.ndim == 0:
            raise ValueError("shard_batch got a scalar leaf; batches need axis 0.")
        global_n = x.shape[0] * nproc
        check_batch_size(global_n, mesh)
        if nproc == 1:
            return jax.device_put(x, sharding)
        global_shape = (global_n,) + tuple(x.shape[1:])
        return jax.make_array_from_process_local_data(sharding, x, global_shape)

    return jax.tree.map(put, tree)


def shard_global_batch(tree: Any, mesh: Mesh) -> Any:
    """`shard_batch` for a batch that every host holds in full.

    Each host keeps its `host_slice` of the leading axis, so the assembled
    global array is the batch itself, whatever the process count (on one
    host this is `shard_batch`).
    """
    nproc = jax.process_count()
    if nproc == 1:
        return shard_batch(tree, mesh)
    part = lambda x: np.asarray(x)[host_slice(np.shape(x)[0])]
    return shard_batch(jax.tree.map(part, tree), mesh)


def to_host(tree: Any) -> Any:
    """Leaves as NumPy arrays holding the global values on every host.

    A leaf split across processes (e.g. the output of a step over a mesh
    that spans hosts) is gathered first; `np.asarray` alone cannot fetch
    the shards another host holds.
    """

    def get(x):
        if isinstance(x, jax.Array) and not (
            x.is_fully_addressable or x.is_fully_replicated
        ):
            from jax.experimental import multihost_utils

            x = multihost_utils.process_allgather(x, tiled=True)
        return np.asarray(x)

    return jax.tree.map(get, tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Puts a full copy of every leaf on every device of `mesh`."""
    return jax.device_put(tree, replicated_sharding(mesh))


def vary_like(tree: Any, anchor: jax.typing.ArrayLike) -> Any:
    """`tree` plus exact zeros computed from `anchor`.

    Under `shard_map` a loop's initial carries must vary across devices as
    its outputs do, and constants do not: tied to an input (`anchor`), they
    take its variance. The zeros stay 0 even for a NaN or inf anchor.
    """
    zero = jnp.where(anchor == anchor, 0, 0)
    return jax.tree.map(lambda c: c + zero.astype(c.dtype), tree)
