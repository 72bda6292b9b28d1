"""Multi-host start-up: `jax.distributed` with clear errors and timeouts.

`initialize_distributed` is what every script calls first (through
`configs.cli.start_hosts`): a no-op on one host; on a cluster it starts
`jax.distributed` from explicit flags or the cluster's environment (SLURM,
...), checks that the coordinator's port is free on process 0 and reachable
from the others, and raises `DistributedInitError` naming the address and
the timeout instead of hanging. `jaxcxai.parallel` re-exports both names.
"""

from __future__ import annotations

import os
import socket
import time

import jax

__all__ = ["DistributedInitError", "initialize_distributed"]


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
    if not explicit:
        _check_slurm_env()
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


# What jax's SLURM detection reads (jax._src.clusters.slurm_cluster); `srun`
# sets all of them, a bare `salloc` shell only some.
_SLURM_VARS = (
    "SLURM_JOB_ID",
    "SLURM_STEP_NODELIST",
    "SLURM_NTASKS",
    "SLURM_PROCID",
    "SLURM_LOCALID",
)


def _check_slurm_env() -> None:
    """Raises if a SLURM allocation describes several tasks but this process
    was not started by `srun` (jax would then stop with an unexplained
    "coordinator_address should be defined").

    Raises:
      DistributedInitError: naming the missing SLURM variables.
    """
    if _env_count("SLURM_NTASKS") <= 1:
        return
    missing = [v for v in _SLURM_VARS if v not in os.environ]
    if missing:
        raise DistributedInitError(
            f"SLURM_NTASKS={os.environ['SLURM_NTASKS']} but {', '.join(missing)} "
            "not set: start every task with srun (which sets them), or pass "
            "coordinator_address, num_processes and process_id (--coordinator, "
            "--num_processes, --process_id)."
        )


def _env_count(key: str) -> int:
    """The process count a launcher's variable gives (0 if unset or not a
    number)."""
    value = os.environ.get(key, "")
    return int(value) if value.isdigit() else 0


def _cluster_env_detected() -> bool:
    """True when a cluster launcher describes more than one process."""
    if "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""):
        return True
    return any(_env_count(k) > 1 for k in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"))
