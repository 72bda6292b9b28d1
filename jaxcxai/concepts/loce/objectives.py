"""LoCE / GCPV objectives as swappable pure losses.

They follow the reference code: `loce_optimizer.py` of LoCE
(continental/local-concept-embeddings), `gcpv_optimizer.py` of GCPV
(continental/guided-concept-projection-vectors) and the background-bias
variant of gesina/bg_randomized_loce.

Every per-sample objective has the signature `fn(z, t, alpha, v) -> scalar`:

* `z`: (H, W) logits of one view on the grid the target lives on,
* `t`: (H, W) soft target in [0, 1] (binary for GCPV),
* `alpha`: scalar foreground-balance weight, 1 - mean(t > 0),
* `v`: (C,) the embedding (for the regularized objectives).

Scales follow the reference *per sample*. The reference optimizes a batch mean
of B such terms with one AdamW; because Adam is per-coordinate, a batch of
separable terms is B independent problems and only the overall scale (which
enters through Adam's epsilon) differs. `Objective.batch_power` records that
scale as B**-batch_power so `LoceConfig(loss_scale=None)` reproduces the
reference to the epsilon level.

`LoceConfig` holds the objective and the torch-AdamW hyper-parameters, and
`minimize` is the one `lax.scan` of AdamW steps every LoCE fit runs.

`batch_loss` gives the reference's *batched* objective over a (B, ...) tensor,
including the MSE/MAE quirk that couples samples through the whole-tensor
norms (used by the batched reference fit and its tests).
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "BG_CONFIG",
    "GCPV_CONFIG",
    "LoceConfig",
    "OBJECTIVES",
    "Objective",
    "alpha_from_target",
    "batch_loss",
    "gcpv",
    "get_objective",
    "init_vector",
    "mae",
    "minimize",
    "mse",
    "net2vec_linear",
    "proper_bce",
]

DICE_EPS = 1e-4


def alpha_from_target(t: jax.Array) -> jax.Array:
    """alpha = 1 - fraction of pixels with any foreground support (t > 0).

    Args:
      t: (..., H, W) soft targets.

    Returns:
      (...) alphas. Computed on the anti-aliased ("dilated") target, as the
      reference does.
    """
    return 1.0 - jnp.mean((t > 0).astype(jnp.float32), axis=(-2, -1))


def _reg(v: jax.Array) -> jax.Array:
    # (||v||_1 + ||v||_2) / C: GCPV's per-sample regularizer.
    return (jnp.sum(jnp.abs(v)) + jnp.linalg.norm(v)) / v.shape[-1]


def net2vec_linear(z, t, alpha, v):
    """The reference "bce": Net2Vec's linear soft-TP/TN objective, no log.

    l = -sum_p [alpha t_p s_p + (1 - alpha)(1 - t_p)(1 - s_p)], s = sigmoid(z).
    The reference's 1/B (per sample) times 1/B (batch mean) is `batch_power`=2.
    """
    del v
    s = jax.nn.sigmoid(z)
    return -jnp.sum(alpha * t * s + (1.0 - alpha) * (1.0 - t) * (1.0 - s))


def proper_bce(z, t, alpha, v):
    """Fuzzy-weighted BCE-with-logits against the binarized target (BG code).

    t_hat = [t > 0.5]; w_p = alpha t_hat t + (1 - alpha)(1 - t_hat)(1 - t), so
    boundary pixels with fuzzy t count less. Summed over pixels.
    """
    del v
    t_hat = (t > 0.5).astype(z.dtype)
    w = alpha * t_hat * t + (1.0 - alpha) * (1.0 - t_hat) * (1.0 - t)
    return jnp.sum(w * optax.sigmoid_binary_cross_entropy(z, t_hat))


def mse(z, t, alpha, v):
    """mean_p (t - s)^2 + (||v||_1 + ||v||_2) / C (separable per-sample form)."""
    del alpha
    return jnp.mean((t - jax.nn.sigmoid(z)) ** 2) + _reg(v)


def mae(z, t, alpha, v):
    """mean_p |t - s| + (||v||_1 + ||v||_2) / C (separable per-sample form)."""
    del alpha
    return jnp.mean(jnp.abs(t - jax.nn.sigmoid(z))) + _reg(v)


def gcpv(z, t, alpha, v):
    """GCPV: MSE + Dice + (||v||_1 + ||v||_2) / C on the native-resolution mask.

    Dice = 1 - (2 sum t s + eps) / (sum t + sum s + eps), eps = 1e-4.
    """
    del alpha
    s = jax.nn.sigmoid(z)
    dice = 1.0 - (2.0 * jnp.sum(t * s) + DICE_EPS) / (
        jnp.sum(t) + jnp.sum(s) + DICE_EPS
    )
    return jnp.mean((t - s) ** 2) + dice + _reg(v)


class Objective(NamedTuple):
    """A per-sample objective and the reference's batch scale B**-batch_power."""

    fn: Callable[..., jax.Array]
    batch_power: int


OBJECTIVES: dict[str, Objective] = {
    "net2vec": Objective(net2vec_linear, 2),
    "bce": Objective(net2vec_linear, 2),  # the reference's (misleading) name
    "proper_bce": Objective(proper_bce, 1),
    "mse": Objective(mse, 1),
    "mae": Objective(mae, 1),
    "gcpv": Objective(gcpv, 0),  # strict per-sample loop in the reference
}


def get_objective(name: str) -> Objective:
    """Looks an objective up by name, failing with the valid names."""
    if name not in OBJECTIVES:
        raise ValueError(
            f"unknown LoCE objective {name!r}; use one of {list(OBJECTIVES)}"
        )
    return OBJECTIVES[name]


def batch_loss(name: str, z, t, alpha, v) -> jax.Array:
    """The reference's batched objective over B samples (one view each).

    Args:
      name: objective name.
      z: (B, H, W) logits; t: (B, H, W) targets; alpha: (B,); v: (B, C).

    Returns:
      Scalar. "net2vec"/"bce": mean_i of -(1/B) sum_p [...]. "proper_bce":
      mean of per-image sums. "mse"/"mae": the reference's quirk, the data
      term averaged over the whole batch tensor plus (||V||_1 + ||V||_F) / B
      over the whole (B, C) tensor, which couples the samples. "gcpv": the sum
      of per-sample losses (GCPV loops over samples).
    """
    b = z.shape[0]
    if name in ("mse", "mae"):
        s = jax.nn.sigmoid(z)
        err = (t - s) ** 2 if name == "mse" else jnp.abs(t - s)
        return jnp.mean(err) + (jnp.sum(jnp.abs(v)) + jnp.linalg.norm(v)) / b
    obj = get_objective(name)
    per = jax.vmap(obj.fn)(z, t, alpha, v)
    if name == "gcpv":
        return jnp.sum(per)
    return jnp.mean(per) / b ** (obj.batch_power - 1)


@dataclasses.dataclass(frozen=True)
class LoceConfig:
    """Hyper-parameters of one LoCE fit (defaults: the LoCE reference).

    Attributes:
      objective: a name in `OBJECTIVES`.
      steps: full-batch AdamW steps (no early stopping, as the reference).
      lr, b1, b2, eps, weight_decay: torch AdamW semantics (decoupled decay).
      init: "zeros", "ones", "uniform" (U[0,1)) or "normal"; random inits
        need a key.
      upsample: "native" projects at the activation resolution and upsamples
        the logits; "reference" upsamples the activations first.
      interp: resampling mode from native to the target grid (the target's
        shape defines the grid; equal shapes skip resampling, as GCPV).
      reference_batch: B of the reference's batch mean (scale only).
      loss_scale: multiplier of the per-sample loss; None = the reference's
        B**-batch_power.
    """

    objective: str = "net2vec"
    steps: int = 50
    lr: float = 0.1
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01
    init: str = "zeros"
    upsample: str = "native"
    interp: str = "bilinear"
    reference_batch: int = 64
    loss_scale: float | None = None

    def scale(self) -> float:
        if self.loss_scale is not None:
            return float(self.loss_scale)
        power = get_objective(self.objective).batch_power
        return float(self.reference_batch) ** -power

    def optimizer(self) -> optax.GradientTransformation:
        # optax.adamw == torch.optim.AdamW: p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd p).
        return optax.adamw(
            self.lr, self.b1, self.b2, self.eps, weight_decay=self.weight_decay
        )


# GCPV (v1 of the paper): ones init, 200 steps, native-resolution binary mask.
GCPV_CONFIG = LoceConfig(objective="gcpv", steps=200, init="ones")
# Background-bias code: 30 steps, batch 512 (targets on an 80 x 80 grid).
BG_CONFIG = LoceConfig(steps=30, reference_batch=512)


def init_vector(c: int, config: LoceConfig, key=None) -> jax.Array:
    """(C,) float32 initial LoCE: zeros, ones, U[0, 1) or N(0, 1)."""
    if config.init == "zeros":
        return jnp.zeros((c,), jnp.float32)
    if config.init == "ones":
        return jnp.ones((c,), jnp.float32)
    if key is None:
        raise ValueError(f"init={config.init!r} needs a PRNG key")
    if config.init == "uniform":
        return jax.random.uniform(key, (c,), jnp.float32)
    if config.init == "normal":
        return jax.random.normal(key, (c,), jnp.float32)
    raise ValueError(f"unknown init {config.init!r}; use zeros|ones|uniform|normal")


def minimize(
    loss_fn: Callable,
    v0: jax.Array,
    config: LoceConfig,
    *,
    xs: Any = None,
    fresh_optimizer: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """AdamW steps as one `lax.scan`: `config.steps` steps, or one per `xs` row.

    Args:
      loss_fn: `(v, x) -> scalar`; x is the scanned row (None without xs).
      v0: initial parameters (any shape).
      config: optimizer hyper-parameters.
      xs: optional per-step inputs (e.g. minibatch indices).
      fresh_optimizer: start a new AdamW state at every step (the BG code's
        Net2Vec quirk: each step is then an Adam *first* step, ~lr * sign(g)).

    Returns:
      (final parameters, (steps,) losses before each step).
    """
    tx = config.optimizer()

    def step(carry, x):
        v, opt_state = carry
        loss, grad = jax.value_and_grad(loss_fn)(v, x)
        if fresh_optimizer:
            opt_state = tx.init(v)
        updates, opt_state = tx.update(grad, opt_state, v)
        return (optax.apply_updates(v, updates), opt_state), loss

    length = None if xs is not None else config.steps
    (v, _), losses = jax.lax.scan(step, (v0, tx.init(v0)), xs, length=length)
    return v, losses
