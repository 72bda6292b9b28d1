"""Deep ensembles: M MLPs trained at once under vmap, U_epi as member variance.

Deep ensembles (Lakshminarayanan, Pritzel, Blundell 2017) train M copies of a
network from independent initialisations on independently shuffled data and
treat them as the members of Eq. 1 of the gating paper (arXiv:2603.29915 §2):
U_epi(x) = (1/K) Σ_k Var_m[p_m(y = k | x)]. The members are one stacked
`TrainState` (leading axis M), trained by `train_mlp` with `num_members=M`
and evaluated with one `vmap`; nothing loops over members.
`train_mlp` is also the trainer of the MC-dropout MLP (M = 1): Adam 1e-3,
batch 256, ≤ 100 epochs, early stopping with patience 20 on validation loss
(arXiv:2603.29915 §4.2), through the repository's `train_step(state, batch,
key)` contract (`jaxcxai.training.state.make_train_step`).

The paper's tables do not include deep ensembles; this estimator follows its
generic definition (Eq. 1). The original paper's optional adversarial-training
term is not used.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcxai.checks import check_finite
from jaxcxai.training.state import TrainState, create_train_state, make_train_step
from jaxcxai.uncertainty.dropout import MLP
from jaxcxai.uncertainty.entropy import Estimate, variance_estimate

__all__ = ["train_mlp", "train_ensemble", "ensemble_probs", "ensemble_uncertainty"]


def _loss_fn(model):
    def loss_fn(params, batch_stats, batch, key):
        variables = {"params": params, "batch_stats": batch_stats}
        (logits, _), upd = model.apply(
            variables,
            batch["x"],
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": key},
        )
        xent = optax.softmax_cross_entropy_with_integer_labels(
            logits, batch["y"]
        ).mean()
        return xent, (upd.get("batch_stats", {}), {"xent": xent})

    return loss_fn


@jax.jit
def _keep_improved(best, states, improved):
    pick = lambda b, s: jnp.where(improved.reshape((-1,) + (1,) * (b.ndim - 1)), s, b)
    return jax.tree.map(pick, best, states)


# The compiled programs of `train_mlp` live at module level, keyed on the
# model, shapes and the static sizes, so repeated trainings (every gating
# experiment trains several MLPs) reuse them instead of compiling fresh
# closures. `_adam` returns one transformation object per learning rate: the
# state's `tx` is static, and a new `optax.adam` would not compare equal.
@functools.cache
def _adam(lr: float) -> optax.GradientTransformation:
    return optax.adam(lr)


@functools.partial(jax.jit, static_argnames=("model", "lr"))
def _init_states(keys, x1, *, model, lr):
    return jax.vmap(lambda k: create_train_state(model, _adam(lr), k, x1))(keys)


@functools.partial(jax.jit, static_argnames=("model", "batch_size"))
def _run_epoch(states, key, x, y, drop_keys, *, model, batch_size):
    """One shuffled pass of every member over (x, y)."""
    n, m = x.shape[0], drop_keys.shape[0]
    step = jax.vmap(make_train_step(_loss_fn(model)))
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(key, m))
    do = lambda s, idx: step(s, {"x": x[idx], "y": y[idx]}, drop_keys)  # noqa: E731
    full = (n // batch_size) * batch_size
    chunks = perms[:, :full].reshape(m, -1, batch_size).swapaxes(0, 1)
    states, _ = jax.lax.scan(do, states, chunks)
    if n > full:
        states, _ = do(states, perms[:, full:])
    return states


@functools.partial(jax.jit, static_argnames="model")
def _val_loss(states, x_val, y_val, *, model):
    def one(s):
        logits, _ = model.apply(s.variables(), x_val)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y_val).mean()

    return jax.vmap(one)(states)


def train_mlp(
    model: nn.Module,
    x: Any,
    y: Any,
    key: jax.Array,
    *,
    x_val: Any = None,
    y_val: Any = None,
    num_members: int | None = None,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 1e-3,
    patience: int = 20,
) -> TrainState:
    """Trains the MLP (or `num_members` independent copies at once).

    Adam, shuffled mini-batches (the last one partial), softmax cross-entropy;
    with validation data, each member keeps its own best state by validation
    loss and stops improving it after `patience` epochs without improvement
    (exactly its own early-stopped run; the loop ends when all have stopped).

    Args:
      model: the `MLP` (any module with `train`/`mc_dropout` flags).
      x: (n, d) float32 features. y: (n,) int labels.
      key: PRNG key (initialisation, shuffling, dropout; split per member).
      x_val, y_val: optional validation data for early stopping.
      num_members: None for one model; M for a stack of M members.
      epochs, batch_size, lr, patience: the paper's 100, 256, 1e-3, 20.

    Returns:
      `TrainState` (leaves with a leading (M,) axis when `num_members`).
    """
    check_finite({"x": x, "x_val": x_val})
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)
    if x_val is not None:
        x_val = jnp.asarray(x_val, jnp.float32)
        y_val = jnp.asarray(y_val, jnp.int32)
    m = num_members or 1
    k_init, k_drop, k_shuffle = jax.random.split(key, 3)
    states = _init_states(jax.random.split(k_init, m), x[:1], model=model, lr=float(lr))
    drop_keys = jax.random.split(k_drop, m)
    best, best_loss, wait = states, np.full(m, np.inf), np.zeros(m, int)
    for epoch in range(epochs):
        k = jax.random.fold_in(k_shuffle, epoch)
        states = _run_epoch(
            states, k, x, y, drop_keys, model=model, batch_size=batch_size
        )
        if x_val is None:
            best = states
            continue
        loss = np.asarray(_val_loss(states, x_val, y_val, model=model))
        improved = (loss < best_loss) & (wait < patience)
        best = _keep_improved(best, states, improved)
        best_loss = np.where(improved, loss, best_loss)
        wait = np.where(improved, 0, wait + 1)
        if np.all(wait >= patience):
            break
    return best if num_members else jax.tree.map(lambda a: a[0], best)


def train_ensemble(
    x: Any,
    y: Any,
    num_classes: int,
    key: jax.Array,
    *,
    num_members: int = 5,
    model: nn.Module | None = None,
    x_val: Any = None,
    y_val: Any = None,
    **train_kw,
) -> tuple[nn.Module, TrainState]:
    """Trains M members at once (vmap over initialisation and shuffling keys).

    Args:
      x: (n, d) float32 features. y: (n,) int labels.
      num_classes: K.
      key: PRNG key; member m's initialisation, shuffling and dropout keys are
        split from it.
      num_members: M (Lakshminarayanan et al. use 5).
      model: the member network (default: the paper's `MLP(num_classes)`).
      x_val, y_val: optional validation data; early stopping per member.
      **train_kw: `epochs`, `batch_size`, `lr`, `patience` of `train_mlp`.

    Returns:
      `(model, states)` where every leaf of `states` has a leading (M,) axis.

    References:
      Lakshminarayanan, Pritzel, Blundell, "Simple and scalable predictive
      uncertainty estimation using deep ensembles", NeurIPS 2017;
      arXiv:2603.29915 Eq. 1.
    """
    check_finite({"x": x, "x_val": x_val})
    model = MLP(num_classes) if model is None else model
    states = train_mlp(
        model,
        x,
        y,
        key,
        x_val=x_val,
        y_val=y_val,
        num_members=num_members,
        **train_kw,
    )
    return model, states


def ensemble_probs(model: nn.Module, variables: dict, x: jax.Array) -> jax.Array:
    """Softmax of every member in eval mode (no dropout, running BN stats).

    Args:
      model: the member network (returns `(logits, acts)`).
      variables: stacked `{"params", "batch_stats"?}`, leading axis M (e.g.
        `states.variables()` of `train_ensemble`).
      x: (N, d) inputs.

    Returns:
      (M, N, K) float32 probabilities.
    """

    def one(v):
        logits, _ = model.apply(v, x)
        return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

    return jax.vmap(one)(variables)


def ensemble_uncertainty(model: nn.Module, variables: dict, x: jax.Array) -> Estimate:
    """U_epi = (1/K) Σ_k Var_m[p_{m,k}(x)] over members, and aleatoric H(p̄).

    Args:
      model: the member network.
      variables: stacked member variables (leading axis M).
      x: (N, d) inputs.

    Returns:
      `Estimate` of (N,) epistemic, (N,) aleatoric, (N, K) mean probabilities.

    References:
      Lakshminarayanan et al. 2017; arXiv:2603.29915 Eq. 1.
    """
    check_finite({"x": x})
    probs = jax.jit(ensemble_probs, static_argnums=0)(model, variables, x)
    return variance_estimate(probs)
