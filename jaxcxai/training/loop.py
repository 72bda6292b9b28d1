"""The training loop: jit once, step, log, evaluate, checkpoint, resume.

Batches are a function of the step (`batch_fn(step)`), and the step's PRNG key
is `fold_in(key, step)` inside the step, so a run resumed from a checkpoint at
step k continues exactly as the uninterrupted run would. Its metrics log does
too: records past step k (logged before the interruption) are dropped when
the run resumes, and at a checkpoint step the log and evaluation records are
written before the checkpoint, so every step is logged exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxcxai.checkpoint import Checkpointer
from jaxcxai.metric_writers import JsonlWriter

__all__ = ["NonFiniteLossError", "train_loop", "first_nonfinite"]


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; names the step and the term."""

    def __init__(self, step: int, term: str, value: float):
        self.step, self.term, self.value = step, term, value
        super().__init__(
            f"Non-finite loss at step {step}: term '{term}' = {value}. "
            "The run was stopped; the last checkpoint holds the state before it."
        )


_AGGREGATES = ("loss", "grad_norm")


def first_nonfinite(history: list[tuple[int, dict]]) -> tuple[int, str, float] | None:
    """The first (step, term, value) with a non-finite scalar, or None.

    Within a step, a component term (e.g. `xent`) is named in preference to
    the aggregates `loss` and `grad_norm`, since it says where the NaN came
    from.
    """
    for step, metrics in history:
        bad = [
            (term, float(np.asarray(v)))
            for term, v in metrics.items()
            if np.asarray(v).ndim == 0 and not np.isfinite(v)
        ]
        if bad:
            bad.sort(key=lambda tv: tv[0] in _AGGREGATES)
            return step, bad[0][0], bad[0][1]
    return None


def train_loop(
    state: Any,
    train_step: Callable,
    batch_fn: Callable[[int], Any],
    key: jax.Array,
    *,
    num_steps: int,
    writer: JsonlWriter | None = None,
    log_every: int = 50,
    checkpointer: Checkpointer | None = None,
    eval_fn: Callable[[Any], dict] | None = None,
    eval_every: int = 0,
    progress: bool = True,
    donate: bool = True,
) -> Any:
    """Runs `train_step` from `state.step` to `num_steps`.

    Args:
      state: initial (or restored) `TrainState`.
      train_step: `(state, batch, key) -> (state, metrics)`; jitted here once.
      batch_fn: `step -> batch` (already placed on the mesh, or NumPy).
      key: base PRNG key; the step folds in its step number.
      num_steps: total number of steps of the run (not of this call).
      writer: receives the interval mean of each metric every `log_every`
        steps, plus `steps_per_s`; its records after the start step (an
        interrupted run's, past its last checkpoint) are dropped first.
      log_every: log and non-finite-check interval. Metrics stay on device
        in between, so the loop does not synchronize every step.
      checkpointer: saves on its own interval and at the end.
      eval_fn: `state -> dict of scalars`, called every `eval_every` steps and
        at the end; written with an `eval/` prefix.
      eval_every: 0 disables periodic evaluation.
      progress: show a progress bar with steps/s and ETA.
      donate: donate the state's buffers to the step.

    Returns:
      The final state.

    Raises:
      NonFiniteLossError: at the first logged interval holding a NaN/inf
        metric, naming its exact step and term; nothing after it is saved.
    """
    step_fn = jax.jit(train_step, donate_argnums=0 if donate else ())
    start = int(jax.device_get(state.step))
    if hasattr(writer, "truncate"):
        writer.truncate(start)
    history: list[tuple[int, dict]] = []
    bar = tqdm(
        total=num_steps,
        initial=start,
        disable=not progress,
        unit="step",
        dynamic_ncols=True,
    )
    t_last, n_last = time.perf_counter(), 0

    def flush(step: int) -> None:
        nonlocal history, t_last, n_last
        if not history:
            return
        fetched = jax.device_get(history)
        history = []
        bad = first_nonfinite(fetched)
        if bad is not None:
            raise NonFiniteLossError(*bad)
        now = time.perf_counter()
        means = {k: float(np.mean([m[k] for _, m in fetched])) for k in fetched[-1][1]}
        means["steps_per_s"] = n_last / max(now - t_last, 1e-9)
        t_last, n_last = now, 0
        if writer is not None:
            writer.write_scalars(step, means)
        bar.set_postfix(loss=f"{means.get('loss', float('nan')):.4g}")

    try:
        for step in range(start, num_steps):
            state, metrics = step_fn(state, batch_fn(step), key)
            history.append((step, metrics))
            n_last += 1
            bar.update(1)
            done = step + 1
            if done % log_every == 0 or done == num_steps:
                flush(done)
            save = checkpointer is not None and (
                done % checkpointer.save_every == 0 or done == num_steps
            )
            if save:
                flush(done)  # never save a state past an unchecked NaN
            if eval_fn is not None and (
                (eval_every and done % eval_every == 0) or done == num_steps
            ):
                results = {f"eval/{k}": v for k, v in eval_fn(state).items()}
                if writer is not None:
                    writer.write_scalars(done, results)
            if save:  # after this step's records: a resume from it skips them
                checkpointer.save(state, force=done == num_steps)
    finally:
        bar.close()
        if checkpointer is not None:
            checkpointer.wait()
    return state
