"""One epoch of a DUCH / CHNR training phase: the jitted step, the epoch's
batches through it, and the epoch's logged metrics.

A phase (`schedule.phases`) trains with one step function over one part of
the training set. `jit_step` jits it once per phase, gathering batches on
the device or feeding them from the host (`feed`); `run_epoch` runs one
shuffled epoch of it; `epoch_metrics` turns the summed step metrics into
the epoch's record and stops a run whose loss is no longer finite.
"""

import jax
import numpy as np

from jaxcxai import parallel
from jaxcxai.hashing import feed
from jaxcxai.training import NonFiniteLossError

__all__ = ["MEAN_METRICS", "epoch_metrics", "jit_step", "run_epoch"]

# Logged as epoch means; every other metric (the loss terms) as epoch sums,
# as the reference logs them.
MEAN_METRICS = {"r1", "r2", "f1", "f2", "weight_mean"}


def jit_step(step, part: dict, layout: feed.BatchLayout, mesh, compiler_options=None):
    """A phase's train step, jitted for `run_epoch` (state donated, state
    and metrics replicated).

    One device: the part's arrays stay on it and each step gathers its
    batch (`feed.make_fed_step`). Several: batches are sharded from the
    host, because XLA:CPU's in-process collectives deadlocked (entered in
    different orders by different devices) with the gather in the step.

    Args:
      step: `step(state, batch, key) -> (state, metrics)`.
      part: the phase's part arrays (`feed` module docstring).
      layout: what a batch holds.
      mesh: the device mesh.
      compiler_options: XLA options for the `jax.jit`, or None.

    Returns:
      `(step_fn, arrays)`: the jitted step and the part's arrays resident
      on the device (None when batches come from the host).
    """
    arrays = None
    if mesh.size == 1:
        arrays = feed.resident_arrays(part, layout, mesh)
        step = feed.make_fed_step(step, layout, mesh)
    repl = parallel.replicated_sharding(mesh)
    step_fn = jax.jit(
        step,
        donate_argnums=0,
        out_shardings=(repl, repl),
        compiler_options=compiler_options,
    )
    return step_fn, arrays


def run_epoch(
    state, step_fn, arrays, part: dict, layout: feed.BatchLayout, mesh, key, *,
    batch_size: int, seed: int, epoch: int, offsets=None,
):  # fmt: skip
    """One shuffled epoch (`feed.epoch_batches`) through a `jit_step` step.

    Args:
      state: the training state (donated to each step).
      step_fn: the step `jit_step` returned for this part.
      arrays: the resident arrays `jit_step` returned (None: host batches).
      part: the part arrays (`feed` module docstring).
      layout: what a batch holds.
      mesh: the device mesh.
      key: the run's training key (each step folds in its step count).
      batch_size: global batch size.
      seed: the run's seed; with `epoch` it fixes the shuffle.
      epoch: the epoch's index.
      offsets: (M,) caption index per row for this epoch, or None.

    Returns:
      `(state, sums)`: the new state and each step metric summed over the
      epoch, still on the device.
    """
    sums = {}
    for pos in feed.epoch_batches(len(part["img"]), batch_size, seed, epoch):
        off = None if offsets is None else offsets[pos]
        if arrays is not None:
            rows = parallel.replicate((pos.astype(np.int32), off), mesh)
            state, m = step_fn(state, arrays, *rows, key)
        else:
            b = feed.take_batch(part, pos, off, layout)
            b = feed.place_batch(b, mesh)
            state, m = step_fn(state, b, key)
        sums = {k: sums.get(k, 0.0) + v for k, v in m.items()}
    return state, sums


def epoch_metrics(sums: dict, num_rows: int, batch_size: int, step: int) -> dict:
    """The epoch's record from `run_epoch`'s sums, as host floats.

    Args:
      sums: step metrics summed over the epoch.
      num_rows: rows of the part the epoch ran over.
      batch_size: global batch size (the last batch may be smaller).
      step: the state's step count, named by the error.

    Returns:
      {name: float}: the loss terms as epoch sums, `MEAN_METRICS`
      (probabilities) as means over the epoch's batches.

    Raises:
      NonFiniteLossError: a metric is NaN or infinite.
    """
    sums = {k: float(v) for k, v in jax.device_get(sums).items()}
    for k in MEAN_METRICS & set(sums):  # probabilities: epoch means
        sums[k] /= -(-num_rows // batch_size)
    bad = [k for k, v in sums.items() if not np.isfinite(v)]
    if bad:
        raise NonFiniteLossError(step, bad[0], sums[bad[0]])
    return sums
