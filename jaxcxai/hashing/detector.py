"""CHNR's noise detector D_N: fake pairs, its optimizer and its training step.

D_N is a `models.NoiseDetector` on joint features [x; y] (image feature
next to caption feature). In CHNR's meta phase it learns, on the clean
subset, to tell real pairs from fake ones whose caption comes from another
sample (BCE + gradient penalty, one AdamW step per batch); in the main
phase its clean probability weights each pair's loss (`chnr`).
"""

import functools

import jax
import jax.numpy as jnp
import optax

from jaxcxai.hashing import losses

__all__ = ["detect", "detector_step", "detector_tx", "fake_partners"]


@functools.cache
def detector_tx(lr, b1, b2, weight_decay) -> optax.GradientTransformation:
    """D_N's optimizer: torch's AdamW (decoupled decay, eps 1e-8), which is
    optax.adamw's update; cached so equal settings share one object."""
    return optax.adamw(lr, b1=b1, b2=b2, eps=1e-8, weight_decay=weight_decay)


def fake_partners(key: jax.Array, n: int, labels: jax.Array | None = None) -> jax.Array:
    """For each item i of a batch of n, a partner j drawn uniformly.

    With labels, j is drawn among items whose label differs from i's (the
    distribution of the reference's rejection loop); a row with no such item
    falls back to any j != i (the reference would loop forever). Without
    labels, j is any item other than i.

    Args:
      key: PRNG key.
      n: batch size.
      labels: (n,) class codes, (n, L) label vectors, or None.

    Returns:
      (n,) int32 partner indices.
    """
    other = ~jnp.eye(n, dtype=bool)
    if labels is None:
        valid = other
    else:
        lab = labels.reshape(n, -1)
        valid = jnp.any(lab[:, None, :] != lab[None, :, :], axis=-1)
        valid = jnp.where(jnp.any(valid, axis=1, keepdims=True), valid, other)
    if n == 1:
        valid = jnp.ones((1, 1), bool)
    logits = jnp.where(valid, 0.0, -jnp.inf)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def detect(state, params, z, key, train):
    """D_N's logits (B,) for joint features z (B, Di + Dt) with `params`;
    dropout from `key` when `train`."""
    rngs = {"dropout": key} if train else None
    return state.disc_net.apply({"params": params}, z, train=train, rngs=rngs)


def detector_step(state, reals, fakes, key_gp, key_drop, gp_weight: float):
    """One AdamW step of D_N on four (real, fake) pairs of joint features.

    The loss is the sum over the pairs of the discriminator BCE plus the
    gradient penalty at a random interpolation of the real and fake rows
    (the reference accumulates the four pairs before its step).

    Args:
      state: a CHNR `HashState` (`params['disc']`, `opt_state['disc']`,
        `disc_net`, `disc_tx`).
      reals: four (n, Di + Dt) real joint features.
      fakes: the four matching fake joint features.
      key_gp: PRNG key of the interpolation weights.
      key_drop: PRNG key of D_N's dropout (three calls per pair).
      gp_weight: gradient-penalty weight.

    Returns:
      (new D_N params, new D_N optimizer state, loss, {"det_bce", "det_gp"}).
    """
    u = jax.random.uniform(key_gp, (4,) + reals[0].shape)
    drop = jax.random.split(key_drop, 12).reshape(4, 3)

    def pair_loss(params, real, fake, u_k, keys):
        real_l = detect(state, params, real, keys[0], True)
        fake_l = detect(state, params, fake, keys[1], True)
        for_gp = lambda z: (detect(state, params, z, keys[2], True), None)
        x_hat = losses.interpolate(real, fake, u_k)
        gp, _ = losses.gradient_penalty(for_gp, x_hat, gp_weight)
        return losses.discriminator_bce(real_l, fake_l), gp

    def det_loss(params):
        # D_N has no BatchNorm, so the four accumulated pairs are
        # independent: one vmapped call instead of four copies.
        bce, gp = jax.vmap(pair_loss, in_axes=(None, 0, 0, 0, 0))(
            params, jnp.stack(reals), jnp.stack(fakes), u, drop
        )
        return bce.sum() + gp.sum(), {"det_bce": bce.sum(), "det_gp": gp.sum()}

    (d_loss, d_metrics), d_grads = jax.value_and_grad(det_loss, has_aux=True)(
        state.params["disc"]
    )
    d_updates, d_opt = state.disc_tx.update(
        d_grads, state.opt_state["disc"], state.params["disc"]
    )
    det_params = optax.apply_updates(state.params["disc"], d_updates)
    return det_params, d_opt, d_loss, d_metrics
