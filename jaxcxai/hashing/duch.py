"""DUCH training: one jitted step over the global batch, and the epoch end.

One iteration (as in the reference training loop), all inside `train_step`:
  1. the four views go through f and g, one BatchNorm call per view;
  2. the detached codes are written into the per-sample buffers at `idx`;
  3. D_h takes one Adam step on two accumulated sub-steps;
  4. the hash nets take one Adam step on L_C + a L_adv + b L_Q + c L_BB,
     computed with the updated D_h.
The forward pass runs once: `jax.vjp` keeps it for step 4's backward.
`epoch_end` then sets the target codes B from the buffers and applies the
learning-rate rule. The step is written over the global batch, so
with the batch sharded over a mesh it equals the single-device step (the
contrastive terms see every negative; BatchNorm sees the whole view).

Batches are dicts with `idx` (N,) int32 train positions, `img`, `img_aug`
(N, Di), `txt` (N, Dt) and, unless `txt2_is_txt1`, `txt_aug` (N, Dt).
Full batches and the remainder batch are the two shapes jit compiles; they
are never padded, since padding would change the BatchNorm statistics.
"""

import functools

import jax
import jax.numpy as jnp
import optax

from jaxcxai.hashing import losses, multiview
from jaxcxai.hashing.feed import epoch_batches, place_batch
from jaxcxai.hashing.models import TorchBatchNorm, running_update
from jaxcxai.hashing.optim import hash_tx

# Re-exported: the state, hyperparameters and initialisation live in
# `hashing.state`, the epoch's batches in `hashing.feed`.
from jaxcxai.hashing.state import (
    CODE_BUFFERS,
    DuchHyper,
    HashState,
    encode,
    init_codes,
    init_hash_nets,
    init_state,
    learning_rate,
)

__all__ = [
    "CODE_BUFFERS",
    "DuchHyper",
    "HashState",
    "decayed_lr",
    "encode",
    "epoch_batches",
    "epoch_end",
    "forward_views",
    "gp_uniforms",
    "hash_tx",
    "init_codes",
    "init_hash_nets",
    "init_state",
    "learning_rate",
    "loss_and_code_grads",
    "make_train_step",
    "place_batch",
    "write_buffers",
]


def _apply_bn(net, params, stats, x):
    out, new = net.apply(
        {"params": params, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
    )
    return out, new["batch_stats"]


def forward_views(state: HashState, hash_params: dict, batch: dict, txt2_is_txt1):
    """Codes (hi1, hi2, ht1, ht2) and the new running statistics of f and g.

    One BatchNorm call per view, in the reference order x, x', y, y', each
    view through `multiview.hashnet_views` (HashNet's training-mode math
    with a hand-written backward). With `txt2_is_txt1` the reference feeds
    y twice: ht2 equals ht1 exactly, so it is computed once, and both
    running-statistics updates use that one batch statistic.
    """
    bs = state.batch_stats
    image_views = (batch["img"], batch["img_aug"])
    text_views = (batch["txt"],) if txt2_is_txt1 else (batch["txt"], batch["txt_aug"])
    ((hi1, hi2), txt_codes), (img_stats, txt_stats) = multiview.hashnet_views(
        (hash_params["img"], hash_params["txt"]), (image_views, text_views)
    )
    if txt2_is_txt1:  # y is fed twice: the same codes and batch statistics
        txt_codes, txt_stats = txt_codes * 2, txt_stats * 2
    ht1, ht2 = txt_codes
    n = batch["img"].shape[0]
    new = {}
    for name, view_stats in (("img", img_stats), ("txt", txt_stats)):
        running = bs[name]["bn"]
        for mean, var in view_stats:  # one update per call, in call order
            running = running_update(running, mean, var, n, TorchBatchNorm.momentum)
        new[name] = {"bn": running}
    return (hi1, hi2, ht1, ht2), new


def loss_and_code_grads(loss_fn, codes, tied: bool):
    """`jax.value_and_grad(loss_fn, has_aux=True)(codes)` for the four codes.

    With `tied` (txt2_is_txt1: ht2 equals ht1) the loss is differentiated
    with respect to (hi1, hi2, ht1) and sees the one ht1 array in both text
    slots, so terms shared between the slots are computed once; the whole
    text gradient lands in slot 2 and slot 3's is 0 (their sum, which is
    what reaches g, is unchanged).
    """
    if not tied:
        return jax.value_and_grad(loss_fn, has_aux=True)(codes)
    tied_fn = lambda c: loss_fn((c[0], c[1], c[2], c[2]))
    out, grads = jax.value_and_grad(tied_fn, has_aux=True)(tuple(codes[:3]))
    return out, (*grads, jnp.zeros_like(grads[2]))


def write_buffers(codes_state: dict, idx: jax.Array, codes) -> dict:
    """Stores the detached codes of this batch at rows `idx` of the buffers."""
    new = dict(codes_state)
    for name, value in zip(CODE_BUFFERS, codes):
        new[name] = codes_state[name].at[idx].set(jax.lax.stop_gradient(value))
    return new


def gp_uniforms(key: jax.Array, step, n: int, bits: int) -> jax.Array:
    """(2, n, bits) U[0,1) interpolation weights of the step's two sub-steps."""
    step_key = jax.random.fold_in(key, step)
    return jax.random.uniform(jax.random.fold_in(step_key, 1), (2, n, bits))


def _disc_apply(state, params, stats, x):
    return _apply_bn(state.disc_net, params, stats, x)


def _disc_loss(dparams, state, dstats, codes, u, gp_weight):
    """Sum of the two accumulated sub-steps (real=ht1, fake=hi1) and
    (real=ht2, fake=hi2); a scan over the two keeps the program small."""
    hi1, hi2, ht1, ht2 = [jax.lax.stop_gradient(c) for c in codes]
    reals, fakes = jnp.stack([ht1, ht2]), jnp.stack([hi1, hi2])

    def sub_step(stats, inputs):
        real, fake, u_k = inputs
        real_logits, stats = _disc_apply(state, dparams, stats, real)
        fake_logits, stats = _disc_apply(state, dparams, stats, fake)
        bce = losses.discriminator_bce(real_logits, fake_logits)
        x_hat = losses.interpolate(real, fake, u_k)
        gp, stats = losses.gradient_penalty(
            lambda x: _disc_apply(state, dparams, stats, x), x_hat, gp_weight
        )
        return stats, (bce, gp)

    dstats, (bce, gp) = jax.lax.scan(sub_step, dstats, (reals, fakes, u))
    total = jnp.sum(bce) + jnp.sum(gp)
    return total, (dstats, {"disc_bce": jnp.sum(bce), "disc_gp": jnp.sum(gp)})


def _hash_loss(codes, state, dparams, dstats, target, hyper: DuchHyper):
    hi1, hi2, ht1, ht2 = codes
    ntx = 0.0
    for weight, term in zip(hyper.contrastive_weights, hyper.ntx_terms(codes)):
        if weight:
            ntx = ntx + weight * term
    adv = 0.0
    if hyper.alpha:
        pair = (ht1, ht2) if hyper.adv_on_text else (hi1, hi2)
        for h in pair:
            logits, dstats = _disc_apply(state, dparams, dstats, h)
            adv = adv + losses.adversarial_generator_loss(logits)
    quant = hyper.beta * losses.quantization_loss(codes, target)
    bb = hyper.gamma * losses.bit_balance_loss(codes) if hyper.gamma else 0.0
    adv = hyper.alpha * adv
    loss = ntx + adv + quant + bb
    metrics = {"ntxent": ntx, "adv": adv, "quant": quant, "bb": bb}
    return loss, (dstats, metrics)


@functools.cache
def make_train_step(hyper: DuchHyper):
    """`train_step(state, batch, key) -> (state, metrics)` for DUCH.

    Cached per `hyper`, so re-jitting it (e.g. after a resume) reuses the
    compiled program.

    The key is folded with `state.step`; the GP weights u are
    `gp_uniforms(key, state.step, N, K)`. Metrics: `loss`, its weighted
    terms `ntxent`, `adv`, `quant`, `bb`, and `disc_loss`, `disc_bce`,
    `disc_gp` of the discriminator update.
    """

    def train_step(state: HashState, batch: dict, key: jax.Array):
        idx = batch["idx"]
        hash_params = {"img": state.params["img"], "txt": state.params["txt"]}
        fwd = lambda p: forward_views(state, p, batch, hyper.txt2_is_txt1)
        codes, vjp_fn, hash_stats = jax.vjp(fwd, hash_params, has_aux=True)
        codes_state = write_buffers(state.batch_stats["codes"], idx, codes)

        n = idx.shape[0]
        u = gp_uniforms(key, state.step, n, hyper.bits)
        d_fn = lambda p: _disc_loss(
            p, state, state.batch_stats["disc"], codes, u, hyper.gp_weight
        )
        (d_loss, (dstats, d_metrics)), d_grads = jax.value_and_grad(d_fn, has_aux=True)(
            state.params["disc"]
        )
        d_updates, d_opt = state.disc_tx.update(
            d_grads, state.opt_state["disc"], state.params["disc"]
        )
        dparams = optax.apply_updates(state.params["disc"], d_updates)

        target = state.batch_stats["codes"]["target"][idx]
        h_fn = lambda c: _hash_loss(c, state, dparams, dstats, target, hyper)
        (loss, (dstats, metrics)), code_grads = loss_and_code_grads(
            h_fn, codes, hyper.txt2_is_txt1
        )
        (grads,) = vjp_fn(code_grads)
        updates, h_opt = state.hash_tx.update(
            grads, state.opt_state["hash"], hash_params
        )
        hash_params = optax.apply_updates(hash_params, updates)

        new_state = state.replace(
            step=state.step + 1,
            params={**hash_params, "disc": dparams},
            batch_stats={**hash_stats, "disc": dstats, "codes": codes_state},
            opt_state={"hash": h_opt, "disc": d_opt},
        )
        metrics = dict(metrics, loss=loss, disc_loss=d_loss, **d_metrics)
        return new_state, metrics

    return train_step


def decayed_lr(lr, epoch, hyper) -> jax.Array:
    """lr after the end of 0-based `epoch` (QUIRK: the reference's decay also
    fires after epoch 0)."""
    every = hyper.lr_decay_every
    fires = (
        (epoch % every == 0)
        if hyper.lr_decay_after_epoch0
        else ((epoch + 1) % every == 0)
    )
    return jnp.where(fires, jnp.maximum(lr * hyper.lr_decay, hyper.lr_min), lr)


def epoch_end(state: HashState, epoch, hyper) -> HashState:
    """B <- sign(mean of the buffers); learning-rate rule for `epoch`."""
    codes = dict(state.batch_stats["codes"])
    codes["target"] = losses.target_codes(*(codes[n] for n in CODE_BUFFERS))
    opt = state.opt_state["hash"]
    lr = decayed_lr(opt.hyperparams["learning_rate"], epoch, hyper)
    opt = opt._replace(hyperparams={**opt.hyperparams, "learning_rate": lr})
    return state.replace(
        batch_stats={**state.batch_stats, "codes": codes},
        opt_state={**state.opt_state, "hash": opt},
    )
