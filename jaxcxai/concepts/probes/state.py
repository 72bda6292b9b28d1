"""Bulk Net2Vec hyper-parameters and initial state (`bulk`).

`Net2VecConfig` (objective and optimizer), the per-run initial probes and
minibatch orders, and the per-probe optimizer layout: (L, R, K, ...) probes
flattened to one optimizer state per probe.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcxai.concepts.probes.net2vec import OBJECTIVES, Probe

__all__ = ["Net2VecConfig", "init_probes", "minibatch_orders"]


@dataclasses.dataclass(frozen=True)
class Net2VecConfig:
    """Probe training hyper-parameters (defaults: hybrid_learning's Net2Vec config).

    Attributes:
      objective: a key of `net2vec.OBJECTIVES`.
      pos_weight: positive-class weight; None = the objective's default
        (dataset-level alpha for "net2vec"/"fuzzy_bce", 0.95 for
        "balanced_bce").
      optimizer: "sgd" (with momentum) or "adamw" (optax, PyTorch semantics).
      learning_rate, momentum: SGD settings (and AdamW's learning rate).
      b1, b2, eps, weight_decay: AdamW settings.
      batch_size: examples per optimizer step.
      epochs: passes over the data.
      init: "uniform" (PyTorch Conv2d default U(-1/sqrt(C), 1/sqrt(C))) or "zeros".
    """

    objective: str = "balanced_bce"
    pos_weight: float | None = None
    optimizer: str = "sgd"
    learning_rate: float = 1e-4
    momentum: float = 0.9
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01
    batch_size: int = 64
    epochs: int = 30
    init: str = "uniform"

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"unknown objective {self.objective!r}; use one of {sorted(OBJECTIVES)}"
            )
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(
                f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}"
            )
        if self.init not in ("uniform", "zeros"):
            raise ValueError(f"init must be 'uniform' or 'zeros', got {self.init!r}")

    def tx(self) -> optax.GradientTransformation:
        if self.optimizer == "sgd":
            return optax.sgd(self.learning_rate, momentum=self.momentum or None)
        return optax.adamw(self.learning_rate, self.b1, self.b2, self.eps,
                           weight_decay=self.weight_decay)  # fmt: skip


def init_probes(key, channels, num_concepts, num_runs, init="uniform", layer_id=0):
    """Initial probes (K, R, C) / (K, R) for one layer.

    Run r of layer `layer_id` uses fold_in(fold_in(fold_in(key, r), 0), layer_id),
    so a layer's initialization does not depend on which layers share its call.
    """
    if init == "zeros":
        return Probe(jnp.zeros((num_concepts, num_runs, channels)),
                     jnp.zeros((num_concepts, num_runs)))  # fmt: skip
    bound = 1.0 / np.sqrt(channels)

    def one(r):
        k = jax.random.fold_in(
            jax.random.fold_in(jax.random.fold_in(key, r), 0), layer_id
        )
        kw, kb = jax.random.split(k)
        shape = (num_concepts,)
        return (jax.random.uniform(kw, shape + (channels,), minval=-bound, maxval=bound),
                jax.random.uniform(kb, shape, minval=-bound, maxval=bound))  # fmt: skip

    w, b = jax.vmap(one)(jnp.arange(num_runs))
    return Probe(jnp.swapaxes(w, 0, 1), jnp.swapaxes(b, 0, 1))


def minibatch_orders(key, num_runs: int, epoch: int, chunk: int, num_steps: int):
    """(R, S) order of the S minibatches of a chunk for each run.

    Run r permutes with fold_in(fold_in(fold_in(fold_in(key, r), 1), epoch),
    chunk); the order is shared by all layers of a call.
    """

    def one(r):
        k = jax.random.fold_in(jax.random.fold_in(key, r), 1)
        k = jax.random.fold_in(jax.random.fold_in(k, epoch), chunk)
        return jax.random.permutation(k, num_steps)

    return jax.vmap(one)(jnp.arange(num_runs))


def _positive_weight(config: Net2VecConfig, alpha):
    if config.pos_weight is not None:
        return config.pos_weight
    default = OBJECTIVES[config.objective][1]
    if default != "dataset":
        return default
    if alpha is None:
        raise ValueError(
            f"objective {config.objective!r} needs the dataset-level alpha "
            "(foreground_alpha(masks)) or config.pos_weight"
        )
    return alpha


def _flatten_probes(tree):
    """(L, R, K, ...) leaves -> (L*R*K, ...): one optimizer per probe."""
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[3:]), tree)


def _select(mask, new, old):
    """Per-probe `where` for leaves with a leading probe axis."""
    return jnp.where(mask.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)


def _init_state(key, config, layer_ids, channels, num_concepts, num_runs):
    """Probes (L, R, K, ...) and per-probe optimizer states (L*R*K, ...)."""
    per_layer = [
        init_probes(key, channels, num_concepts, num_runs, config.init, i)
        for i in layer_ids
    ]
    params = jax.tree.map(lambda *x: jnp.swapaxes(jnp.stack(x), 1, 2), *per_layer)
    return params, jax.vmap(config.tx().init)(_flatten_probes(params))
