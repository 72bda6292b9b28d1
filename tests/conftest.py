"""Test set-up: 8 fake CPU devices, strict rank promotion, float32 by default.

The device count must be fixed before JAX initializes its backend, so this
runs at import time, before any test module imports jax.
"""

import contextlib
import fcntl
import os
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
# Bitwise checks (resume = uninterrupted run) need deterministic reductions
# on GPUs too; the CPU ignores the flag.
if "xla_gpu_deterministic_ops" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_gpu_deterministic_ops=true"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_threefry_partitionable", True)
if jax.default_backend() != "cpu":
    # GPUs multiply float32 in TF32 by default (errors ~1e-3); the tests
    # compare with exact float32/float64 references.
    jax.config.update("jax_default_matmul_precision", "highest")

FAKE_DEVICES = 8  # the sharding tests' mesh size (fake CPU devices)

# Tiny classifier backbones that several study tests train the same way:
# name -> dotted overrides of `configs/classifier.py:small_cnn_tiny`.
TINY_BACKBONES = {
    # The variant as it is: 30 steps on 256 32 x 32 scenes.
    "small_cnn_tiny": {},
    # 10 steps on 64 scenes, for studies whose checks recompute what the
    # study reports, whatever the accuracy.
    "small_cnn_tiny_10": {
        "data.num_train": 64,
        "data.num_test": 32,
        "train.steps": 10,
        "train.checkpoint_every": 10,
        "train.log_every": 5,
    },
}


@contextlib.contextmanager
def _file_lock(path):
    """Holds an exclusive `flock` on `path` (created if missing). The kernel
    drops it when the holder exits, so a crashed worker leaves no stale
    lock (stdlib only: `filelock` is not a declared dependency)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _train_tiny_backbone_once(root, name):
    """Returns `root/name`, the workdir of tiny backbone `name`, training it
    only if no process of this test run has done so yet.

    Training goes to a temporary sibling that is renamed into place when
    complete, so `root/name` existing means every file in it is written.
    """
    # Imported here: the test set-up above must run before anything
    # imports the trainer (and, through it, jax's backend).
    from configs import classifier
    from train.classifier import train_and_evaluate

    final = os.path.join(root, name)
    os.makedirs(root, exist_ok=True)
    with _file_lock(os.path.join(root, f".{name}.lock")):
        if not os.path.isdir(final):
            config = classifier.get_config("small_cnn_tiny")
            config.update_from_flattened_dict(TINY_BACKBONES[name])
            tmp = tempfile.mkdtemp(dir=root, prefix=f".{name}.")
            work = os.path.join(tmp, "work")
            train_and_evaluate(config, work, progress=False)
            os.rename(work, final)
            os.rmdir(tmp)
    return final


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory):
    """Copies a tiny trained backbone workdir; each is trained once per run.

    The trained workdirs live in a directory that every pytest-xdist worker
    of the run shares (the parent of the workers' base temp dirs), so the
    first worker to ask trains and the others wait for it. Callers get a
    copy, so no test can change the weights another test reads.

    Returns:
        `copy(dest, name="small_cnn_tiny") -> dest`: copies the workdir
        (config.json, metrics.jsonl, results.json, meta and `ckpt/`) of
        backbone `name` (a key of `TINY_BACKBONES`) to the new directory
        `dest` (a `pathlib.Path`) and returns `dest`.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # not the controller/master
        base = base.parent
    root = str(base / "tiny_backbones")

    def copy(dest, name="small_cnn_tiny"):
        shutil.copytree(_train_tiny_backbone_once(root, name), dest)
        return dest

    return copy


# The longest test (the whole tiny main job, about 4 of the suite's 15
# minutes) runs first, so that with `pytest -n 2 --dist worksteal` it never
# starts late and leaves one worker running it alone at the end.
FIRST = ("tests/scripts/test_reproduce.py::test_tiny_main_job_writes_report",)


def pytest_collection_modifyitems(config, items):
    """`slow` tests run only with --runslow (CI skips them); `multidevice`
    tests need the 8-device mesh (on the CPU: always, through the flag
    above; on one GPU they are skipped). Tests in `FIRST` are moved to the
    front (the same order on every xdist worker)."""
    items[:] = sorted(items, key=lambda item: item.nodeid not in FIRST)
    few = jax.default_backend() != "cpu" and jax.device_count() < FAKE_DEVICES
    skip_few = pytest.mark.skip(reason=f"needs {FAKE_DEVICES} devices")
    skip_slow = pytest.mark.skip(reason="slow; run with --runslow")
    for item in items:
        if "multidevice" in item.keywords and few:
            item.add_marker(skip_few)
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run slow tests")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: longer tests skipped by default")
    config.addinivalue_line("markers", "multidevice: needs 8 (fake CPU) devices")
