"""Test set-up: 8 fake CPU devices, strict rank promotion, float32 by default.

The device count must be fixed before JAX initializes its backend, so this
runs at import time, before any test module imports jax.
"""

import os

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


def pytest_collection_modifyitems(config, items):
    """`slow` tests run only with --runslow (CI skips them); `multidevice`
    tests need the 8-device mesh (on the CPU: always, through the flag
    above; on one GPU they are skipped)."""
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
