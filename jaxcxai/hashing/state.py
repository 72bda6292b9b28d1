"""DUCH hyperparameters, training state, initialisation and encoding.

`DuchHyper` holds the reference's hyperparameters and the flags of its known
quirks; `HashState` the training state of DUCH and CHNR; `encode`
turns features into binary codes with the trained nets (running
statistics). The training step is in `duch`, which re-exports these names.
"""

import dataclasses
import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcxai.checks import check_finite
from jaxcxai.hashing import losses
from jaxcxai.hashing.models import HashDiscriminator, HashNet
from jaxcxai.hashing.optim import disc_tx, hash_tx

__all__ = [
    "CODE_BUFFERS",
    "DuchHyper",
    "HashState",
    "encode",
    "init_codes",
    "init_hash_nets",
    "init_state",
    "learning_rate",
]

CODE_BUFFERS = ("img1", "img2", "txt1", "txt2")


@dataclasses.dataclass(frozen=True)
class DuchHyper:
    """DUCH hyperparameters; defaults are the reference's (UCM, 32 bits).

    The `quirk` fields select the reference behaviour (True) or the fix
    (False) of the known issues of the reference code (comrados/duch):
      txt2_is_txt1: the augmented caption is never used; ht2 = g(y).
      adv_on_text: the generator's adversarial term is applied to the
        text codes (fix: to the image codes).
      ntx_subtract_e: NT-Xent subtracts e from the denominator (fix:
        exact diagonal mask, right for any tau).
      ntx_sum: NT-Xent sums over the 2N rows (fix: mean).
      lr_decay_after_epoch0: the x0.8 decay fires after epochs 0, 50,
        100 (fix: after 49, 99, ...).
    """

    bits: int = 32
    hidden: int = 4096
    alpha: float = 0.01
    beta: float = 0.001
    gamma: float = 0.01
    contrastive_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gp_weight: float = 10.0
    ntx_tau: float = 1.0
    lr: float = 1e-4
    weight_decay: float = 5e-4
    lr_decay: float = 0.8
    lr_decay_every: int = 50
    lr_min: float = 1e-6
    disc_lr: float = 1e-4
    disc_b1: float = 0.5
    disc_b2: float = 0.9
    disc_weight_decay: float = 1e-4
    txt2_is_txt1: bool = True
    adv_on_text: bool = True
    ntx_subtract_e: bool = True
    ntx_sum: bool = True
    lr_decay_after_epoch0: bool = True

    def ntx_terms(self, codes, first_weights=None) -> list:
        """The configured NT-Xent of (hi1, ht1), (hi1, hi2) and (ht1, ht2),
        unweighted by `contrastive_weights`; None for a pair whose weight is
        0 (the first pair is always computed). `first_weights` are CHNR's
        per-pair weights of the first term. Similarity blocks are shared
        between pairs (`losses.ntxent_many`), also when ht2 is ht1 (the
        same array object, see `loss_and_code_grads`)."""
        hi1, hi2, ht1, ht2 = codes
        pairs = [(hi1, ht1), (hi1, hi2), (ht1, ht2)]
        keep = [i == 0 or w != 0 for i, w in enumerate(self.contrastive_weights)]
        values = iter(
            losses.ntxent_many(
                [p for p, k in zip(pairs, keep) if k],
                [first_weights] + [None] * (sum(keep) - 1),
                tau=self.ntx_tau,
                subtract_e=self.ntx_subtract_e,
                reduce_sum=self.ntx_sum,
            )
        )
        return [next(values) if k else None for k in keep]


class HashState(flax.struct.PyTreeNode):
    """Training state of DUCH (and CHNR, whose `disc_net` is D_N).

    Only the four pytree fields are checkpointed:
      step: number of hash-net updates.
      params: {'img', 'txt', 'disc'}; 'disc' is D_h (DUCH) or D_N (CHNR).
      batch_stats: non-trained state: BatchNorm running statistics per net
        and 'codes' = {'target': B (N_train, K), 'img1', 'img2', 'txt1',
        'txt2': the per-sample code buffers}; CHNR adds 'meta'.
      opt_state: {'hash': Adam state of f and g (learning rate inside),
        'disc': state of the discriminator's optimizer}.
    """

    step: jax.Array
    params: dict
    batch_stats: dict
    opt_state: dict
    img_net: HashNet = flax.struct.field(pytree_node=False)
    txt_net: HashNet = flax.struct.field(pytree_node=False)
    disc_net: object = flax.struct.field(pytree_node=False)
    hash_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
    disc_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)


def init_codes(key: jax.Array, num_train: int, bits: int) -> dict:
    """B = sign(N(0, 1)) and zero buffers, each (num_train, bits)."""
    target = jnp.sign(jax.random.normal(key, (num_train, bits), jnp.float32))
    # Separate arrays: one shared buffer could not be donated four times.
    zeros = {name: jnp.zeros((num_train, bits), jnp.float32) for name in CODE_BUFFERS}
    return {"target": target, **zeros}


def init_hash_nets(key, bits, hidden, image_dim, text_dim):
    """(img_net, txt_net, params, batch_stats) of f and g."""
    k_img, k_txt = jax.random.split(key)
    img_net, txt_net = HashNet(bits, hidden), HashNet(bits, hidden)
    vi = img_net.init(k_img, jnp.zeros((2, image_dim)), train=False)
    vt = txt_net.init(k_txt, jnp.zeros((2, text_dim)), train=False)
    params = {"img": vi["params"], "txt": vt["params"]}
    stats = {"img": vi["batch_stats"], "txt": vt["batch_stats"]}
    return img_net, txt_net, params, stats


def init_state(
    key: jax.Array, hyper: DuchHyper, image_dim: int, text_dim: int, num_train: int
) -> HashState:
    """Fresh DUCH state (PyTorch-default initialisation, random B)."""
    k_nets, k_disc, k_codes = jax.random.split(key, 3)
    img_net, txt_net, params, stats = init_hash_nets(
        k_nets, hyper.bits, hyper.hidden, image_dim, text_dim
    )
    disc = HashDiscriminator(hyper.bits)
    vd = disc.init(k_disc, jnp.zeros((2, hyper.bits)), train=False)
    params["disc"], stats["disc"] = vd["params"], vd["batch_stats"]
    stats["codes"] = init_codes(k_codes, num_train, hyper.bits)
    htx = hash_tx(hyper.lr, hyper.weight_decay)
    dtx = disc_tx(hyper.disc_lr, hyper.disc_b1, hyper.disc_b2, hyper.disc_weight_decay)
    opt_state = {
        "hash": htx.init({"img": params["img"], "txt": params["txt"]}),
        "disc": dtx.init(params["disc"]),
    }
    return HashState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=stats,
        opt_state=opt_state,
        img_net=img_net,
        txt_net=txt_net,
        disc_net=disc,
        hash_tx=htx,
        disc_tx=dtx,
    )


def learning_rate(state: HashState) -> jax.Array:
    """The current learning rate of f and g."""
    return state.opt_state["hash"].hyperparams["learning_rate"]


@functools.partial(jax.jit, static_argnums=(0,))
def _encode_chunk(net, params, stats, x):
    out = net.apply({"params": params, "batch_stats": stats}, x, train=False)
    return jnp.where(out >= 0, 1.0, -1.0)


def encode(state: HashState, x: np.ndarray, modality: str, chunk: int = 1024):
    """Binary codes sign(f(x)) or sign(g(y)) with running statistics.

    Args:
      x: (M, D) features.
      modality: 'img' or 'txt'.
      chunk: rows per call; the last chunk is padded (eval-mode BatchNorm
        makes rows independent) so one shape is compiled.

    Returns:
      (M, K) float32 codes in {-1, 1}: sign(out), with sign(0) taken as +1
      (the reference's 0 never occurs in practice; the metrics need +-1).

    Raises:
      NonFiniteError: `x` holds NaN or inf (a NaN feature would silently
        become the code -1 in every bit).
    """
    if modality not in ("img", "txt"):
        raise ValueError(f"modality must be 'img' or 'txt', got {modality!r}")
    x = np.asarray(x, np.float32)
    check_finite({"x": x})
    return _encode(state, x, modality, chunk)


def _encode(state: HashState, x: np.ndarray, modality: str, chunk: int):
    """`encode` of float32 features already checked to be finite."""
    net = state.img_net if modality == "img" else state.txt_net
    params, stats = state.params[modality], state.batch_stats[modality]
    outs = []
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk]
        pad = chunk - len(part)
        if pad and len(x) > chunk:
            part = np.concatenate([part, np.zeros((pad, x.shape[1]), np.float32)])
        outs.append(np.asarray(_encode_chunk(net, params, stats, part))[: chunk - pad])
    return np.concatenate(outs)
