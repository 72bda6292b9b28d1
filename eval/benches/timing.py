"""Timing shared by the benchmarks: the best wall time over repeats."""

import time

import jax


def best_time(fn, repeats: int):
    """(best wall time over `repeats` runs, last output); outputs are synced.

    JAX outputs are waited for (`jax.block_until_ready`); NumPy and PyTorch
    outputs pass through unchanged.
    """
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best, out
