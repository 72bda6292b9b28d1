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
import socket
import time
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
    "shard_global_batch",
    "to_host",
    "replicate",
    "host_slice",
    "check_batch_size",
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


class DistributedInitError(RuntimeError):
    """`jax.distributed` could not start: the coordinator could not bind its
    port, or was not reachable within the initialization timeout."""


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    initialization_timeout: int | None = None,
    heartbeat_timeout: int | None = None,
) -> bool:
    """Starts `jax.distributed` for multi-host runs; a no-op on one host.

    With all three arguments `None` nothing happens unless the environment of
    a cluster launcher (SLURM, Cloud TPU, ...) is detected, in which case jax
    auto-detects them. Must be called before any other JAX call.

    CPU-only hosts need cross-process collectives for the CPU backend; gloo is
    selected when none is configured (jax >= 0.11 defaults to it already).

    Process 0 first checks that the coordinator's port is free, and every
    other process waits (up to the initialization timeout) until that port
    accepts connections, so a taken port or an address where nobody listens
    raises `DistributedInitError` instead of the runtime crashing or
    aborting the process. If the coordinator is up but not every process
    registers in time, jax's runtime still terminates the process (SIGABRT,
    "DEADLINE_EXCEEDED ... RegisterTask" on stderr); a launcher must treat
    that as a failed start.

    Args:
      coordinator_address: `host:port` of process 0's coordination service.
      num_processes: number of processes in the run.
      process_id: this process's index in `[0, num_processes)`.
      initialization_timeout: seconds to wait for every process to join
        (default: jax's, 300).
      heartbeat_timeout: seconds without a heartbeat after which the other
        processes are told a process is gone and terminate (default: jax's,
        100). Smaller values make a dead host fail the run sooner.

    Returns:
      True if a multi-process runtime was initialized.

    Raises:
      ValueError: if only some of the three arguments are given.
      DistributedInitError: if the coordinator cannot bind its port or is
        not reachable within `initialization_timeout`.
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
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
        # Without it, jit over a mesh that spans processes fails on CPUs.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = {}
    if initialization_timeout is not None:
        kwargs["initialization_timeout"] = int(initialization_timeout)
    if heartbeat_timeout is not None:
        kwargs["heartbeat_timeout_seconds"] = int(heartbeat_timeout)
    if explicit and process_id == 0:
        _check_port_free(coordinator_address)
    elif explicit:
        _wait_for_coordinator(coordinator_address, initialization_timeout or 300)
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
            **kwargs,
        )
    except RuntimeError as err:  # jax.errors.JaxRuntimeError
        raise DistributedInitError(
            f"jax.distributed did not start (coordinator {coordinator_address}, "
            f"process {process_id} of {num_processes}): {err}"
        ) from err
    return True


def _check_port_free(address: str) -> None:
    """Raises if the coordinator's port is taken on this host.

    jax's runtime often dies with SIGSEGV instead of raising when its
    coordination service cannot bind the port, so this is checked first
    (a program can still take the port in between; that case is not caught).

    Raises:
      DistributedInitError: if the port cannot be bound.
    """
    port = int(address.rpartition(":")[2])
    # The service binds [::]:port (every address, IPv4 included); an IPv4
    # socket stands in where IPv6 is not available.
    for family, host in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        try:
            probe = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue
        with probe:
            # Like the service: a port with only closed (TIME_WAIT)
            # connections of an earlier run is free; a listener is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            try:
                probe.bind((host, port))
            except OSError as err:
                raise DistributedInitError(
                    f"The coordinator cannot listen on port {port} ({address}): "
                    f"{err}. Choose a free port."
                ) from err
        return


def _wait_for_coordinator(address: str, timeout_s: float) -> None:
    """Polls until `address` accepts TCP connections or `timeout_s` passes.

    Raises:
      DistributedInitError: if nothing listens there in time.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]")  # IPv6 literals come as [::1]:port
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise DistributedInitError(
                    f"No jax.distributed coordinator is listening at {address} "
                    f"(waited {timeout_s:g} s; last error: {err}). Start process "
                    "0 first, and check the address and port."
                ) from err
            time.sleep(0.2)


def _cluster_env_detected() -> bool:
    """True when a cluster launcher describes more than one process."""
    if "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""):
        return True
    for key in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        value = os.environ.get(key, "")
        if value.isdigit() and int(value) > 1:
            return True
    return False
