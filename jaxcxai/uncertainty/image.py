"""The image experiment (E8) of uncertainty gating: U_epi vs saliency SSIM.

Mikriukov, Montavon & Hoehne (arXiv:2603.29915, section 5; reference code
comrados/uq-xai `experiments_images/`) train a CNN with MC dropout on images
in [-1, 1], perturb 100 test images as clip(x + sigma N(0, I), -1, 1) at the
sigmas of `IMAGE_NOISE_LEVELS`, and correlate across sigma the mean U_epi
(softmax variance of 50 dropout passes, class-averaged) with the mean SSIM of
clean-vs-noisy saliency maps for the true label: Integrated Gradients (zero
baseline, 50 Gauss-Legendre steps: Captum's default, which the reference
uses) and SmoothGrad (gradients of 20 copies with absolute noise 0.1, clamped
to [-1, 1]). Maps are grayscale by the signed channel mean; SSIM is
scikit-image's on min-max normalised maps. XEC = Spearman rho(mean SSIM,
mean U) (the paper: -1.0 for both). Unlike the reference, U and the maps see
the same noisy images, dropout masks are shared across levels, and sigma-0
maps are computed (the reference sets SSIM = 1 there). The image sets and
their split (`load_images`, `ImageSplits`) live in `image_data`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcxai.attribution.integrated import integrated_gradients
from jaxcxai.attribution.smooth import smoothgrad
from jaxcxai.checks import check_finite
from jaxcxai.metrics.explanations.rank import spearman_rho
from jaxcxai.metrics.explanations.ssim import ssim
from jaxcxai.training.state import create_train_state, make_train_step
from jaxcxai.uncertainty.correlation import strata
from jaxcxai.uncertainty.dropout import DropoutCNN, cnn_mc_variance
from jaxcxai.uncertainty.image_data import ImageSplits as ImageSplits
from jaxcxai.uncertainty.image_data import load_images as load_images
from jaxcxai.uncertainty.perturb import IMAGE_NOISE_LEVELS, image_noise

__all__ = [
    "IMAGE_NOISE_LEVELS",
    "ImageSplits",
    "image_experiment",
    "load_images",
    "train_cnn",
]


@partial(jax.jit, static_argnums=0)
def _predict(model, variables, x):
    return jnp.argmax(model.apply(variables, x)[0], axis=-1)


def _accuracy(model, variables, x, y, batch: int = 2048) -> float:
    hits = sum(
        int(jnp.sum(_predict(model, variables, x[i : i + batch]) == y[i : i + batch]))
        for i in range(0, len(x), batch)
    )
    return hits / max(1, len(x))


def train_cnn(
    splits: ImageSplits,
    key: jax.Array,
    *,
    channels: tuple[int, ...] = (32, 64, 128),
    pools: tuple[bool, ...] | None = None,
    dropout_rate: float = 0.3,
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 1e-3,
    patience: int = 5,
    min_delta: float = 0.001,
) -> tuple[DropoutCNN, dict, dict]:
    """Trains the MC-dropout CNN with early stopping on validation accuracy.

    Adam, softmax cross-entropy, shuffled mini-batches (the last one
    partial), through the `train_step(state, batch, key)` contract. An epoch
    improves when validation accuracy beats the best by more than
    `min_delta` (0.001 = the paper's 0.1 points; the reference code in effect
    uses 0); training stops after `patience` epochs without improvement. The
    parameters returned are those of the best validation accuracy.

    Args:
      splits: `load_images` output. key: PRNG key (init, shuffling, dropout).
      channels, pools, dropout_rate: `DropoutCNN` (8x8 digits: e.g.
        (16, 32, 64), (True, True, False)).
      epochs, batch_size, lr, patience, min_delta: the paper's 20, 256,
        1e-3, 5, 0.1 points (8x8 digits learn faster with batch 32).

    Returns:
      `(model, {"params"}, history)`: "epochs_run", per-epoch "val_accuracy"
      and "train_loss", "best_epoch" (1-based), "test_accuracy" of the best.
    """
    check_finite({"x_train": splits.x_train, "x_val": splits.x_val})
    model = DropoutCNN(len(splits.class_names), tuple(channels), pools, dropout_rate)
    x, y = jnp.asarray(splits.x_train), jnp.asarray(splits.y_train)
    n = x.shape[0]
    k_init, k_drop, k_shuffle = jax.random.split(key, 3)
    state = create_train_state(model, optax.adam(lr), k_init, x[:1])

    def loss_fn(params, batch_stats, batch, k):
        logits, _ = model.apply(
            {"params": params}, batch["x"], train=True, rngs={"dropout": k}
        )
        xent = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
        loss = jnp.sum(batch["w"] * xent) / jnp.sum(batch["w"])  # padded rows: 0
        return loss, (batch_stats, {"xent": loss})

    train_step = make_train_step(loss_fn)

    @jax.jit
    def run_epoch(state, k):
        # Partial last batch (PyTorch's default) padded with weight-0 rows.
        size = -(-n // batch_size) * batch_size
        idx = jax.random.permutation(k, n)[jnp.arange(size) % n]
        w = (jnp.arange(size) < n).astype(jnp.float32).reshape(-1, batch_size)
        do = lambda s, b: train_step(s, {"x": x[b[0]], "y": y[b[0]], "w": b[1]}, k_drop)
        state, metrics = jax.lax.scan(do, state, (idx.reshape(w.shape), w))
        return state, jnp.sum(metrics["loss"] * w.sum(1)) / n

    best, best_acc, wait = {"params": state.params}, -1.0, 0
    history = {"val_accuracy": [], "train_loss": [], "best_epoch": 0}
    for epoch in range(epochs):
        state, loss = run_epoch(state, jax.random.fold_in(k_shuffle, epoch))
        acc = _accuracy(model, {"params": state.params}, splits.x_val, splits.y_val)
        history["val_accuracy"].append(acc)
        history["train_loss"].append(float(loss))
        wait = 0 if acc > best_acc + min_delta else wait + 1
        if acc > best_acc:
            best, best_acc = {"params": state.params}, acc
            history["best_epoch"] = epoch + 1
        if wait >= patience:
            break
    history["epochs_run"] = len(history["val_accuracy"])
    history["test_accuracy"] = _accuracy(model, best, splits.x_test, splits.y_test)
    return model, best, history


def image_experiment(
    model: DropoutCNN,
    variables: dict,
    images: Any,
    labels: Any,
    key: jax.Array,
    *,
    sigmas: Any = IMAGE_NOISE_LEVELS,
    num_passes: int = 50,
    ig_steps: int = 50,
    smooth_n: int = 20,
    smooth_sigma: float = 0.1,
    ig_method: str = "gausslegendre",
    chunk_size: int | None = 10,
) -> dict:
    """U_epi and saliency stability of n images across noise levels (E8).

    Keys: `k_noise, k_u, k_sg = jax.random.split(key, 3)`; level i is
    `image_noise(images, sigmas[i], fold_in(k_noise, i))`; every U is
    `cnn_mc_variance(..., k_u)`; IG and SmoothGrad (key `k_sg`, fresh noise
    per map) each run once on the stacked clean and (S n) noisy images.

    Args:
      model, variables: the trained `DropoutCNN` and `{"params"}`.
      images: (n, H, W, C) in [-1, 1], H, W >= 7 (SSIM window).
      labels: (n,) true labels, the explained targets. key: PRNG key.
      sigmas: (S,) noise levels.
      num_passes, ig_steps, smooth_n, smooth_sigma: 50, 50, 20, 0.1.
      ig_method: IG quadrature (Captum's default, as the reference).
      chunk_size: steps/copies per compiled chunk (memory (S+1) n x chunk).

    Returns:
      dict of arrays: "sigmas" (S,), "u" (S, n), "u_mean" (S,), "u_clean"
      (n,), "ssim" and "ssim_mean" ({"ig", "smoothgrad"}: (S, n), (S,)),
      "xec" ({"ig", "smoothgrad"}: float), "stratum" (n,) of the clean U
      (0 low, 1 medium, 2 high), "u_thresholds" (2,) and "ssim_by_stratum"
      ({"ig", "smoothgrad"}: (S, 3)).

    References:
      arXiv:2603.29915, section 5 (E8); Sundararajan et al. 2017; Smilkov et
      al. 2017; Wang et al. 2004 (SSIM).
    """
    check_finite({"images": images, "sigmas": sigmas})
    x = jnp.asarray(images, jnp.float32)
    y = jnp.asarray(labels, jnp.int32)
    sig = np.atleast_1d(np.asarray(sigmas, np.float64))
    if x.ndim != 4 or min(x.shape[1:3]) < 7 or y.shape != x.shape[:1]:
        raise ValueError(
            f"need (n, H>=7, W>=7, C) images, (n,) labels: {x.shape}, {y.shape}"
        )
    n, s = x.shape[0], len(sig)
    k_noise, k_u, k_sg = jax.random.split(key, 3)
    noisy = jnp.stack(
        [image_noise(x, v, jax.random.fold_in(k_noise, i)) for i, v in enumerate(sig)]
    )
    u_of = lambda z: cnn_mc_variance(model, variables, z, k_u, num_passes=num_passes)
    u_clean = u_of(x).epistemic
    u = jnp.stack([u_of(z).epistemic for z in noisy])

    f = lambda z: model.apply(variables, z)
    stack = jnp.concatenate([x, noisy.reshape((s * n,) + x.shape[1:])])
    targets = jnp.tile(y, s + 1)
    maps = {
        "ig": integrated_gradients(
            f, stack, targets, baseline="zero", steps=ig_steps, method=ig_method,
            chunk_size=chunk_size,
        ),
        "smoothgrad": smoothgrad(
            f, stack, targets, key=k_sg, n=smooth_n, sigma=smooth_sigma,
            noise_scale="absolute", clip=(-1.0, 1.0), chunk_size=chunk_size,
        ),
    }  # fmt: skip
    stratum = strata(u_clean, 3)
    onehot = jax.nn.one_hot(stratum, 3)  # empty strata give 0 / 0 = NaN
    out = {"sigmas": sig, "u": u, "u_mean": u.mean(1), "u_clean": u_clean,
           "stratum": stratum,
           "u_thresholds": jnp.quantile(u_clean, jnp.array([1.0, 2.0]) / 3.0)}  # fmt: skip
    out.update({k: {} for k in ("ssim", "ssim_mean", "xec", "ssim_by_stratum")})
    for name, m in maps.items():
        gray = jnp.mean(m, axis=-1)  # signed channel mean, (S+1) n x H x W
        clean = jnp.tile(gray[:n], (s, 1, 1))
        vals = ssim(clean, gray[n:]).reshape(s, n)
        out["ssim"][name] = vals
        out["ssim_mean"][name] = vals.mean(1)
        out["xec"][name] = float(spearman_rho(vals.mean(1), u.mean(1), use_abs=False))
        out["ssim_by_stratum"][name] = vals @ onehot / onehot.sum(0, keepdims=True)
    return out
