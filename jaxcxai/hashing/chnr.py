"""CHNR: DUCH robust to noisy image-text pairs (Mikriukov et al., ICIP 2022).

Two phases share f, g, B, the buffers and the Adam state:
  * meta phase (epochs 0..clean_epochs-1) on the clean subset: the noise
    detector D_N learns to tell real joint features [x; y] from fake ones
    whose caption comes from another sample (BCE + gradient penalty, one
    AdamW step), then f and g take a step on NT-Xent + quantization with
    unit weights (`make_meta_step`);
  * main phase on the full, noisy training set: D_N is frozen and weights
    each pair's inter-modal NT-Xent rows by its clean probability
    (`make_main_step`).
D_N's fake pairs, optimizer and training step live in `detector`.
Batches are the DUCH batches (`duch` module docstring) plus, in the meta
phase, `labels` (N,) or (N, L), used only to draw the fake pairs.

Which rows of B and of the buffers a batch uses is the batch's `idx`: the
reference passes clean-subset positions in the meta phase (a quirk of the
reference code, the B/buffer index mismatch) and the trainer chooses what
to pass.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from jaxcxai.hashing import detector, duch, losses, optim
from jaxcxai.hashing.detector import detect, detector_tx
from jaxcxai.hashing.detector import fake_partners as fake_partners
from jaxcxai.hashing.models import NoiseDetector

__all__ = [
    "ChnrHyper",
    "epoch_end",
    "fake_partners",
    "init_state",
    "make_main_step",
    "make_meta_step",
]


@dataclasses.dataclass(frozen=True)
class ChnrHyper(duch.DuchHyper):
    """CHNR hyperparameters (reference defaults: 64 bits, weights [1, 0, 0],
    alpha = gamma = 0). Quirk fields besides DUCH's (True = reference):

      dropout_in_weights: D_N's dropout is active when computing
        the pair weights and the meta-phase probabilities.
      fake_pairs_use_labels: fake partners are drawn among batch
        items with another label (fix: any other item, labels unused).
    """

    bits: int = 64
    alpha: float = 0.0
    gamma: float = 0.0
    contrastive_weights: tuple[float, float, float] = (1.0, 0.0, 0.0)
    noise_weights: str = "normal"
    detector_hidden: int | None = None
    detector_blocks: int = 3
    detector_dropout: float = 0.2
    det_lr: float = 1e-4
    det_b1: float = 0.5
    det_b2: float = 0.9
    det_weight_decay: float = 1e-3
    dropout_in_weights: bool = True
    fake_pairs_use_labels: bool = True


_PROBS = ("r1", "r2", "f1", "f2")


def init_state(
    key: jax.Array, hyper: ChnrHyper, image_dim: int, text_dim: int, num_train: int
) -> duch.HashState:
    """Fresh CHNR state; `params['disc']` and `opt_state['disc']` are D_N's,
    `batch_stats['meta']` holds the meta-epoch probability sums and the
    `dis` threshold (0.5 until a meta epoch ends)."""
    if hyper.noise_weights not in losses.NOISE_WEIGHT_SCHEMES:
        raise ValueError(
            f"noise_weights={hyper.noise_weights!r}; valid: "
            f"{losses.NOISE_WEIGHT_SCHEMES}"
        )
    k_nets, k_det, k_codes = jax.random.split(key, 3)
    img_net, txt_net, params, stats = duch.init_hash_nets(
        k_nets, hyper.bits, hyper.hidden, image_dim, text_dim
    )
    det = NoiseDetector(
        hyper.detector_hidden, hyper.detector_blocks, hyper.detector_dropout
    )
    params["disc"] = det.init(k_det, jnp.zeros((2, image_dim + text_dim)))["params"]
    stats["codes"] = duch.init_codes(k_codes, num_train, hyper.bits)
    zero = jnp.zeros((), jnp.float32)
    stats["meta"] = {**{p: zero for p in _PROBS}, "count": zero}
    stats["meta"]["threshold"] = jnp.full((), 0.5, jnp.float32)
    htx = optim.hash_tx(hyper.lr, hyper.weight_decay)
    dtx = detector_tx(hyper.det_lr, hyper.det_b1, hyper.det_b2, hyper.det_weight_decay)
    return duch.HashState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=stats,
        opt_state={
            "hash": htx.init({"img": params["img"], "txt": params["txt"]}),
            "disc": dtx.init(params["disc"]),
        },
        img_net=img_net,
        txt_net=txt_net,
        disc_net=det,
        hash_tx=htx,
        disc_tx=dtx,
    )


def _forward(state, batch, hyper):
    hash_params = {"img": state.params["img"], "txt": state.params["txt"]}
    fwd = lambda p: duch.forward_views(state, p, batch, hyper.txt2_is_txt1)
    codes, vjp_fn, hash_stats = jax.vjp(fwd, hash_params, has_aux=True)
    codes_state = duch.write_buffers(state.batch_stats["codes"], batch["idx"], codes)
    return hash_params, codes, vjp_fn, hash_stats, codes_state


def _hash_update(state, hash_params, vjp_fn, codes, loss_fn, tied):
    (loss, metrics), code_grads = duch.loss_and_code_grads(loss_fn, codes, tied)
    (grads,) = vjp_fn(code_grads)
    updates, opt = state.hash_tx.update(grads, state.opt_state["hash"], hash_params)
    return optax.apply_updates(hash_params, updates), opt, loss, metrics


def _weighted_loss(codes, target, weights, hyper):
    """lambda1 NTX_w(hi1, ht1) + mean(w) [lambda2, lambda3 terms] + beta L_Q."""
    l1, l2, l3 = hyper.contrastive_weights
    w_mean = 1.0 if weights is None else jnp.mean(jax.lax.stop_gradient(weights))
    t1, t2, t3 = hyper.ntx_terms(codes, weights)
    ntx = l1 * t1
    if l2:
        ntx = ntx + w_mean * l2 * t2
    if l3:
        ntx = ntx + w_mean * l3 * t3
    quant = hyper.beta * losses.quantization_loss(codes, target)
    return ntx + quant, {"ntxent": ntx, "quant": quant}


@functools.cache
def make_meta_step(hyper: ChnrHyper):
    """`meta_step(state, batch, key) -> (state, metrics)` of the meta phase."""

    def meta_step(state, batch, key):
        key = jax.random.fold_in(key, state.step)
        k_perm, k_gp, k_drop, k_prob = jax.random.split(key, 4)
        hash_params, codes, vjp_fn, hash_stats, codes_state = _forward(
            state, batch, hyper
        )
        x, x2, y = batch["img"], batch["img_aug"], batch["txt"]
        y2 = y if hyper.txt2_is_txt1 else batch["txt_aug"]
        n = x.shape[0]
        labels = None
        if hyper.fake_pairs_use_labels:
            if "labels" not in batch:
                raise ValueError("meta-phase batches need 'labels' for fake pairs")
            labels = batch["labels"]
        perms = [fake_partners(k, n, labels) for k in jax.random.split(k_perm, 4)]
        cat = lambda a, b: jnp.concatenate([a, b], axis=-1)
        # Reference order: (x, y), (x', y'), (x, y'), (x', y) and the same
        # image sides with re-drawn captions.
        reals = [cat(x, y), cat(x2, y2), cat(x, y2), cat(x2, y)]
        fakes = [
            cat(x, y[perms[0]]),
            cat(x2, y2[perms[1]]),
            cat(x, y2[perms[2]]),
            cat(x2, y[perms[3]]),
        ]
        det_params, d_opt, d_loss, d_metrics = detector.detector_step(
            state, reals, fakes, k_gp, k_drop, hyper.gp_weight
        )

        # Mean clean probabilities after the update (the `dis` threshold).
        train_mode = hyper.dropout_in_weights
        prob_keys = jax.random.split(k_prob, 4)
        pairs = [reals[0], reals[1], fakes[0], fakes[1]]
        probs = {
            name: jax.nn.sigmoid(detect(state, det_params, z, kk, train_mode))
            for name, z, kk in zip(_PROBS, pairs, prob_keys)
        }
        meta = dict(state.batch_stats["meta"])
        for name in _PROBS:
            meta[name] = meta[name] + jnp.sum(probs[name])
        meta["count"] = meta["count"] + n

        target = state.batch_stats["codes"]["target"][batch["idx"]]
        loss_fn = lambda c: _weighted_loss(c, target, None, hyper)
        hash_params, h_opt, loss, metrics = _hash_update(
            state, hash_params, vjp_fn, codes, loss_fn, hyper.txt2_is_txt1
        )
        new_state = state.replace(
            step=state.step + 1,
            params={**hash_params, "disc": det_params},
            batch_stats={
                **state.batch_stats,
                **hash_stats,
                "codes": codes_state,
                "meta": meta,
            },
            opt_state={"hash": h_opt, "disc": d_opt},
        )
        metrics = dict(metrics, loss=loss, det_loss=d_loss, **d_metrics)
        metrics.update({name: jnp.mean(p) for name, p in probs.items()})
        return new_state, metrics

    return meta_step


@functools.cache
def make_main_step(hyper: ChnrHyper):
    """`main_step(state, batch, key) -> (state, metrics)`: D_N frozen, the
    inter-modal NT-Xent rows weighted by `noise_weights` of its output."""

    def main_step(state, batch, key):
        key = jax.random.fold_in(key, state.step)
        hash_params, codes, vjp_fn, hash_stats, codes_state = _forward(
            state, batch, hyper
        )
        z = jnp.concatenate([batch["img"], batch["txt"]], axis=-1)
        logits = detect(state, state.params["disc"], z, key, hyper.dropout_in_weights)
        probs = jax.lax.stop_gradient(jax.nn.sigmoid(logits))
        weights = losses.noise_weights(
            probs, hyper.noise_weights, state.batch_stats["meta"]["threshold"]
        )
        target = state.batch_stats["codes"]["target"][batch["idx"]]
        loss_fn = lambda c: _weighted_loss(c, target, weights, hyper)
        hash_params, h_opt, loss, metrics = _hash_update(
            state, hash_params, vjp_fn, codes, loss_fn, hyper.txt2_is_txt1
        )
        new_state = state.replace(
            step=state.step + 1,
            params={**hash_params, "disc": state.params["disc"]},
            batch_stats={**state.batch_stats, **hash_stats, "codes": codes_state},
            opt_state={**state.opt_state, "hash": h_opt},
        )
        metrics = dict(metrics, loss=loss, weight_mean=jnp.mean(weights))
        return new_state, metrics

    return main_step


def epoch_end(state: duch.HashState, epoch, hyper: ChnrHyper, meta: bool):
    """B and learning-rate update (as DUCH); after a meta epoch also sets the
    `dis` threshold (mean r1 + mean f1) / 2 and resets the sums."""
    state = duch.epoch_end(state, epoch, hyper)
    if not meta:
        return state
    m = state.batch_stats["meta"]
    count = jnp.maximum(m["count"], 1.0)
    threshold = (m["r1"] / count + m["f1"] / count) / 2
    zero = jnp.zeros((), jnp.float32)
    new_meta = {**{p: zero for p in _PROBS}, "count": zero, "threshold": threshold}
    return state.replace(batch_stats={**state.batch_stats, "meta": new_meta})
