"""The multi-process harness fails fast and cleanly: named start errors within
a bounded time, and a dead process fails the run instead of hanging it."""

import os
import signal
import socket
import time

import pytest

from jaxcxai import parallel
from tests.multihost import harness

WORKERS = "tests.multihost.workers"


@pytest.fixture
def dead_port():
    """A localhost port held by a socket that never listens: connections are
    refused, and no other program can start listening there meanwhile."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def _no_process_left(pids):
    """True if none of the children's process groups has a member left."""
    for pid in pids:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def test_results_come_back_per_process():
    out = harness.run_processes(f"{WORKERS}:allgather_ids", timeout_s=60)
    assert len(out) == 2
    for result in out:
        assert result["ids"].tolist() == [0, 1]


def test_slurm_environment_starts_without_flags():
    # What `srun python -m train.X ...` gives each task: no host flags, only
    # SLURM's variables; `cli.start_hosts` must detect them and jax must
    # derive the coordinator (first node, port from the job id).
    out = harness.run_processes(
        f"{WORKERS}:topology", launcher="slurm", init_timeout_s=30, timeout_s=90
    )
    assert [int(r["process"]) for r in out] == [0, 1]
    for result in out:
        assert result["ids"].tolist() == [0, 1]
        assert result["counts"].tolist() == [2, 8, 4]


def test_slurm_allocation_without_srun_names_the_missing_variables(monkeypatch):
    # A bare `salloc` shell: several tasks allocated, but not started by srun.
    for var in ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_LOCALID", "0")
    with pytest.raises(parallel.DistributedInitError) as err:
        parallel.initialize_distributed()
    for var in ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_PROCID"):
        assert var in str(err.value)
    assert "SLURM_LOCALID" not in str(err.value)


def test_initialize_distributed_raises_when_nobody_listens(dead_port):
    # In this process: the wait for the coordinator raises before jax's
    # runtime is touched (which would abort the process instead).
    start = time.monotonic()
    with pytest.raises(parallel.DistributedInitError, match="No jax.distributed"):
        parallel.initialize_distributed(
            f"127.0.0.1:{dead_port}", 2, 1, initialization_timeout=1
        )
    assert time.monotonic() - start < 10


def test_missing_coordinator_is_a_named_error_in_bounded_time(dead_port):
    start = time.monotonic()
    with pytest.raises(harness.DistributedStartError) as err:
        harness.run_processes(
            f"{WORKERS}:allgather_ids",
            process_ids=[1],  # process 0, the coordinator, is never started
            coordinator=f"127.0.0.1:{dead_port}",
            init_timeout_s=2,
            timeout_s=60,
        )
    elapsed = time.monotonic() - start
    assert elapsed < 30, f"took {elapsed:.0f} s for a 2 s init timeout"
    assert "DistributedInitError" in str(err.value)
    assert err.value.returncodes[1] != 0
    assert _no_process_left(err.value.pids)


def test_coordinator_port_taken_is_a_named_error():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(harness.DistributedStartError) as err:
            harness.run_processes(
                f"{WORKERS}:allgather_ids",
                process_ids=[0],
                coordinator=f"127.0.0.1:{port}",
                init_timeout_s=2,
                timeout_s=60,
            )
    assert "DistributedInitError: The coordinator cannot listen" in str(err.value)


def test_dead_process_fails_the_run_and_leaves_no_child():
    start = time.monotonic()
    with pytest.raises(harness.MultiProcessError) as err:
        harness.run_processes(
            f"{WORKERS}:die_in_process",
            {"process": 1, "code": 3},
            heartbeat_timeout_s=100,  # the runtime alone would wait 100 s
            timeout_s=120,
        )
    elapsed = time.monotonic() - start
    # Not a start error, not a timeout: process 1 joined, then exited with 3
    # while process 0 waited in a collective; the harness killed process 0.
    assert type(err.value) is harness.MultiProcessError
    assert err.value.returncodes == {0: -signal.SIGKILL, 1: 3}
    assert "process 1 failed in the worker (exit code 3" in str(err.value)
    assert elapsed < 30, f"took {elapsed:.0f} s"
    assert _no_process_left(err.value.pids)


def test_survivor_of_a_dead_process_fails_on_its_own():
    # Without the harness killing it, process 0 must still stop: the
    # runtime's heartbeat check (3 s here) terminates it, well before the
    # harness timeout would report a hang (ProcessTimeoutError).
    with pytest.raises(harness.MultiProcessError) as err:
        harness.run_processes(
            f"{WORKERS}:die_in_process",
            {"process": 1, "code": 3},
            heartbeat_timeout_s=3,
            kill_siblings=False,
            timeout_s=60,
        )
    assert not isinstance(err.value, harness.ProcessTimeoutError)
    assert err.value.returncodes[1] == 3
    assert err.value.returncodes[0] not in (None, 0)
    assert "stopped sending heartbeats" in err.value.stderr_tails[0]
    assert _no_process_left(err.value.pids)
