"""Orbax checkpointing behind one small module.

Only the pytree fields of a `TrainState` are saved (step, params, batch_stats,
opt_state); `apply_fn` and `tx` are rebuilt from the config. Restoring takes
an abstract state (`training.abstract_state`) whose leaves carry shardings, so
sharded states come back placed as they were. Swap in Orbax's v1 API here and
nowhere else.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["Checkpointer"]

_FIELDS = ("step", "params", "batch_stats", "opt_state")


def _to_tree(state: Any) -> dict:
    return {f: getattr(state, f) for f in _FIELDS}


class Checkpointer:
    """Saves every `save_every` steps, keeps the last `keep`, resumes.

    Args:
      directory: checkpoint directory (created if missing), e.g. `workdir/ckpt`.
      save_every: save interval in steps; `save(..., force=True)` ignores it.
      keep: number of checkpoints kept.
      async_save: write in a background thread; call `wait()` before exiting.
    """

    def __init__(
        self, directory: str, save_every: int = 1000, keep: int = 3, async_save=True
    ):
        directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            save_interval_steps=save_every,
            enable_async_checkpointing=async_save,
            create=True,
        )
        self.directory = directory
        self.save_every = save_every
        self._mngr = ocp.CheckpointManager(directory, options=options)

    def latest_step(self) -> int | None:
        return self._mngr.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._mngr.all_steps())

    def save(self, state: Any, force: bool = False) -> bool:
        """Saves `state` at `state.step` if the interval says so (or `force`)."""
        step = int(jax.device_get(state.step))
        return self._mngr.save(
            step, args=ocp.args.StandardSave(_to_tree(state)), force=force
        )

    def restore(self, abstract: Any, step: int | None = None) -> Any | None:
        """Restores into the structure and shardings of `abstract`.

        Args:
          abstract: a `TrainState` whose leaves are `jax.ShapeDtypeStruct`s
            with shardings (see `training.abstract_state`); its static fields
            are reused.
          step: the step to restore; default the latest.

        Returns:
          The restored `TrainState`, or None if there is no checkpoint.
        """
        step = self._mngr.latest_step() if step is None else step
        if step is None:
            return None
        target = _to_tree(abstract)
        restored = self._mngr.restore(step, args=ocp.args.StandardRestore(target))
        # Orbax returns optax NamedTuples as plain tuples: put the leaves back
        # into the abstract tree's structure.
        fixed = {
            f: jax.tree.unflatten(
                jax.tree.structure(target[f]), jax.tree.leaves(restored[f])
            )
            for f in _FIELDS
        }
        return abstract.replace(**fixed)

    def wait(self) -> None:
        """Blocks until pending asynchronous saves are on disk."""
        self._mngr.wait_until_finished()

    def close(self) -> None:
        self._mngr.wait_until_finished()
        self._mngr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
