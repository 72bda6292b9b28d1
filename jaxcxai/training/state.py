"""The training-state pytree and the one train-step contract.

Every trainer in jaxcxai follows

    train_step(state: TrainState, batch: dict, key: PRNGKey) -> (state, metrics)

`state` holds only pytrees (step, params, batch statistics, optimizer state);
the model's `apply` and the optax transformation are static fields rebuilt from
the config, so checkpoints stay free of code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

PyTree = Any
# loss_fn(params, batch_stats, batch, key) -> (loss, (new_batch_stats, metrics))
LossFn = Callable[[PyTree, PyTree, dict, jax.Array], tuple[jax.Array, tuple]]


class TrainState(flax.struct.PyTreeNode):
    """Training state: a pytree with static `apply_fn` and `tx`.

    Attributes:
      step: int32 scalar, number of updates applied.
      params: model parameters.
      batch_stats: BatchNorm running statistics (empty dict without BN).
      opt_state: optax state of `tx`.
      apply_fn: the model's `apply` (static).
      tx: the optax transformation (static).
    """

    step: jax.Array
    params: PyTree
    batch_stats: PyTree
    opt_state: PyTree
    apply_fn: Callable = flax.struct.field(pytree_node=False)
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

    def apply_gradients(self, grads: PyTree, **changes) -> TrainState:
        """One optimizer update; `changes` replaces other fields (batch_stats)."""
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, updates)
        return self.replace(
            step=self.step + 1, params=params, opt_state=opt_state, **changes
        )

    def variables(self) -> dict:
        """The `{'params', 'batch_stats'}` dict that `apply_fn` takes."""
        if self.batch_stats:
            return {"params": self.params, "batch_stats": self.batch_stats}
        return {"params": self.params}


def create_train_state(
    model: Any, tx: optax.GradientTransformation, key: jax.Array, *init_args, **kw
) -> TrainState:
    """Initializes a linen model and its optimizer state.

    Args:
      model: a `flax.linen.Module`.
      tx: optax transformation.
      key: PRNG key for `model.init`.
      *init_args: dummy inputs for `model.init` (shapes only matter).
      **kw: extra keyword arguments for `model.init` (e.g. `train=False`).

    Returns:
      A `TrainState` at step 0. Wrap in `jax.jit(..., out_shardings=...)` (see
      `init_state_sharded`) to create it already placed on a mesh.
    """
    return state_from_variables(model, tx, model.init(key, *init_args, **kw))


def state_from_variables(
    model: Any, tx: optax.GradientTransformation, variables: dict
) -> TrainState:
    """A `TrainState` at step 0 from given variables.

    For weights that do not come from `model.init`: NumPy-drawn ones
    (`models.host_init`, which avoids compiling the random-number code on
    XLA:CPU), imported or pretrained ones.

    Args:
      model: the `flax.linen.Module` the variables belong to.
      tx: optax transformation.
      variables: {"params": ..., optional "batch_stats": ...}.
    """
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
        apply_fn=model.apply,
        tx=tx,
    )


def init_state_sharded(
    init_fn: Callable[[jax.Array], TrainState], key: jax.Array, sharding: Any
) -> TrainState:
    """Runs `init_fn(key)` under jit so the state is born with `sharding`.

    Args:
      init_fn: `key -> TrainState`, e.g. a `functools.partial` of
        `create_train_state`.
      key: PRNG key.
      sharding: a sharding (usually replicated) applied to every leaf.
    """
    return jax.jit(init_fn, out_shardings=sharding)(key)


def abstract_state(
    init_fn: Callable[[jax.Array], TrainState], key: jax.Array, sharding: Any
) -> TrainState:
    """Shapes, dtypes and shardings of the state, without allocating it."""
    shapes = jax.eval_shape(init_fn, key)
    return jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes
    )


def make_train_step(loss_fn: LossFn) -> Callable:
    """Builds the standard `train_step(state, batch, key)` from a loss.

    Args:
      loss_fn: `(params, batch_stats, batch, key) -> (loss, (new_batch_stats,
        metrics))`, where `metrics` is a dict of scalars; loss terms should be
        in it under their own names so a non-finite value can be traced.

    Returns:
      `train_step(state, batch, key) -> (state, metrics)`; the key is folded
      with the step, so callers pass the same base key every step. Jit it once
      with `jax.jit(train_step, donate_argnums=0)`.
    """

    def train_step(state: TrainState, batch: dict, key: jax.Array):
        step_key = jax.random.fold_in(key, state.step)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (batch_stats, metrics)), grads = grad_fn(
            state.params, state.batch_stats, batch, step_key
        )
        new_state = state.apply_gradients(grads, batch_stats=batch_stats)
        metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads))
        return new_state, metrics

    return train_step
