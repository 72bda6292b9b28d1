"""The reference code's fits with one optimizer over many samples (`fit`).

`fit_batched_reference` (one AdamW over a (B, C) tensor, the reference's
batched LoCE fit) and `fit_shared` (one vector for all samples, the BG code's
Net2Vec baseline).
"""

import functools

import jax
import jax.numpy as jnp

from jaxcxai.concepts.loce import objectives
from jaxcxai.concepts.loce.objectives import BG_CONFIG, LoceConfig
from jaxcxai.concepts.loce.projection import _alphas, _sample_loss, _upsample_acts

__all__ = ["fit_batched_reference", "fit_shared"]


@functools.partial(jax.jit, static_argnames=("config",))
def fit_batched_reference(acts, targets, alphas, *, config=LoceConfig()):
    """The reference's batched fit: one AdamW over a (B, C) tensor.

    Activations (B, C, h, w) are upsampled to the target grid first and the
    loss is `objectives.batch_loss` (with the MSE/MAE coupling quirk).
    """
    up = _upsample_acts(jnp.asarray(acts), targets.shape[-2:], config.interp)

    def loss_fn(vs, _):
        z = jnp.einsum("bc,bchw->bhw", vs, up)
        return objectives.batch_loss(config.objective, z, targets, alphas, vs)

    v0 = jax.vmap(lambda _: objectives.init_vector(up.shape[1], config))(up)
    return objectives.minimize(loss_fn, v0, config)[0]


@functools.partial(
    jax.jit, static_argnames=("config", "batch_size", "epochs", "fresh_optimizer")
)
def fit_shared(
    acts,
    targets,
    alphas=None,
    *,
    config=BG_CONFIG,
    batch_size=512,
    epochs=30,
    fresh_optimizer=True,
    key=None,
):
    """One vector for all samples: the Net2Vec baseline of the BG code (no bias).

    The sample order (shuffled with `key`, or as given) is repeated `epochs`
    times and chunked into batches of `batch_size` (batches may straddle
    epochs). Each batch is one AdamW step on the batch mean of the per-sample
    loss. With `fresh_optimizer=True`, as the reference, every step starts a
    new AdamW from the current vector, so each step moves every coordinate by
    about lr * sign(g) (Adam's first step) plus weight decay.

    Args:
      acts: (N, [V,] C, h, w); targets: (N, [V,] H, W); alphas: (N, [V]).

    Returns:
      (C,) vector.
    """
    targets, alphas = _alphas(targets, alphas)
    n = targets.shape[0]
    order = jnp.arange(n) if key is None else jax.random.permutation(key, n)
    n_steps = -(-n * epochs // batch_size)
    idx = (
        jnp.full((n_steps * batch_size,), -1)
        .at[: n * epochs]
        .set(jnp.tile(order, epochs))
    )
    idx = idx.reshape(n_steps, batch_size)
    single = functools.partial(_sample_loss, config=config)

    def loss_fn(v, batch_idx):
        w = (batch_idx >= 0).astype(jnp.float32)
        j = jnp.maximum(batch_idx, 0)
        per = jax.vmap(single, in_axes=(None, 0, 0, 0))(
            v, acts[j], targets[j], alphas[j]
        )
        return jnp.sum(w * per) / jnp.sum(w)

    v0 = objectives.init_vector(acts.shape[-3], config)
    return objectives.minimize(
        loss_fn, v0, config, xs=idx, fresh_optimizer=fresh_optimizer
    )[0]
