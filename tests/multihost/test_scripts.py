"""A script run as a user runs it on two hosts: the same command on each,
with `--coordinator/--num_processes/--process_id`, equals one process.

`train.classifier` (SmallCNN, tiny config, a few steps) runs once in one
process x 8 fake devices and once in two processes x 4 devices writing to
one shared workdir. Each host reads only its share of every batch
(`pipeline.batch_indices`), the test-set evaluation feeds each host's share
(`parallel.shard_global_batch`) and gathers the logits (`parallel.to_host`).
Compared: the trained weights and BatchNorm statistics (relative 1e-5 of
each array's scale: gloo adds the gradient and moment sums in another order,
see test_equal.py; observed 3.6e-6 on a BatchNorm running mean after 4
steps, while a host feeding wrong rows moves values by 1e-3 or more). Adam
normalises each gradient entry by its own magnitude, so an entry whose
gradient is rounding noise can step the other way: such entries (1 of
96,629 observed) may differ by up to the steps' learning rates, and at
most a share FLIPS of them is allowed. Also compared: the test metrics, and
the metrics log, written once (by process 0).
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from configs.cli import ConfigError, parse_args
from jaxcxai.training.backbone import load_trained
from tests.multihost import harness
from tests.paths import CONFIGS

REL = 1e-5  # of each array's max |value|; see the module docstring
FLIPS = 1e-3  # share of entries allowed past REL (Adam sign flips)
LR = 1e-3  # configs/classifier.py's peak learning rate
STEPS = 4
TIMEOUT_S = 180


def _command(workdir, extra=()):
    return [sys.executable, "-m", "train.classifier", "--config",
            os.path.join(CONFIGS, "classifier.py:small_cnn_tiny"), "--workdir",
            str(workdir), f"--config.train.steps={STEPS}",
            "--config.train.log_every=1", *extra]  # fmt: skip


def _launch(commands, devices):
    """Runs the commands at once (own process groups); kills all on failure."""
    env = harness._child_env(devices)
    procs = [
        subprocess.Popen(c, env=env, cwd=harness.REPO_ROOT, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]  # fmt: skip
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while any(p.poll() is None for p in procs):
            failed = [p for p in procs if p.poll() not in (None, 0)]
            if failed or time.monotonic() > deadline:
                raise AssertionError(
                    "a process failed or timed out:\n" + failed[0].stderr.read()[-3000:]
                    if failed
                    else "timeout"
                )
            time.sleep(0.1)
        for p in procs:
            assert p.returncode == 0, p.stderr.read()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    one = tmp_path_factory.mktemp("one_host")
    two = tmp_path_factory.mktemp("two_hosts")
    _launch([_command(one)], devices=8)
    addr = f"127.0.0.1:{harness.free_port()}"
    _launch(
        [_command(two, ("--coordinator", addr, "--num_processes", "2",
                        "--process_id", str(i))) for i in range(2)],
        devices=4,
    )  # fmt: skip
    return one, two


def test_two_hosts_train_the_same_weights(runs):
    one, two = (load_trained(str(w)).variables for w in runs)
    flat_one = dict(_flatten(one))
    flat_two = dict(_flatten(two))
    assert flat_one.keys() == flat_two.keys() and flat_one
    off, total = 0, 0
    for key, b in flat_one.items():
        a = flat_two[key]
        scale = float(np.max(np.abs(b))) or 1.0
        off += int(np.sum(np.abs(a - b) > REL * scale))
        total += b.size
        # No entry moves further than AdamW's steps can take it.
        assert np.max(np.abs(a - b)) <= 2 * LR * STEPS, key
    assert off <= FLIPS * total, f"{off} of {total} entries differ by > {REL} x scale"


def test_two_hosts_log_each_step_once_and_evaluate_the_same(runs):
    one, two = runs
    logs = []
    for w in runs:
        with open(w / "metrics.jsonl") as f:
            logs.append([json.loads(line) for line in f])
    steps = [[r["step"] for r in log if "loss" in r] for log in logs]
    assert steps[0] == steps[1] == list(range(1, STEPS + 1))
    for a, b in zip(*logs):
        assert a.keys() == b.keys()
        for k in ("loss", "xent", "bce"):
            if k in a:
                assert abs(b[k] - a[k]) <= 1e-5 * max(1.0, abs(a[k])), k
    res = [json.loads((w / "results.json").read_text()) for w in runs]
    keys = ("accuracy", "label_accuracy", "label_macro_f1")
    accs = [[r[k] for k in keys] for r in res]
    assert accs[0] == pytest.approx(accs[1], abs=1e-6)


def test_host_flags_go_together():
    base = ["--config", os.path.join(CONFIGS, "classifier.py:small_cnn_tiny"),
            "--workdir", "unused"]  # fmt: skip
    with pytest.raises(ConfigError, match="go together"):
        parse_args(base + ["--coordinator", "127.0.0.1:1"])
    with pytest.raises(ConfigError, match="must lie in"):
        parse_args(base + ["--coordinator", "127.0.0.1:1", "--num_processes", "2",
                           "--process_id", "2"])  # fmt: skip


def _flatten(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}/")
        else:
            yield prefix + k, np.asarray(v, np.float64)
