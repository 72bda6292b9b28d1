"""TopK sparse autoencoder over activation rows (a pure params pytree).

Model (Makhzani & Frey 2013, "k-sparse autoencoders"; Gao et al. 2024,
"Scaling and evaluating sparse autoencoders"):

    z     = TopK(ReLU((x - b_dec) W_enc + b_enc))   # (m,) at most k non-zero
    x_hat = z W_dec + b_dec                          # W_dec (m, d)

Params: {"w_dec" (m, d), "b_dec" (d,), "b_enc" (m,)} plus "w_enc" (d, m)
unless the encoder is tied (W_enc = W_dec^T). Decoder rows are kept at unit
norm: the gradient component along each row is removed before the optimizer
and the rows are renormalized after each update (Gao et al. 2024), so the
codes carry the scale and the decoder rows are the concept directions. The
encoder starts as the transpose of the decoder, b_dec as the data mean (the
paper uses the geometric median; the mean is the cheap stand-in).

Training follows jaxcxai's contract `train_step(state, batch, key) ->
(state, metrics)` on a `jaxcxai.training.TrainState` whose `apply_fn` is
`sae_apply` (k bound) and whose `batch_stats` holds the SAE's running
statistic {"since_fired": (m,) int32}: the number of steps since each
latent last fired. A latent is "dead" when it has not fired for
`dead_after` steps. The loss is the mean squared reconstruction error per
row; metrics add the fraction of variance unexplained (FVU), mean L0 and
the dead count. (Gao et al.'s AuxK loss for reviving dead latents is not
implemented.) Streaming over chunks lives in `sae_stream`.
"""

import functools

import jax
import jax.numpy as jnp
import optax

from jaxcxai.concepts.discovery.common import Factorization, as_rows, check_positive_int
from jaxcxai.training import TrainState

__all__ = [
    "init_sae",
    "encode",
    "decode",
    "sae_apply",
    "create_sae_state",
    "make_sae_train_step",
    "sae_factorization",
    "dead_latents",
]


def _bcast_add(x, b):
    """x (..., n) + b (n,) without implicit rank promotion."""
    return x + b.reshape((1,) * (x.ndim - 1) + b.shape)


def _unit_rows(w):
    return w / jnp.maximum(jnp.linalg.norm(w, axis=-1, keepdims=True), 1e-12)


def init_sae(key, d, num_latents, *, tied=False, b_dec=None, dtype=jnp.float32):
    """Initial SAE params: random unit decoder rows, encoder = decoder^T.

    Args:
      key: PRNG key.
      d: input dimension.
      num_latents: dictionary size m (may exceed d: overcomplete).
      tied: share the encoder with the decoder (W_enc = W_dec^T).
      b_dec: optional (d,) initial decoder bias (e.g. the data mean).
    """
    w_dec = _unit_rows(jax.random.normal(key, (num_latents, d), dtype))
    params = {
        "w_dec": w_dec,
        "b_dec": jnp.zeros(d, dtype) if b_dec is None else jnp.asarray(b_dec, dtype),
        "b_enc": jnp.zeros(num_latents, dtype),
    }
    if not tied:
        params["w_enc"] = w_dec.T
    return params


def encode(params, x, k):
    """TopK codes (..., m) of rows x (..., d): ReLU pre-activations with all
    but the k largest per row set to zero."""
    w_enc = params["w_enc"] if "w_enc" in params else params["w_dec"].T
    pre = _bcast_add(_bcast_add(x, -params["b_dec"]) @ w_enc, params["b_enc"])
    kth = jax.lax.top_k(pre, k)[0][..., -1:]
    # Thresholding at the k-th value keeps the gradient of the kept values.
    return jnp.where(pre >= kth, jax.nn.relu(pre), 0.0)


def decode(params, codes):
    """Reconstruction (..., d) of codes (..., m)."""
    return _bcast_add(codes @ params["w_dec"], params["b_dec"])


def sae_apply(variables, x, *, k):
    """`apply_fn` of the SAE: (reconstruction (B, d), codes (B, m))."""
    codes = encode(variables["params"], x, k)
    return decode(variables["params"], codes), codes


def create_sae_state(key, d, num_latents, k, tx, *, tied=False, b_dec=None):
    """A `TrainState` of a TopK SAE at step 0 (see the module docstring).

    Args:
      key: PRNG key of the init.
      d: input dimension.
      num_latents: dictionary size m.
      k: active latents per row (1 <= k <= m).
      tx: optax transformation, e.g. `optax.adam(1e-3)`.
      tied: tie the encoder to the decoder.
      b_dec: optional (d,) initial decoder bias (data mean).
    """
    check_positive_int(num_latents, "num_latents")
    if check_positive_int(k, "k") > num_latents:
        raise ValueError(f"k={k} exceeds num_latents={num_latents}")
    params = init_sae(key, d, num_latents, tied=tied, b_dec=b_dec)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats={"since_fired": jnp.zeros(num_latents, jnp.int32)},
        opt_state=tx.init(params),
        apply_fn=functools.partial(sae_apply, k=k),
        tx=tx,
    )


def make_sae_train_step(dead_after=1000):
    """Builds `train_step(state, batch, key) -> (state, metrics)` for a SAE.

    Args:
      dead_after: steps without firing after which a latent counts as dead.

    Returns:
      The step; `batch` is {"x": (B, d)} and `key` is unused (the step is
      deterministic) but kept for the contract. Jit with
      `jax.jit(step, donate_argnums=0)`; it also vmaps over states (seeds).
    """

    def train_step(state, batch, key):
        del key
        x = batch["x"]

        def loss_fn(params):
            recon, codes = state.apply_fn({"params": params}, x)
            return jnp.mean(jnp.sum((recon - x) ** 2, axis=-1)), (recon, codes)

        (loss, (recon, codes)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params
        )
        w_dec = state.params["w_dec"]
        g = grads["w_dec"]
        grads = dict(grads, w_dec=g - jnp.sum(g * w_dec, -1, keepdims=True) * w_dec)
        fired = jnp.any(codes > 0, axis=0)
        since = jnp.where(fired, 0, state.batch_stats["since_fired"] + 1)
        state = state.apply_gradients(grads, batch_stats={"since_fired": since})
        params = dict(state.params, w_dec=_unit_rows(state.params["w_dec"]))
        var = jnp.sum((x - jnp.mean(x, axis=0, keepdims=True)) ** 2)
        metrics = {
            "loss": loss,
            "fvu": jnp.sum((recon - x) ** 2) / jnp.maximum(var, 1e-30),
            "l0": jnp.mean(jnp.sum(codes > 0, axis=-1)),
            "dead": jnp.sum(since >= dead_after),
            "grad_norm": optax.tree.norm(grads),
        }
        return state.replace(params=params), metrics

    return train_step


def dead_latents(state, dead_after=1000):
    """Boolean (m,) mask of latents that have not fired for `dead_after` steps."""
    return state.batch_stats["since_fired"] >= dead_after


def sae_factorization(params, acts, k, *, batch_size=8192):
    """A trained SAE as a `Factorization` of `acts`.

    Returns components = decoder rows (m, d), codes = TopK codes (rows, m),
    empty losses and mean = b_dec, so `codes @ components + mean` is the
    SAE's reconstruction.
    """
    x = as_rows(acts, "acts")
    enc = jax.jit(lambda xb: encode(params, xb, k))
    codes = jnp.concatenate(
        [enc(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    )
    empty = jnp.zeros((0,), x.dtype)
    return Factorization(params["w_dec"], codes, empty, params["b_dec"])
