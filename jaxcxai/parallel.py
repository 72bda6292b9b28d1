"""Device meshes, batch sharding and multi-host start-up.

jaxcxai is data-parallel through `jax.jit` over global arrays (no pmap): the
batch is split over the `data` axis of a mesh, parameters are replicated, and
XLA inserts the collectives. Losses that need every negative (contrastive,
hashing) are therefore written over the *global* batch and stay exact under
sharding.

Multi-host: call `initialize_distributed()` at the top of a script on every
host (a no-op on one host), then build the mesh over `jax.devices()` (all
hosts) and feed each host's share of the batch with `shard_batch`, which
assembles the global array from process-local data.

    # host i of N, same command on every host:
    python -m train.hashing --config configs/duch.py:ucm --workdir gs://... \\
        --coordinator=10.0.0.1:1234 --num_processes=N --process_id=i
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"
MODEL_AXIS = "model"

__all__ = [
    "DATA_AXIS",
    "MODEL_AXIS",
    "make_mesh",
    "data_sharding",
    "replicated_sharding",
    "shard_batch",
    "replicate",
    "host_slice",
    "check_batch_size",
    "initialize_distributed",
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


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Puts a full copy of every leaf on every device of `mesh`."""
    return jax.device_put(tree, replicated_sharding(mesh))


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Starts `jax.distributed` for multi-host runs; a no-op on one host.

    With all three arguments `None` nothing happens unless the environment of
    a cluster launcher (SLURM, Cloud TPU, ...) is detected, in which case jax
    auto-detects them. Must be called before any other JAX call.

    Returns:
      True if a multi-process runtime was initialized.
    """
    explicit = coordinator_address is not None
    if explicit and (num_processes is None or process_id is None):
        raise ValueError(
            "Multi-host start needs coordinator_address, num_processes and "
            "process_id together."
        )
    if explicit and num_processes == 1:
        return False
    if not explicit and not _cluster_env_detected():
        return False
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )
    return True


def _cluster_env_detected() -> bool:
    """True when a cluster launcher describes more than one process."""
    if "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""):
        return True
    for key in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        value = os.environ.get(key, "")
        if value.isdigit() and int(value) > 1:
            return True
    return False
