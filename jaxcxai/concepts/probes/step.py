"""The jitted per-chunk step of the bulk Net2Vec fit (`bulk`).

`_prepare_chunk` pads a chunk to whole minibatches and puts it on device
(sharded over `data` when a mesh is given); `_fit_chunk` runs the optimizer
over its minibatches in one `lax.scan`, with the loss of all K x R probes of
L layers (`_probe_loss`) summed so each probe gets its own gradient.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxcxai import parallel
from jaxcxai.concepts.probes.net2vec import (
    OBJECTIVES,
    apply_thresholds,
    upsample_logits,
)
from jaxcxai.concepts.probes.sources import Chunk
from jaxcxai.concepts.probes.state import _flatten_probes, _select

_HI = jax.lax.Precision.HIGHEST


def _probe_loss(cfg, size, w, b, acts, masks, weights, pos_weight):
    """Sum over K concepts of the weighted-mean loss of one (layer, run)."""
    z = jnp.einsum("bhwc,kc->kbhw", acts, w, precision=_HI) + b[:, None, None, None]
    logits = upsample_logits(z, size)  # (K, B, H, W)
    target = jnp.swapaxes(masks, 0, 1).astype(jnp.float32)
    per = OBJECTIVES[cfg.objective][0](logits, target, pos_weight[:, None])  # (K, B)
    wsum = jnp.sum(weights, axis=0)  # (K,)
    loss = jnp.sum(per * weights.T, axis=1) / jnp.maximum(wsum, 1e-12)
    return jnp.sum(loss), wsum > 0


@functools.partial(jax.jit, static_argnums=(0, 1))
def _fit_chunk(cfg, size, params, opt_state, acts, masks, weights, orders, pw, thr):
    """Runs the optimizer over one chunk's minibatches (lax.scan over steps).

    params: Probe (L, R, K, C) / (L, R, K); opt_state: per-probe state with a
    leading axis L*R*K; acts (L, S, B, h, w, C); masks (S, B, K, H, W);
    weights (S, B, K); orders (L, R, S) minibatch order; pw (K,); thr (L, C).
    """
    tx = cfg.tx()
    acts = jax.vmap(apply_thresholds)(acts, thr)
    lead = params.b.shape  # (L, R, K)

    def loss_all(params, idx):  # idx (L, R)
        def one(w, b, a_l, i):
            return _probe_loss(cfg, size, w, b, a_l[i], masks[i], weights[i], pw)

        per_run = jax.vmap(one, in_axes=(0, 0, None, 0))  # over R
        losses, active = jax.vmap(per_run)(params.w, params.b, acts, idx)  # over L
        return jnp.sum(losses), (losses, active)

    def step(carry, idx):
        params, opt_state = carry
        grads, (losses, active) = jax.grad(loss_all, has_aux=True)(params, idx)
        p, g = _flatten_probes(params), _flatten_probes(grads)
        updates, new_state = jax.vmap(tx.update)(g, opt_state, p)
        new_p = optax.apply_updates(p, updates)
        # A probe whose concept has no weight in this minibatch is not stepped
        # (its optimizer state, e.g. Adam's count, stays as it was).
        keep = functools.partial(_select, active.reshape(-1))
        new_state = jax.tree.map(keep, new_state, opt_state)
        new_p = jax.tree.map(keep, new_p, p)
        new_p = jax.tree.map(lambda x: x.reshape(lead + x.shape[1:]), new_p)
        return (new_p, new_state), jnp.mean(losses)

    (params, opt_state), losses = jax.lax.scan(
        step, (params, opt_state), jnp.moveaxis(orders, -1, 0)
    )
    return params, opt_state, losses


def _prepare_chunk(chunk: Chunk, batch_size: int, mesh):
    """Pads a chunk to whole minibatches and lays it out as (S, B, ...)."""
    acts, masks, weights = chunk
    n = masks.shape[0]
    if acts.shape[1] != n:
        raise ValueError(f"chunk has {acts.shape[1]} activations but {n} masks")
    weights = np.ones(masks.shape[:2], np.float32) if weights is None else weights
    pad = (-n) % batch_size
    if pad:  # padding examples get weight 0
        acts = np.concatenate(
            [acts, np.zeros((acts.shape[0], pad) + acts.shape[2:], acts.dtype)], 1
        )
        masks = np.concatenate([masks, np.zeros((pad,) + masks.shape[1:], masks.dtype)])
        weights = np.concatenate(
            [weights, np.zeros((pad,) + weights.shape[1:], weights.dtype)]
        )
    s = (n + pad) // batch_size
    acts = acts.reshape((acts.shape[0], s, batch_size) + acts.shape[2:])
    masks = masks.reshape((s, batch_size) + masks.shape[1:])
    weights = np.asarray(weights, np.float32).reshape(
        (s, batch_size) + weights.shape[1:]
    )
    if mesh is None:
        return jax.device_put((acts, masks, weights))
    parallel.check_batch_size(batch_size, mesh)
    put = lambda x, spec: jax.device_put(x, NamedSharding(mesh, spec))  # noqa: E731
    return (put(acts, P(None, None, parallel.DATA_AXIS)),
            put(masks, P(None, parallel.DATA_AXIS)),
            put(weights, P(None, parallel.DATA_AXIS)))  # fmt: skip
