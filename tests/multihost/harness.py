"""Runs one function in N local JAX processes joined by `jax.distributed`.

Each process is a fresh Python interpreter with `devices_per_process` fake
CPU devices, so two processes of four devices give the same 8-device global
mesh as one process of eight. The processes find each other through a
coordinator on a free localhost port, and the CPU backend's gloo collectives
carry the cross-process reductions, exactly as on a cluster of CPU hosts.

    results = run_processes("tests.multihost.workers:train_classifier", args)
    results[0]["params/fc/kernel"]  # process 0's output, a NumPy array

A worker is a plain function `fn(args: dict) -> dict[str, np.ndarray]`
named as `"module:function"`; every process runs it and writes its result
to an `.npz` file (written under a temporary name, then renamed, so a
half-written file is never read). With `num_processes=1` the same function
runs without `jax.distributed`, which is the reference layout. `run_jobs`
runs several workers one after another in the same processes, which saves
the start-up (about 2 s of imports per process) and reuses compilations.

Failure handling: the first process to exit with an error, or the overall
timeout, makes the harness kill every process group it started and raise a
`MultiProcessError` carrying each process's exit status and stderr tail.
A process that never joined the runtime (coordinator not listening, port
taken, registration timeout) gives the subclass `DistributedStartError`.

Run as `python -m tests.multihost.harness --jobs ...` this module is the
child side; tests only call `run_processes` or `run_jobs`.
"""

import argparse
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = [
    "DistributedStartError",
    "MultiProcessError",
    "ProcessTimeoutError",
    "free_port",
    "run_agreed",
    "run_jobs",
    "run_processes",
    "same_on_every_host",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
# Printed by a child once `jax.distributed` is up; a process that failed
# without it failed to start, not in the worker.
JOINED_MARKER = "MULTIHOST-JOINED"
_TAIL_LINES = 25
_POLL_S = 0.05


class MultiProcessError(RuntimeError):
    """A child process failed, or the run timed out; all children were killed.

    Attributes:
      returncodes: exit status per process id (None: killed by the harness
        while still running; negative: killed by that signal).
      stderr_tails: last lines of each process's stderr.
      pids: process ids of the children (each led its own process group).
    """

    def __init__(self, message, returncodes, stderr_tails, pids):
        self.returncodes = returncodes
        self.stderr_tails = stderr_tails
        self.pids = pids
        details = "\n".join(
            f"--- process {i}: {_describe(returncodes[i])}; stderr tail:\n"
            f"{stderr_tails[i] or '(empty)'}"
            for i in sorted(returncodes)
        )
        super().__init__(f"{message}\n{details}")


class DistributedStartError(MultiProcessError):
    """A process did not join `jax.distributed` (no coordinator listening,
    coordinator port taken, or not all processes registered in time)."""


class ProcessTimeoutError(MultiProcessError):
    """The processes did not all finish within `timeout_s`."""


def free_port() -> int:
    """A TCP port on localhost that was free a moment ago.

    Another program can take it before the coordinator binds it; the
    coordinator then fails to start and the harness says so
    (`DistributedStartError`), so a test reruns rather than hangs.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(
    fn: str, args: dict | None = None, **kwargs
) -> list[dict[str, np.ndarray]]:
    """Runs `fn(args)` in every process (`run_jobs` with one job).

    Returns:
      Each started process's result dict, in process order.
    """
    return run_jobs([(fn, args or {})], **kwargs)[0]


def run_jobs(
    jobs: list[tuple[str, dict]],
    *,
    num_processes: int = 2,
    devices_per_process: int = 4,
    timeout_s: float = 120.0,
    init_timeout_s: int = 30,
    heartbeat_timeout_s: int = 10,
    coordinator: str | None = None,
    process_ids: list[int] | None = None,
    kill_siblings: bool = True,
    launcher: str = "flags",
) -> list[list[dict[str, np.ndarray]]]:
    """Runs workers in order in `num_processes` local processes.

    Args:
      jobs: `(fn, args)` pairs run one after another in every process: `fn`
        is `"module:function"`, a function of the JSON-able dict `args`
        returning a dict of NumPy arrays.
      num_processes: size of the `jax.distributed` run; 1 runs without it.
      devices_per_process: fake CPU devices of each process.
      timeout_s: wall-clock limit of the whole run.
      init_timeout_s: `jax.distributed` initialization timeout (how long a
        process waits for the coordinator and for the others to register).
      heartbeat_timeout_s: how soon the runtime declares a silent process
        dead (so a survivor fails on its own rather than waiting 100 s).
      coordinator: `host:port`; default a free port on 127.0.0.1.
      process_ids: start only these process ids (to test partial starts);
        default all.
      kill_siblings: kill the others as soon as one process fails. False
        waits for every process to exit on its own (up to `timeout_s`), to
        test that survivors fail rather than hang.
      launcher: "flags" passes the coordinator, process count and id
        explicitly (`--coordinator ...`); "slurm" passes none and instead
        sets the variables `srun` sets (`SLURM_JOB_ID`, `SLURM_NTASKS`,
        `SLURM_PROCID`, `SLURM_LOCALID`, `SLURM_STEP_NODELIST`), so each
        child starts through `configs.cli.start_hosts` with no flags, as a
        script under `srun` does. The job id is chosen so that the port jax
        derives from it is free; `coordinator` must then be None.

    Returns:
      `results[job][k]`: the result dict of job `job` in the k-th started
      process (process order, or `process_ids` order).

    Raises:
      DistributedStartError: a process failed before joining the runtime.
      ProcessTimeoutError: the run exceeded `timeout_s`.
      MultiProcessError: a process failed in a worker.
    """
    ids = list(range(num_processes)) if process_ids is None else list(process_ids)
    if launcher not in ("flags", "slurm"):
        raise ValueError(f"launcher must be 'flags' or 'slurm', got {launcher!r}")
    if launcher == "slurm":
        if coordinator is not None:
            raise ValueError("launcher='slurm' derives the coordinator itself")
        job_id = _slurm_job_id()
        coordinator = f"127.0.0.1:{_slurm_port(job_id)}"
    coordinator = coordinator or f"127.0.0.1:{free_port()}"
    names = ", ".join(fn for fn, _ in jobs)
    workdir = Path(tempfile.mkdtemp(prefix="multihost-"))
    try:
        spec = [{"fn": fn, "args": args} for fn, args in jobs]
        (workdir / "jobs.json").write_text(json.dumps(spec))
        procs = {}
        try:
            for i in ids:
                flags = {
                    "jobs": workdir / "jobs.json",
                    "out": workdir / f"result_{i}_{{job}}.npz",
                    "coordinator": coordinator,
                    "num-processes": num_processes,
                    "process-id": i,
                    "init-timeout": init_timeout_s,
                    "heartbeat-timeout": heartbeat_timeout_s,
                }
                env = {}
                if launcher == "slurm":
                    flags["coordinator"] = "slurm"
                    env = {
                        "SLURM_JOB_ID": str(job_id),
                        "SLURM_NTASKS": str(num_processes),
                        "SLURM_PROCID": str(i),
                        "SLURM_LOCALID": str(i),
                        "SLURM_STEP_NODELIST": "127.0.0.1",
                        "SLURM_STEP_NUM_NODES": "1",
                    }
                procs[i] = _start(flags, workdir, i, devices_per_process, env)
            failed = _wait(procs, time.monotonic() + timeout_s, kill_siblings)
        finally:
            _kill_all(procs)
        codes = {i: p.returncode for i, p in procs.items()}
        if failed is None and all(c == 0 for c in codes.values()):
            return [
                [_load(workdir / f"result_{i}_{j}.npz") for i in ids]
                for j in range(len(jobs))
            ]
        raise _failure(names, failed, timeout_s, coordinator, procs, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def same_on_every_host(results: list[dict], skip=()) -> dict:
    """Checks every process returned bit-identical values (apart from the
    keys in `skip`); returns process 0's."""
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for key in results[0]:
            if key not in skip:
                np.testing.assert_array_equal(other[key], results[0][key], key)
    return results[0]


def run_agreed(module: str, jobs, layout: dict, timeout_s: float) -> list[dict]:
    """`run_jobs` of `(function name in module, args)` jobs in one launch of
    `layout` (`num_processes`, `devices_per_process`); returns each job's
    result after checking every host gathered the same global values."""
    jobs = [(f"{module}:{fn}", args) for fn, args in jobs]
    runs = run_jobs(jobs, timeout_s=timeout_s, **layout)
    return [same_on_every_host(results) for results in runs]


def _slurm_port(job_id: int) -> int:
    """The coordinator port jax's SLURM detection derives from the job id
    (jax._src.clusters.slurm_cluster: the last 4096 ports)."""
    return job_id % 4096 + 65536 - 4096


def _slurm_job_id() -> int:
    """A job id whose derived coordinator port is free right now."""
    rng = np.random.default_rng()
    for job_id in rng.integers(10_000, 1_000_000, size=64):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", _slurm_port(int(job_id))))
            except OSError:
                continue
        return int(job_id)
    raise RuntimeError("No free port among 64 SLURM job ids tried.")


def _start(
    flags: dict, workdir: Path, i: int, devices: int, env: dict | None = None
) -> subprocess.Popen:
    """Starts child `i` in its own process group, logging to `workdir`;
    `env` adds to (or overrides) its environment."""
    cmd = [sys.executable, "-m", "tests.multihost.harness"]
    for name, value in flags.items():
        cmd += [f"--{name}", str(value)]
    # Files, not pipes: a chatty child can never block on a full pipe while
    # the harness waits for it.
    with (
        open(workdir / f"stdout_{i}.txt", "wb") as out,
        open(workdir / f"stderr_{i}.txt", "wb") as err,
    ):
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=err,
            cwd=REPO_ROOT,
            env={**_child_env(devices), **(env or {})},
            start_new_session=True,  # its own group: killpg reaches all
        )


def _failure(names, failed, timeout_s, coordinator, procs, workdir):
    """The `MultiProcessError` for a failed (`failed`: the first failed
    process id) or timed-out (`failed == "timeout"`) run of jobs `names`."""
    codes = {i: p.returncode for i, p in procs.items()}
    stderr = {i: workdir / f"stderr_{i}.txt" for i in procs}
    tails = {i: _tail(path) for i, path in stderr.items()}
    joined = {
        i: JOINED_MARKER in path.read_text(errors="replace")
        for i, path in stderr.items()
    }
    pids = [p.pid for p in procs.values()]
    if failed == "timeout":
        cls = ProcessTimeoutError if all(joined.values()) else DistributedStartError
        message = (
            f"{names}: timed out after {timeout_s:g} s (joined the runtime: "
            f"{joined}); all processes killed."
        )
        return cls(message, codes, tails, pids)
    if joined[failed]:
        cls, what = MultiProcessError, "failed in the worker"
    else:
        cls, what = DistributedStartError, "did not join jax.distributed"
    message = (
        f"{names}: process {failed} {what} ({_describe(codes[failed])}, coordinator "
        f"{coordinator}); the others were killed."
    )
    return cls(message, codes, tails, pids)


def _child_env(devices: int) -> dict:
    """The parent's environment with the device count and platform set."""
    env = dict(os.environ)
    flags = re.sub(
        r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", "")
    )
    env["XLA_FLAGS"] = (
        f"{flags.strip()} --xla_force_host_platform_device_count={devices}"
    )
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONUNBUFFERED"] = "1"  # stderr tails up to the moment of death
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p
    )
    return env


def _wait(procs, deadline, kill_siblings):
    """Polls until all exit. Returns None, the first failed id, or "timeout"."""
    failed = None
    while True:
        codes = {i: p.poll() for i, p in procs.items()}
        if failed is None:
            bad = [i for i, c in codes.items() if c not in (None, 0)]
            failed = bad[0] if bad else None
            if failed is not None and kill_siblings:
                return failed
        if all(c is not None for c in codes.values()):
            return failed
        if time.monotonic() > deadline:
            return "timeout"
        time.sleep(_POLL_S)


def _kill_all(procs):
    """SIGKILLs every child's process group (children of children too)."""
    for p in procs.values():
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # the whole group has exited already
    for p in procs.values():
        p.wait()


def _tail(path: Path) -> str:
    """Last stderr lines without C++ stack frames (addresses only)."""
    lines = path.read_text(errors="replace").splitlines()
    lines = [ln for ln in lines if not re.match(r"\s+@\s+0x", ln)]
    return "\n".join(lines[-_TAIL_LINES:])


def _describe(code) -> str:
    if code is None:
        return "still running, killed by the harness"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _save(path: str, result: dict) -> None:
    """Writes `result` to `path` atomically (temporary name, then rename)."""
    arrays = {k: np.asarray(v) for k, v in result.items()}
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _child_main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", required=True, help="JSON [{fn, args}, ...]")
    parser.add_argument("--out", required=True, help="result path with {job}")
    parser.add_argument("--coordinator", required=True, help='host:port or "slurm"')
    parser.add_argument("--num-processes", type=int, required=True)
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--init-timeout", type=int, required=True)
    parser.add_argument("--heartbeat-timeout", type=int, required=True)
    opts = parser.parse_args(argv)

    # Imported here: the environment (device count) is set by the parent
    # and must be in place before jax is first imported.
    import jax

    from jaxcxai import parallel

    # The settings of tests/conftest.py, so workers see the test defaults.
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_threefry_partitionable", True)
    if opts.coordinator == "slurm":
        # As a script under srun: no host flags, the launcher is detected.
        from configs import cli

        none = argparse.Namespace(coordinator=None, num_processes=None, process_id=None)
        if not cli.start_hosts(none):
            raise RuntimeError("start_hosts did not detect the SLURM environment")
    else:
        parallel.initialize_distributed(
            opts.coordinator,
            opts.num_processes,
            opts.process_id,
            initialization_timeout=opts.init_timeout,
            heartbeat_timeout=opts.heartbeat_timeout,
        )
    if jax.process_count() != opts.num_processes:
        raise RuntimeError(
            f"Expected {opts.num_processes} processes, jax sees {jax.process_count()}."
        )
    print(
        f"{JOINED_MARKER} process {jax.process_index()}/{jax.process_count()}, "
        f"{jax.local_device_count()} local / {jax.device_count()} global devices",
        file=sys.stderr,
        flush=True,
    )
    for j, job in enumerate(json.loads(Path(opts.jobs).read_text())):
        module, _, name = job["fn"].partition(":")
        worker = getattr(importlib.import_module(module), name)
        _save(opts.out.format(job=j), worker(job["args"]))


if __name__ == "__main__":
    _child_main()
