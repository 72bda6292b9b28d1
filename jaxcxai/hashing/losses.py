"""Loss terms of DUCH and CHNR (as in the authors' reference code).

Arrays in, scalars (or per-row vectors) out; every function works on the
global batch, so under `jax.jit` with a batch sharded over devices it gives
exactly the single-device value (all negatives take part).

Conventions: codes are (N, K) continuous hash outputs in (-1, 1); the two
inputs of an NT-Xent term are paired row by row. Sums, not means, wherever
the reference sums.

References:
  Mikriukov, Ravanbakhsh, Demir, "Deep Unsupervised Contrastive Hashing for
  Large-Scale Cross-Modal Text-Image Retrieval in Remote Sensing",
  arXiv:2201.08125. CHNR: arXiv:2202.13117. Reference code: comrados/duch,
  comrados/noisy_captions.
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

# NT-Xent lives in its own module; re-exported here with the other terms.
from jaxcxai.hashing.contrastive import (
    l2_normalize,
    ntxent,
    ntxent_many,
    ntxent_reference,
    ntxent_rows,
    ntxent_standard,
)

__all__ = [
    "NOISE_WEIGHT_SCHEMES",
    "adversarial_generator_loss",
    "bit_balance_loss",
    "discriminator_bce",
    "gradient_penalty",
    "interpolate",
    "l2_normalize",
    "noise_weights",
    "ntxent",
    "ntxent_many",
    "ntxent_reference",
    "ntxent_rows",
    "ntxent_standard",
    "quantization_loss",
    "target_codes",
]

NOISE_WEIGHT_SCHEMES = ("normal", "exp", "dis", "ones")


def discriminator_bce(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """-mean log sigma(real) - mean log(1 - sigma(fake)) (D_h and D_N updates)."""
    return -jnp.mean(jax.nn.log_sigmoid(real_logits)) - jnp.mean(
        jax.nn.log_sigmoid(-fake_logits)
    )


def interpolate(real: jax.Array, fake: jax.Array, u: jax.Array) -> jax.Array:
    """u * real + (1 - u) * fake, with u drawn per element (not per sample)."""
    return u * real + (1.0 - u) * fake


def _safe_norm(g: jax.Array) -> jax.Array:
    # torch's norm backward is 0 at a zero vector; plain sqrt would give NaN.
    sq = jnp.sum(jnp.square(g), axis=-1)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def gradient_penalty(
    disc_fn: Callable[[jax.Array], tuple[jax.Array, object]],
    x_hat: jax.Array,
    weight: float = 10.0,
) -> tuple[jax.Array, object]:
    """weight * mean_i (||d/dx_i sum_j D(x)_j||_2 - 1)^2 at the interpolants.

    The gradient is of the *sum* of the outputs (torch `grad_outputs` of
    ones), so BatchNorm's coupling across samples is included.

    Args:
      disc_fn: `x -> (logits (N,), aux)`; aux (e.g. new batch statistics)
        is passed through.
      x_hat: (N, D) interpolants.
      weight: the penalty weight (10).

    Returns:
      (penalty scalar, aux). Differentiable with respect to whatever
      `disc_fn` closes over (double backward).
    """

    def summed(x):
        logits, aux = disc_fn(x)
        return jnp.sum(logits), aux

    grads, aux = jax.grad(summed, has_aux=True)(x_hat)
    norms = _safe_norm(grads.reshape(grads.shape[0], -1))
    return weight * jnp.mean(jnp.square(norms - 1.0)), aux


def adversarial_generator_loss(logits: jax.Array) -> jax.Array:
    """-sum_i log sigma(D(h_i)): push codes h towards the "real" side."""
    return -jnp.sum(jax.nn.log_sigmoid(logits))


def quantization_loss(codes: Sequence[jax.Array], target: jax.Array) -> jax.Array:
    """sum over views v and samples i of ||B_i - v_i||^2 (DUCH's L_Q).

    Args:
      codes: views, each (N, K).
      target: (N, K) target codes B[idx] in {-1, 0, 1}, held fixed.
    """
    target = jax.lax.stop_gradient(target)
    return sum(jnp.sum(jnp.square(target - v)) for v in codes)


def bit_balance_loss(codes: Sequence[jax.Array]) -> jax.Array:
    """sum over views and samples of (sum_k v_ik)^2: per code, not per bit."""
    return sum(jnp.sum(jnp.square(jnp.sum(v, axis=-1))) for v in codes)


def target_codes(
    img1: jax.Array, img2: jax.Array, txt1: jax.Array, txt2: jax.Array
) -> jax.Array:
    """B = sign(((Hi1 + Hi2) / 2 + (Ht1 + Ht2) / 2) / 2), sign(0) = 0."""
    return jnp.sign(((img1 + img2) / 2 + (txt1 + txt2) / 2) / 2)


def noise_weights(
    probs: jax.Array, scheme: str, threshold: jax.Array | float = 0.5
) -> jax.Array:
    """CHNR pair weights from D_N's clean probabilities (`--noise-weights`).

    Args:
      probs: (N,) sigma(D_N([x; y])).
      scheme: `normal` (w), `exp` (|w|^3), `dis` (1[w > threshold]) or
        `ones` (no noise handling).
      threshold: the `dis` threshold, (mean r1 + mean f1) / 2 of the last
        meta epoch.
    """
    if scheme == "normal":
        return probs
    if scheme == "exp":
        return jnp.abs(probs**3)
    if scheme == "dis":
        return (probs > threshold).astype(probs.dtype)
    if scheme == "ones":
        return jnp.ones_like(probs)
    raise ValueError(
        f"unknown noise weight scheme {scheme!r}; valid: {NOISE_WEIGHT_SCHEMES}"
    )
